# A real, small end-to-end job of the foundation: a tiny mmdet Mask2Former
# (Swin -> PSALM's mixed-precision-safe deformable pixel decoder ->
# Mask2Former decoder) trained for a few iterations on the two real COCO
# val2017 images in tests/data, then evaluated with COCO mask AP.
# CPU-friendly: 256x256 inputs, 32 channels, 20 queries.
_base_ = ['../_base_/default_runtime.py']

data_root = 'tests/data/coco_panoptic_sample/'
image_size = (256, 256)
num_things_classes = 80
num_stuff_classes = 0
num_classes = num_things_classes + num_stuff_classes
feat = 32

model = dict(
    type='Mask2Former',
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=32,
        pad_mask=True,
        mask_pad_value=0,
        pad_seg=False),
    backbone=dict(
        type='SwinTransformer',
        embed_dims=16,
        depths=[1, 1, 1, 1],
        num_heads=[1, 2, 4, 8],
        window_size=4,
        mlp_ratio=2,
        qkv_bias=True,
        drop_path_rate=0.0,
        patch_norm=True,
        out_indices=(0, 1, 2, 3),
        with_cp=False,
        convert_weights=False,
        init_cfg=None),
    panoptic_head=dict(
        type='Mask2FormerHead',
        in_channels=[16, 32, 64, 128],
        strides=[4, 8, 16, 32],
        feat_channels=feat,
        out_channels=feat,
        num_things_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes,
        num_queries=20,
        num_transformer_feat_level=3,
        pixel_decoder=dict(
            type='PSALMPixelDecoder',
            num_outs=3,
            norm_cfg=dict(type='GN', num_groups=8),
            act_cfg=dict(type='ReLU'),
            encoder=dict(
                num_layers=1,
                layer_cfg=dict(
                    self_attn_cfg=dict(
                        embed_dims=feat, num_heads=4, num_levels=3,
                        num_points=2, dropout=0.0, batch_first=True),
                    ffn_cfg=dict(
                        embed_dims=feat, feedforward_channels=64, num_fcs=2,
                        ffn_drop=0.0, act_cfg=dict(type='ReLU', inplace=True)))),
            positional_encoding=dict(num_feats=feat // 2, normalize=True)),
        enforce_decoder_input_project=False,
        positional_encoding=dict(num_feats=feat // 2, normalize=True),
        transformer_decoder=dict(
            return_intermediate=True,
            num_layers=3,
            layer_cfg=dict(
                self_attn_cfg=dict(embed_dims=feat, num_heads=4, dropout=0.0,
                                   batch_first=True),
                cross_attn_cfg=dict(embed_dims=feat, num_heads=4, dropout=0.0,
                                    batch_first=True),
                ffn_cfg=dict(embed_dims=feat, feedforward_channels=64,
                             num_fcs=2, ffn_drop=0.0,
                             act_cfg=dict(type='ReLU', inplace=True))),
            init_cfg=None),
        loss_cls=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=2.0,
            reduction='mean', class_weight=[1.0] * num_classes + [0.1]),
        loss_mask=dict(
            type='CrossEntropyLoss', use_sigmoid=True, reduction='mean',
            loss_weight=5.0),
        loss_dice=dict(
            type='DiceLoss', use_sigmoid=True, activate=True, reduction='mean',
            naive_dice=True, eps=1.0, loss_weight=5.0)),
    panoptic_fusion_head=dict(
        type='MaskFormerFusionHead',
        num_things_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes,
        loss_panoptic=None,
        init_cfg=None),
    train_cfg=dict(
        num_points=1024,
        oversample_ratio=3.0,
        importance_sample_ratio=0.75,
        assigner=dict(
            type='HungarianAssigner',
            match_costs=[
                dict(type='ClassificationCost', weight=2.0),
                dict(type='CrossEntropyLossCost', weight=5.0, use_sigmoid=True),
                dict(type='DiceCost', weight=5.0, pred_act=True, eps=1.0)
            ]),
        sampler=dict(type='MaskPseudoSampler')),
    test_cfg=dict(
        panoptic_on=False, semantic_on=False, instance_on=True,
        max_per_image=20, iou_thr=0.8, filter_low_score=True),
    init_cfg=None)

backend_args = None
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True, poly2mask=True),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    # padding happens in the data preprocessor; a Pad here would make
    # img_shape the padded size and stretch the rescaled masks
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                    'scale_factor'))
]
dataset = dict(
    type='CocoDataset',
    data_root=data_root,
    ann_file='panoptic_coco_detection_format.json',
    data_prefix=dict(img='input_images/'),
    filter_cfg=dict(filter_empty_gt=True, min_size=1),
    backend_args=backend_args)
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(**dataset, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(**dataset, test_mode=True, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(
    type='CocoMetric',
    ann_file=data_root + 'panoptic_coco_detection_format.json',
    metric=['segm'],
    format_only=False,
    backend_args=backend_args)
test_evaluator = val_evaluator

max_iters = 60
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.0),
    clip_grad=dict(max_norm=1.0, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=10),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=10, end=max_iters)
]
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=max_iters, max_keep_ckpts=1),
    visualization=dict(type='DetVisualizationHook', draw=False))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
