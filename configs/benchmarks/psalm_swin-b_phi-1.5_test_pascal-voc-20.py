# PSALM (Swin-B + Phi-1.5) open-vocabulary semantic segmentation on PASCAL
# VOC-20 val (paper Tab. 11: PAS20 mIoU).
_base_ = [
    '../_base_/models/psalm_swin-b_phi-1.5.py',
    '../_base_/datasets/eval/pascal_voc20.py', '../_base_/default_runtime.py'
]

