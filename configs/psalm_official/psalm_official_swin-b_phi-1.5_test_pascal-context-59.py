# Released PSALM weights (EnmingZhang/PSALM converted by
# tools/model_converters/psalm_official_to_mmpsalm.py) on PASCAL-Context-59
# val, open-vocabulary semantic segmentation (paper Tab. 11: PC59 mIoU).
_base_ = [
    '../_base_/models/psalm_official.py',
    '../_base_/datasets/eval/pascal_context59.py',
    '../_base_/default_runtime.py'
]
