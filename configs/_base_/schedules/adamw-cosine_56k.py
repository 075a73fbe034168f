# PSALM stage-2 schedule (paper Tab. 16): AdamW lr 4e-5, no weight decay,
# 56k iterations, 1680 warm-up iterations, cosine decay. Configs that change
# the length redefine train_cfg and param_scheduler (text configs do not
# re-evaluate expressions of a base file).
max_iters = 56000
warmup_iters = 1680
lr = 4e-5

# training only: checkpoints are evaluated with configs/benchmarks/
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0))

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=warmup_iters, end=max_iters,
         eta_min=0.0)
]
auto_scale_lr = dict(enable=False, base_batch_size=64)
