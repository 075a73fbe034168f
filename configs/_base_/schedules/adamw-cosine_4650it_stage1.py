# PSALM stage-1 (vision-language alignment) schedule, paper Tab. 15 (LLaVA's
# alignment recipe): AdamW lr 2e-3, betas (0.9, 0.999), no weight decay,
# 4650 iterations (one pass over CC3M-595K at batch 128), 140 warm-up
# iterations (3%), cosine decay to 0. No validation.
max_iters = 4650
warmup_iters = 140
lr = 2e-3

train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0))

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
# 16 GPUs x 8 images; `--auto-scale-lr` rescales lr for another total batch
auto_scale_lr = dict(enable=False, base_batch_size=128)
