# Evaluate a (fine-tuned) PSALM on your own referring expressions
# (data/custom/annotations/refs_val.json from expressions_to_refcoco.py;
# docs/finetune.md): one sample per expression, task 'gres' (one, several or
# no target): cIoU, gIoU, N-acc, T-acc (GRESMetric; an empty mask answers
# "no target"; masks scoring above test_cfg.gres_threshold are merged).
_base_ = ['../benchmarks/psalm_swin-b_phi-1.5_test_grefcoco-val.py']

test_dataloader = dict(
    dataset=dict(
        data_root='data/custom/',
        ann_file='annotations/refs_val.json',
        split_file=None,
        data_prefix=dict(img_path='images/')))
