# Released PSALM weights (EnmingZhang/PSALM converted by
# tools/model_converters/psalm_official_to_mmpsalm.py) on COCO panoptic
# val2017 (paper Tab. 9): PQ, thing mask AP and mIoU from one run.
_base_ = [
    '../_base_/models/psalm_official.py',
    '../_base_/datasets/eval/coco_panoptic.py', '../_base_/default_runtime.py'
]
