# Released PSALM weights (EnmingZhang/PSALM converted by
# tools/model_converters/psalm_official_to_mmpsalm.py) on RefCOCO+
# testA (paper Tab. 8: cIoU) with the official PSALM protocol: one sample
# per referent, all its expressions in one prompt -- the protocol of the
# paper's numbers.
_base_ = [
    '../_base_/models/psalm_official.py',
    '../_base_/datasets/eval/refcoco.py', '../_base_/default_runtime.py'
]

model = dict(input_schema=dict(merge_sentences=True))
test_dataloader = dict(
    dataset=dict(
        ann_file='refcoco+/instances.json',
        split_file='refcoco+/refs(unc).p',
        split='testA',
        protocol='merged'))
