# PASCAL-Context-59 open-vocabulary semantic segmentation (paper Tab. 11,
# PC59 mIoU): the 5105 val images of PASCAL VOC 2010, prompted with the 59
# class names of `class_names/pascal_context59.txt`, task 'semantic';
# label 0 (the other classes) is ignored (reduce_zero_label).
# Layout (mmseg's, `tools/dataset_converters/pascal_context.py`):
# data/VOCdevkit/VOC2010/{JPEGImages, SegmentationClassContext,
# ImageSets/SegmentationContext/val.txt}.
dataset_type = 'PSALMPascalContext59Dataset'
data_root = 'data/VOCdevkit/VOC2010/'
backend_args = None
img_scale = (1024, 1024)

test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='mmseg.LoadAnnotations', backend_args=backend_args),
    dict(type='PackPSALMInputs')
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
        data_prefix=dict(
            img_path='JPEGImages', seg_map_path='SegmentationClassContext'),
        ann_file='ImageSets/SegmentationContext/val.txt',
        class_names='pascal_context59',
        task='semantic',
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_evaluator = dict(type='OVSemSegMetric', ignore_index=255)
test_cfg = dict(type='TestLoop')
