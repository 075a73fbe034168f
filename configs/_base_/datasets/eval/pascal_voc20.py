# PASCAL VOC-20 open-vocabulary semantic segmentation (paper Tab. 11, PAS20
# mIoU): the 1449 VOC 2012 val images prompted with the 20 object classes
# of `class_names/voc20.txt`, task 'semantic'; background (0) and the
# object boundaries (255) are ignored.
# Layout (mmseg's): data/VOCdevkit/VOC2012/{JPEGImages, SegmentationClass,
# ImageSets/Segmentation/val.txt}.
dataset_type = 'PSALMPascalVOC20Dataset'
data_root = 'data/VOCdevkit/VOC2012/'
backend_args = None
img_scale = (1024, 1024)

test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    # mmseg's label map of the dataset: background -> 255, k -> k - 1
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
            img_path='JPEGImages', seg_map_path='SegmentationClass'),
        ann_file='ImageSets/Segmentation/val.txt',
        class_names='voc20',
        task='semantic',
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_evaluator = dict(type='OVSemSegMetric', ignore_index=255)
test_cfg = dict(type='TestLoop')
