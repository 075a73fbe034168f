# PSALM (Swin-B + Phi-1.5) open-vocabulary semantic segmentation on
# PASCAL-Context-59 val (paper Tab. 11: PC59 mIoU).
_base_ = [
    '../_base_/models/psalm_swin-b_phi-1.5.py',
    '../_base_/datasets/eval/pascal_context59.py',
    '../_base_/default_runtime.py'
]

