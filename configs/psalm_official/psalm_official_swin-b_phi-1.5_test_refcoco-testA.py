# Released PSALM weights (EnmingZhang/PSALM converted by
# tools/model_converters/psalm_official_to_mmpsalm.py) on RefCOCO
# testA (paper Tab. 8: cIoU) with the standard protocol, one sample per
# expression; the paper's number is the official protocol of
# psalm_official_swin-b_phi-1.5_test_refcoco-testA-merged.py.
_base_ = [
    '../_base_/models/psalm_official.py',
    '../_base_/datasets/eval/refcoco.py', '../_base_/default_runtime.py'
]

test_dataloader = dict(dataset=dict(split='testA'))
