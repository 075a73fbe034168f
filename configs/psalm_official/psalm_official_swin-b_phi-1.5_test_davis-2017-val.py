# Released PSALM weights (EnmingZhang/PSALM converted by
# tools/model_converters/psalm_official_to_mmpsalm.py) on DAVIS-2017 val,
# zero-shot semi-supervised VOS (paper Tab. 13: J&F, J, F) with the official
# protocol; DAVIS-palette PNGs in work_dirs/davis2017_val/Annotations/.
_base_ = [
    '../_base_/models/psalm_official.py',
    '../_base_/datasets/eval/davis2017.py', '../_base_/default_runtime.py'
]
