# Released PSALM weights (EnmingZhang/PSALM converted by
# tools/model_converters/psalm_official_to_mmpsalm.py) on VQAv2 val
# (exact match, VQA accuracy; see the dataset base for the annotation format).
_base_ = [
    '../_base_/models/psalm_official.py',
    '../_base_/datasets/eval/vqa.py', '../_base_/default_runtime.py'
]
