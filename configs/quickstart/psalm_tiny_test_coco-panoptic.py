# The quickstart's COCO panoptic evaluation (tools/quickstart.sh): the
# benchmark configs/benchmarks/psalm_swin-b_phi-1.5_test_coco-panoptic.py
# (same bases, same protocol and metrics: PQ, thing mask AP, semantic mIoU
# from one 'panoptic' run) with the TINY PSALM of
# configs/_base_/models/psalm_tiny.py in place of the paper-size model,
# 256x256 inputs, on the fixture tree of
#   python tools/misc/prepare_fixture_data.py work_dirs/quickstart/data
# (val2017 = the 2 COCO val2017 images of tests/data).
_base_ = [
    '../_base_/models/psalm_tiny.py',
    '../_base_/datasets/eval/coco_panoptic.py',
    '../_base_/default_runtime.py'
]

data_root = 'work_dirs/quickstart/data/coco/'
image_size = 256
img_scale = (image_size, image_size)
test_pipeline = [
    dict(step, scale=img_scale) if step.type == 'Resize' else step
    for step in _base_.test_pipeline
]
test_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
# PQ, mask AP, semantic mIoU: the same metrics on the tree's files
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
