# PSALM (Swin-B + Phi-1.5) open-vocabulary semantic segmentation on ADE20K-150
# val (paper Tab. 11: A150 mIoU).
_base_ = [
    '../_base_/models/psalm_swin-b_phi-1.5.py',
    '../_base_/datasets/eval/ade20k_ov.py', '../_base_/default_runtime.py'
]

