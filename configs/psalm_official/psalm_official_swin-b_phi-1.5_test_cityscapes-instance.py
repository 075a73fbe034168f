# Released PSALM weights (EnmingZhang/PSALM converted by
# tools/model_converters/psalm_official_to_mmpsalm.py) on Cityscapes val,
# open-vocabulary instance segmentation (paper Tab. 11: mask AP, COCO-style
# here, see the dataset base) and the 19-class mIoU.
_base_ = [
    '../_base_/models/psalm_official.py',
    '../_base_/datasets/eval/cityscapes_ov.py', '../_base_/default_runtime.py'
]
