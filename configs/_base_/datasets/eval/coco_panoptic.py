# COCO panoptic val2017 (5000 images, 133 classes: 80 things + 53 stuff)
# evaluated the Mask2Former way (paper Sec. 4.4, Tab. 9) in ONE run of the
# 'panoptic' task, whose predictions carry all three outputs:
#   * PQ / SQ / RQ (all, things, stuff) of `pred_panoptic_seg` on the
#     panoptic json and PNGs;
#   * mask AP on the 80 thing classes of `pred_instances` (top-100 queries,
#     thing classes only) on the standard `instances_val2017.json`, as
#     Mask2Former does. (The official PSALM scores AP in a separate run of
#     its 'instance' task, against `instruction_dataset_coco_format.json`:
#     detectron2's conversion of its `instance_val_psalm.json`, itself built
#     from `instances_val2017.json`.) CocoMetric maps label i to the i-th
#     instance-json category whose name is in `classes`; the panoptic json
#     lists the 80 things first, in the instance json's order, so the thing
#     labels 0-79 map one to one. mmdet reports AP as a fraction (0-1);
#   * semantic mIoU of `pred_sem_seg` against the panoptic PNG with the
#     segments of a class merged (crowd included, VOID ignored), i.e.
#     Mask2Former's `panoptic_semseg_val2017` maps, built on the fly by
#     PanopticSemSegMetric (detectron2's mIoU, fwIoU, mACC, pACC).
# Layout (mmdet's): data/coco/{val2017, annotations/panoptic_val2017.json,
# annotations/panoptic_val2017/*.png, annotations/instances_val2017.json}.
dataset_type = 'PSALMCocoPanopticDataset'
data_root = 'data/coco/'
backend_args = None
# long side to 1024 (aspect kept); the preprocessor pads to 1024x1024
img_scale = (1024, 1024)

test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    # default meta keys: prompt, is_thing, segments_info, seg_map_path, ...
    dict(type='PackPSALMInputs')
]
test_dataloader = dict(
    # one task and one prompt (all 133 class names) for every image, so
    # batched sequences need no padding
    batch_size=4,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        task='panoptic',
        data_root=data_root,
        ann_file='annotations/panoptic_val2017.json',
        data_prefix=dict(
            img='val2017/', seg='annotations/panoptic_val2017/'),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_evaluator = [
    dict(
        type='PSALMPanopticMetric',
        ann_file=data_root + 'annotations/panoptic_val2017.json',
        seg_prefix=data_root + 'annotations/panoptic_val2017/',
        backend_args=backend_args),
    dict(
        type='CocoMetric',
        ann_file=data_root + 'annotations/instances_val2017.json',
        metric='segm',
        backend_args=backend_args),
    dict(type='PanopticSemSegMetric', backend_args=backend_args)
]
test_cfg = dict(type='TestLoop')
