# PASCAL-Context-459 open-vocabulary semantic segmentation (paper Tab. 11,
# PC459 mIoU): the 5105 val images prompted with all 459 class names of
# `class_names/pascal_context459.txt` (first synonym only above 200
# classes, official), task 'semantic' (`ov_semantic.py`). The labels are
# uint16 (classes 0..458, 65535 = ignore): LoadSemSegAnnotations keeps them
# (mmseg's LoadAnnotations casts to uint8) and the metric ignores 65535.
# Layout (detectron2 / FC-CLIP, `prepare_pascal_ctx_full_sem_seg.py`):
# data/pascal_ctx_d2/{images/validation/*.jpg,
# annotations_ctx459/validation/*.tif}.
_base_ = ['./ov_semantic.py']

dataset_type = 'PSALMPascalContext459Dataset'
data_root = 'data/pascal_ctx_d2/'
backend_args = {{_base_.backend_args}}

test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale={{_base_.img_scale}}, keep_ratio=True),
    dict(type='LoadSemSegAnnotations', backend_args=backend_args),
    dict(type='PackPSALMInputs')
]
test_dataloader = dict(
    # ~1.8k prompt tokens per image: small batches
    batch_size=2,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(
            img_path='images/validation',
            seg_map_path='annotations_ctx459/validation'),
        class_names='pascal_context459',
        pipeline=test_pipeline))
test_evaluator = dict(ignore_index=65535)
