# The quickstart's training job (tools/quickstart.sh): PSALM stage-2 joint
# training (configs/psalm_joint.py's four tasks and task sampler: panoptic,
# referring (RefCOCO/+/g), interactive (COCO-Interactive) and vqa (LLaVA
# format), one task per batch, 1:1:1:1 at random) of the TINY randomly
# initialised PSALM (configs/_base_/models/psalm_tiny_shapesworld.py: real
# Phi-1.5 tokenizer, small Swin and Phi) on the ShapesWorld training split:
#   python tools/dataset_converters/generate_shapesworld.py data/shapesworld
# 256x256 inputs, AdamW, warm-up + cosine, gradients clipped at norm 1.
# Evaluate with configs/shapesworld/psalm_tiny_test_shapesworld-*.py.
_base_ = [
    '../_base_/models/psalm_tiny_shapesworld.py',
    '../_base_/datasets/psalm_joint.py',
    '../_base_/default_runtime.py'
]

data_root = 'data/shapesworld/'
coco_root = data_root + 'coco/'
llava_root = data_root + 'llava/'
image_size = 256
max_iters = 3000
warmup_iters = 100
lr = 2e-3
batch_size = 2

# every Resize of the joint pipelines: long side to 256 (the data
# preprocessor of the tiny model pads to 256x256)
resize = dict(type='Resize', scale=(image_size, image_size), keep_ratio=True)
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

# psalm_joint.py's four sub-datasets (same order, same files) on the fixture
# tree and with the 256 pipelines
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=1,
    persistent_workers=True,
    # the paper's 1:1:1:1 random task schedule (mode='round_robin' cycles)
    batch_sampler=dict(mode='random'),
    dataset=dict(datasets=[
        dict(
            _base_.panoptic_train_dataset,
            data_root=coco_root,
            pipeline=panoptic_train_pipeline),
        dict(
            _base_.refcoco_train_dataset,
            datasets=[
                dict(d, data_root=coco_root, pipeline=refcoco_train_pipeline)
                for d in _base_.refcoco_train_dataset.datasets
            ]),
        dict(
            _base_.interactive_train_dataset,
            data_root=coco_root,
            pipeline=interactive_train_pipeline),
        dict(
            _base_.llava_train_dataset,
            data_root=llava_root,
            pipeline=llava_train_pipeline),
    ]))

# every part trained (psalm_tiny_shapesworld.py: a random Swin must learn);
# training only
find_unused_parameters = True
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)

# AdamW without weight decay, linear warm-up, cosine decay to 0 (the stage-2
# schedule's shape, short and with a learning rate for random weights; the
# clipping tames the first steps, whose gradient norms are in the hundreds)
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0),
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
