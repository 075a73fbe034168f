# PSALM stage 2 with the ablation schedule (paper Sec. 4.3, appendix 7,
# Tab. 16): the joint training of
# psalm_swin-b_phi-1.5_16xb4-56k_coco-panoptic-refcoco-interactive-llava.py
# shortened to 9k iterations with 270 warm-up iterations.
_base_ = [
    './psalm_swin-b_phi-1.5_16xb4-56k_coco-panoptic-refcoco-interactive-llava.py'  # noqa: E501
]

max_iters = 9000
warmup_iters = 270

train_cfg = dict(max_iters=max_iters)
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=False,
        begin=0,
        end=warmup_iters),
    dict(
        type='CosineAnnealingLR',
        by_epoch=False,
        begin=warmup_iters,
        end=max_iters,
        eta_min=0.0)
]
