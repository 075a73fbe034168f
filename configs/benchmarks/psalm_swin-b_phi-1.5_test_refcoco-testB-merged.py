# PSALM (Swin-B + Phi-1.5) on RefCOCO testB (paper Tab. 8: cIoU), the
# official PSALM protocol: one sample per referent, all its expressions
# in one prompt.
_base_ = [
    '../_base_/models/psalm_swin-b_phi-1.5.py',
    '../_base_/datasets/eval/refcoco.py', '../_base_/default_runtime.py'
]

model = dict(input_schema=dict(merge_sentences=True))
test_dataloader = dict(dataset=dict(split='testB', protocol='merged'))
