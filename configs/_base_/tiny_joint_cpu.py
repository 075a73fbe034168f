# Shared by the small CPU joint trainings (configs/fixtures/ on the real
# fixture data, configs/shapesworld/ for the quickstart): configs/psalm_joint.py's
# four tasks and task sampler with every pipeline resized to 256x256, 1
# process x batch 2, AdamW lr 2e-3 without weight decay, linear warm-up +
# cosine, gradients clipped at norm 1, log every 20 iterations, one
# checkpoint at the end. A child adds the model base and the four
# sub-datasets on its data tree (with these pipelines), and may change the
# length (max_iters / warmup_iters: then also train_cfg, param_scheduler and
# default_hooks.checkpoint).
_base_ = ['./datasets/psalm_joint.py', './default_runtime.py']

train_scale = (256, 256)
max_iters = 1000
warmup_iters = 50
lr = 2e-3
batch_size = 2

# every Resize of the joint pipelines: long side to 256 (the data
# preprocessor of the tiny model pads to 256x256)
resize = dict(type='Resize', scale=train_scale, keep_ratio=True)
panoptic_train_pipeline = [
    resize if step.type == 'Resize' else step
    for step in _base_.panoptic_train_pipeline
]
refcoco_train_pipeline = [
    resize if step.type == 'Resize' else step
    for step in _base_.refcoco_train_pipeline
]
interactive_train_pipeline = [
    resize if step.type == 'Resize' else step
    for step in _base_.interactive_train_pipeline
]
llava_train_pipeline = [
    resize if step.type == 'Resize' else step
    for step in _base_.llava_train_pipeline
]
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=1,
    persistent_workers=True,
    # the paper's 1:1:1:1 random task schedule (mode='round_robin' cycles)
    batch_sampler=dict(mode='random'))

# the trained parts are the model's (frozen_modules); training only
find_unused_parameters = True
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)

# AdamW without weight decay, linear warm-up, cosine decay to 0 (the stage-2
# schedule's shape, short and with a learning rate for random weights; the
# clipping tames the first steps, whose gradient norms are in the hundreds)
# (fused: one kernel per step instead of a dozen per tensor; the 3.3M-entry
# token embedding made the default AdamW step a quarter of a tiny iteration:
# 21 -> 3.4 ms per step, 19% less time per iteration, same update)
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW',
        lr=lr,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0.0,
        fused=True),
    clip_grad=dict(max_norm=1.0))
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
auto_scale_lr = dict(enable=False, base_batch_size=batch_size)

default_hooks = dict(
    logger=dict(interval=20),
    # one checkpoint, at the end
    checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
log_processor = dict(window_size=20)
custom_hooks = [
    dict(type='SamplerResumeHook'),
    dict(type='SafeCheckpointHook')
]
randomness = dict(seed=0)
load_from = None  # random weights
