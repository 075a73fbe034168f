# PSALM (Swin-B + Phi-1.5) open-vocabulary semantic segmentation on
# PASCAL-Context-459 val (paper Tab. 11: PC459 mIoU).
_base_ = [
    '../_base_/models/psalm_swin-b_phi-1.5.py',
    '../_base_/datasets/eval/pascal_context459.py',
    '../_base_/default_runtime.py'
]

