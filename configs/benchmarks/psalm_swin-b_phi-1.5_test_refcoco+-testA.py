# PSALM (Swin-B + Phi-1.5) on RefCOCO+ testA (paper Tab. 8: cIoU), the
# standard protocol: one sample per expression.
_base_ = [
    '../_base_/models/psalm_swin-b_phi-1.5.py',
    '../_base_/datasets/eval/refcoco.py', '../_base_/default_runtime.py'
]

test_dataloader = dict(
    dataset=dict(
        ann_file='refcoco+/instances.json',
        split_file='refcoco+/refs(unc).p',
        split='testA'))
