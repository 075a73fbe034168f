# The quickstart's RefCOCO val evaluation (tools/quickstart.sh): the
# benchmark configs/benchmarks/psalm_swin-b_phi-1.5_test_refcoco-val.py (same
# bases, same protocol: one sample per expression, cIoU and mIoU) with the
# TINY PSALM of configs/_base_/models/psalm_tiny.py in place of the
# paper-size model, 256x256 inputs, on the fixture tree of
#   python tools/misc/prepare_fixture_data.py work_dirs/quickstart/data
# (the refer-toolkit sample's val split: 3 referents, 7 expressions).
_base_ = [
    '../_base_/models/psalm_tiny.py', '../_base_/datasets/eval/refcoco.py',
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
