# PSALM (Swin-B + Phi-1.5) open-vocabulary instance segmentation on Cityscapes
# val (paper Tab. 11: Cityscapes mask AP, COCO-style here, see the base
# config); the same run logs the 19-class mIoU.
_base_ = [
    '../_base_/models/psalm_swin-b_phi-1.5.py',
    '../_base_/datasets/eval/cityscapes_ov.py', '../_base_/default_runtime.py'
]

