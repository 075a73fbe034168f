# The quickstart's training job (tools/quickstart.sh): PSALM stage-2 joint
# training (configs/psalm_joint.py: panoptic, referring, interactive and vqa
# batches, one task per batch) of the TINY randomly initialised PSALM
# (configs/_base_/models/psalm_tiny.py: 1-block Swin, 2-layer Phi with the
# real Phi-1.5 tokenizer, 32-wide mask generator) on the real fixture data of
# tests/data, laid out by
#   python tools/misc/prepare_fixture_data.py work_dirs/quickstart/data
# as the README's data/ tree (2 COCO val2017 images, their panoptic and
# instance annotations, 15 RefCOCO/+/g train refs, COCO-Interactive built
# from the panoptic sample, 5 LLaVA records).
# 1 process x batch 2, 256x256 inputs, 1000 iterations (warm-up 50 +
# cosine), AdamW lr 2e-3, gradients clipped at norm 1, log every 20
# iterations, one checkpoint at the end: about 3 minutes on a 2-core CPU
# with OMP_NUM_THREADS=1 (4x faster than 2 threads for these tiny tensors).
# (300 iterations leave the masks nearly empty: every metric but semantic
# mIoU measured 0 to 3.) A plumbing demonstration, not a model: evaluate with
# configs/quickstart/psalm_tiny_test_*.py.
_base_ = [
    '../_base_/models/psalm_tiny.py',
    '../_base_/datasets/psalm_joint.py',
    '../_base_/default_runtime.py'
]

data_root = 'work_dirs/quickstart/data/'
coco_root = data_root + 'coco/'
llava_root = data_root + 'llava/'
image_size = 256
max_iters = 1000
warmup_iters = 50
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

# as configs/psalm_joint.py: Swin frozen (psalm_tiny keeps the paper's
# frozen_modules), every other part trained; training only
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
