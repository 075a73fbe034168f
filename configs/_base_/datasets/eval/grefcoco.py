# Generalised referring segmentation on gRefCOCO (paper Tab. 12, zero-shot:
# cIoU and gIoU; N-acc / T-acc are logged too). One sample per expression;
# the prediction is the union of the masks of every query whose score
# (sigmoid(sentence logit) x mask score) is above the model's
# `test_cfg.gres_threshold` (0.6, paper Sec. 4.5); no query above it is the
# "no target" answer (an empty mask).
# Defaults: val; the benchmark configs set `split` (val / testA / testB).
# Layout (gRefCOCO release, refer-toolkit format): data/coco/{train2014,
# grefcoco/grefs(unc).json, grefcoco/instances.json}. The official PSALM
# jsons also load: `split_file=None`,
# `ann_file='grefcoco/grefcoco_val_psalm.json'`.
dataset_type = 'PSALMGRefCocoDataset'
data_root = 'data/coco/'
backend_args = None
img_scale = (1024, 1024)

test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    # after Resize: the GT masks keep the original size for the metric
    dict(
        type='LoadAnnotations',
        with_bbox=False,
        with_mask=True,
        backend_args=backend_args),
    # `gt_masks` as a meta key: the union of the targets (all zeros for a
    # no-target expression), [1, H, W]
    dict(
        type='PackPSALMInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor', 'prompt', 'gt_masks'))
]
test_dataloader = dict(
    batch_size=4,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='train2014/'),
        ann_file='grefcoco/instances.json',
        split_file='grefcoco/grefs(unc).json',
        split='val',
        protocol='per_expression',
        test_mode=True,
        pipeline=test_pipeline))
test_evaluator = dict(type='GRESMetric')
test_cfg = dict(type='TestLoop')
