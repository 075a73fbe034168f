# PSALM (Swin-B + Phi-1.5) zero-shot on gRefCOCO testA (paper Tab. 12: cIoU,
# gIoU); masks of the queries scoring above 0.6 are merged.
_base_ = [
    '../_base_/models/psalm_swin-b_phi-1.5.py',
    '../_base_/datasets/eval/grefcoco.py', '../_base_/default_runtime.py'
]

model = dict(test_cfg=dict(gres_threshold=0.6))
test_dataloader = dict(dataset=dict(split='testA'))
