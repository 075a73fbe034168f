# PSALM (Swin-B + Phi-1.5) on COCO panoptic val2017 (paper Tab. 9): PQ,
# thing mask AP and semantic mIoU from one run of the 'panoptic' task.
_base_ = [
    '../_base_/models/psalm_swin-b_phi-1.5.py',
    '../_base_/datasets/eval/coco_panoptic.py',
    '../_base_/default_runtime.py'
]
