# Referring segmentation evaluation on RefCOCO / RefCOCO+ / RefCOCOg
# (paper Tab. 8, cIoU; mIoU is logged too). Defaults: RefCOCO (UNC) val;
# the benchmark configs set `ann_file`, `split_file` and `split`:
#   RefCOCO  refcoco/refs(unc).p   val / testA / testB
#   RefCOCO+ refcoco+/refs(unc).p  val / testA / testB
#   RefCOCOg refcocog/refs(umd).p  val / test
# Protocol (`test_dataloader.dataset.protocol`):
#   * 'per_expression' (default, the standard protocol of Tab. 8's other
#     methods): one sample per expression;
#   * 'merged' (the official PSALM evaluation, reference Sec. 9 item 7): one
#     sample per referent whose prompt holds all its expressions; the model
#     needs `input_schema.merge_sentences=True` (see the *-merged configs).
# Layout (mmdet's `refcoco.py`): data/coco/{train2014,
# refcoco*/instances.json, refcoco*/refs(*).p}. The official PSALM jsons
# (`build_RefCOCO.py`, one per split) also load: `split_file=None`,
# `ann_file='refcoco/refcoco_val_psalm.json'`.
dataset_type = 'PSALMRefCocoDataset'
data_root = 'data/coco/'
backend_args = None
# long side to 1024 (aspect kept); the preprocessor pads to 1024x1024
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
    # `gt_masks` as a meta key: the union of the referent's masks, [1, H, W]
    dict(
        type='PackPSALMInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor', 'prompt', 'gt_masks'))
]
test_dataloader = dict(
    # one task per batch; sentences of different lengths are right-padded,
    # which leaves every sample's result unchanged
    batch_size=4,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(img_path='train2014/'),
        ann_file='refcoco/instances.json',
        split_file='refcoco/refs(unc).p',
        split='val',
        protocol='per_expression',
        test_mode=True,
        pipeline=test_pipeline))
test_evaluator = dict(type='ReferSegMetric')
test_cfg = dict(type='TestLoop')
