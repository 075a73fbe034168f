# Open-vocabulary semantic segmentation evaluation (paper Tab. 11), the part
# shared by `ade20k_ov.py`, `pascal_context59.py`, `pascal_context459.py`,
# `pascal_voc20.py` and `cityscapes_ov.py`: every image prompted with all the
# class names of its dataset, task 'semantic'; mIoU follows detectron2's
# SemSegEvaluator (OVSemSegMetric).
# A dataset config inherits this file and sets `dataset_type`, `data_root`
# and, in `test_dataloader.dataset`, `type`, `data_root`, `data_prefix`
# (`ann_file`) and `class_names`; where it differs, also the pipeline (then
# `test_dataloader.dataset.pipeline` too: text configs bake the base
# variables in when they are read), the batch size or the ignore index of
# the metric.
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
        task='semantic',
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_evaluator = dict(type='OVSemSegMetric', ignore_index=255)
test_cfg = dict(type='TestLoop')
