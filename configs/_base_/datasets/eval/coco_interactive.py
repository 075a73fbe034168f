# COCO-Interactive val (paper Tab. 10): every non-crowd COCO val2017 instance
# prompted by a point, scribble, box or mask (appendix 8); one config per
# prompt type, every region one sample; mIoU (the official "gIoU") and cIoU.
# Defaults: point prompts; the benchmark configs set `prompt_type` of the
# dataset and `prompt_types` of the metric.
# Layout: data/coco/{val2017, annotations/coco_interactive_val_psalm.json},
# the json released by PSALM or built by
# tools/dataset_converters/build_coco_interactive.py.
dataset_type = 'COCOInteractiveDataset'
data_root = 'data/coco/'
backend_args = None
# long side to 1024 (aspect kept); the preprocessor pads to 1024x1024
img_scale = (1024, 1024)

test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    # decoded at the original size; points dilated (r=10), scribbles (r=5)
    dict(type='LoadVisualPrompts'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    # a prompt that vanishes in the resize is left out with its target
    # (logged), the official evaluation skips such images silently
    dict(type='ResizeVisualPrompts', skip_empty=True),
    # after Resize: the GT masks keep the original size for the metric
    dict(
        type='LoadAnnotations',
        with_bbox=False,
        with_mask=True,
        backend_args=backend_args),
    dict(
        type='PackPSALMInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor', 'prompt', 'prompt_type', 'gt_masks'))
]
test_dataloader = dict(
    # one task per batch; images with different numbers of regions are
    # right-padded (prompts and condition masks), which leaves every
    # sample's result unchanged
    batch_size=4,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/coco_interactive_val_psalm.json',
        data_prefix=dict(img='val2017/'),
        prompt_type='point',
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_evaluator = dict(type='InteractiveSegMetric', prompt_types=('point', ))
test_cfg = dict(type='TestLoop')
