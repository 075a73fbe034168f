# Released PSALM weights (EnmingZhang/PSALM converted by
# tools/model_converters/psalm_official_to_mmpsalm.py) on gRefCOCO testA
# (zero-shot, paper Tab. 12: cIoU, gIoU) with the official evaluation
# (psalm/eval/eval_grefcoco.py): one sample per gRef with all its
# expressions in one prompt, the union of the masks scoring above 0.6, the
# top-1 mask when none does (never "no target": N-acc is 0 by design).
_base_ = [
    '../_base_/models/psalm_official.py',
    '../_base_/datasets/eval/grefcoco.py', '../_base_/default_runtime.py'
]

model = dict(
    input_schema=dict(merge_sentences=True),
    test_cfg=dict(gres_threshold=0.6, gres_fallback_top1=True))
test_dataloader = dict(dataset=dict(protocol='merged', split='testA'))
