# Step 1 of the ShapesWorld quickstart (tools/quickstart.sh): pre-train the
# tiny PSALM's Swin (configs/_base_/models/psalm_tiny_shapesworld.py) on the
# ShapesWorld TRAINING split, the stand-in for the pre-trained Swin-B PSALM
# starts from (the training config then loads this run's 'backbone.'
# weights and freezes them, as the paper freezes its Swin-B). Every segment
# of the panoptic annotations (6 shapes and 4 stuff textures) is the mean of
# the stride-8 Swin level under its mask, classified by a linear layer
# (ObjectClassifier):
#   python tools/train.py configs/shapesworld/swin-tiny-convstem_objcls_1xb4-1k_shapesworld.py \
#       --work-dir work_dirs/quickstart/swin_pretrain
# 1000 iterations x 4 images at 256x256, AdamW 2e-3, warm-up + cosine.
_base_ = [
    '../_base_/models/psalm_tiny_shapesworld.py',
    '../_base_/datasets/coco_panoptic.py', '../_base_/default_runtime.py'
]

data_root = 'data/shapesworld/coco/'
num_classes = 10  # 6 thing + 4 stuff categories
max_iters = 1000
warmup_iters = 50

model = dict(
    _delete_=True,
    type='ObjectClassifier',
    data_preprocessor=_base_.model.data_preprocessor,
    backbone=_base_.model.backbone,
    num_classes=num_classes,
    in_channels=_base_.swin_channels[1],
    level=1)

train_pipeline = [
    dict(step, scale=(256, 256)) if step.type == 'Resize' else step
    for step in _base_.panoptic_train_pipeline
]
train_dataloader = dict(
    batch_size=4,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        _base_.panoptic_train_dataset,
        data_root=data_root,
        pipeline=train_pipeline))
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=warmup_iters),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=warmup_iters,
         end=max_iters, eta_min=0.0)
]
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
randomness = dict(seed=0)
load_from = None
