# Released PSALM weights (EnmingZhang/PSALM converted by
# tools/model_converters/psalm_official_to_mmpsalm.py) on ADE20K-150 val,
# open-vocabulary semantic segmentation (paper Tab. 11: A150 mIoU).
_base_ = [
    '../_base_/models/psalm_official.py',
    '../_base_/datasets/eval/ade20k_ov.py', '../_base_/default_runtime.py'
]
