# ADE20K-150 open-vocabulary semantic segmentation (paper Tab. 11, A150
# mIoU): the 2000 validation images, prompted with the 150 class names of
# `projects/psalm/datasets/class_names/ade150.txt` (ADE's synonyms joined
# into one name per class, as the official evaluation does), task
# 'semantic'. mIoU follows detectron2's SemSegEvaluator (OVSemSegMetric).
# Layout (mmseg's): data/ade/ADEChallengeData2016/{images,annotations}/
# validation; labels 0 (other) -> ignored, 1..150 -> 0..149
# (reduce_zero_label).
dataset_type = 'PSALMADE20KDataset'
data_root = 'data/ade/ADEChallengeData2016/'
backend_args = None
# long side to 1024 (aspect kept); the preprocessor pads to 1024x1024
img_scale = (1024, 1024)

test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    # after Resize: the label map keeps the original size for the metric
    dict(type='mmseg.LoadAnnotations', backend_args=backend_args),
    dict(type='PackPSALMInputs')
]
test_dataloader = dict(
    # one prompt (all class names) for every image: no padding in a batch
    batch_size=4,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(
            img_path='images/validation',
            seg_map_path='annotations/validation'),
        class_names='ade150',
        task='semantic',
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_evaluator = dict(type='OVSemSegMetric', ignore_index=255)
test_cfg = dict(type='TestLoop')
