# Runtime shared by every PSALM config (mmdet conventions, iteration-based).
default_scope = 'mmdet'
custom_imports = dict(imports=['projects.psalm'], allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # written to a temporary file and renamed, last_checkpoint updated and
    # old checkpoints deleted only after: a kill during a save leaves the
    # previous checkpoint loadable (projects/psalm/engine/hooks/)
    checkpoint=dict(
        type='AtomicCheckpointHook',
        interval=5000,
        by_epoch=False,
        max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='DetVisualizationHook'),
    # (PSALM hooks kept here rather than in custom_hooks, which configs
    # replace: every config inherits them; `default_hooks.<name>=None` turns
    # one off)
    # RNG states of every rank in each checkpoint, restored on --resume
    random_state=dict(type='RandomStateHook'),
    # a NaN/Inf loss or gradient stops the run, naming iteration and task,
    # before the weights change (action='skip' drops such steps instead)
    non_finite=dict(type='NonFiniteCheckHook', action='stop'))
# Runner checkpoints hold only tensors and plain Python, so they load with
# torch.load(weights_only=True) (see projects/psalm/engine/checkpoint.py).
custom_hooks = [dict(type='SafeCheckpointHook')]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(
    type='DetLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=False)

log_level = 'INFO'
load_from = None
resume = False
