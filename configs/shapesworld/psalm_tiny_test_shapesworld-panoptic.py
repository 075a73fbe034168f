# ShapesWorld panoptic evaluation (held-out val split): the benchmark
# configs/benchmarks/psalm_swin-b_phi-1.5_test_coco-panoptic.py (same bases,
# protocol and metrics: PQ, thing mask AP, semantic mIoU from one 'panoptic'
# run) with the TINY PSALM at 256x256 on the tree of
#   python tools/dataset_converters/generate_shapesworld.py data/shapesworld
_base_ = [
    '../_base_/models/psalm_tiny_shapesworld.py',
    '../_base_/datasets/eval/coco_panoptic.py',
    '../_base_/default_runtime.py'
]

data_root = 'data/shapesworld/coco/'
image_size = 256
img_scale = (image_size, image_size)
test_pipeline = [
    dict(step, scale=img_scale) if step.type == 'Resize' else step
    for step in _base_.test_pipeline
]
test_dataloader = dict(
    num_workers=1,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_evaluator = [
    dict(
        _base_.test_evaluator[0],
        ann_file=data_root + 'annotations/panoptic_val2017.json',
        seg_prefix=data_root + 'annotations/panoptic_val2017/'),
    dict(
        _base_.test_evaluator[1],
        ann_file=data_root + 'annotations/instances_val2017.json'),
    _base_.test_evaluator[2],
]
