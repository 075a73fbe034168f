# ShapesWorld Generalized referring, zero-shot (gRefCOCO format, incl. multi- and no-target expressions; cIoU, gIoU, N-acc, T-acc)
# on the held-out val split: the benchmark
# configs/benchmarks/psalm_swin-b_phi-1.5_test_grefcoco-val.py with the TINY
# PSALM at 256x256 on the tree of
#   python tools/dataset_converters/generate_shapesworld.py data/shapesworld
_base_ = [
    '../_base_/models/psalm_tiny_shapesworld.py', '../_base_/datasets/eval/grefcoco.py',
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
model = dict(test_cfg=dict(gres_threshold=0.6))
