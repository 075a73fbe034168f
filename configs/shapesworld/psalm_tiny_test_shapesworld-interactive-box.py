# ShapesWorld interactive segmentation with box prompts (COCO-Interactive
# format, built by tools/dataset_converters/build_coco_interactive.py; held-out
# val split; mIoU, cIoU): the benchmark
# configs/benchmarks/psalm_swin-b_phi-1.5_test_coco-interactive-box.py with
# the TINY PSALM at 256x256 on the tree of
#   python tools/dataset_converters/generate_shapesworld.py data/shapesworld
_base_ = [
    '../_base_/models/psalm_tiny_shapesworld.py',
    '../_base_/datasets/eval/coco_interactive.py',
    '../_base_/default_runtime.py'
]

data_root = 'data/shapesworld/coco/'
image_size = 256
img_scale = (image_size, image_size)
prompt_type = 'box'
test_pipeline = [
    dict(step, scale=img_scale) if step.type == 'Resize' else step
    for step in _base_.test_pipeline
]
test_dataloader = dict(
    num_workers=1,
    dataset=dict(
        data_root=data_root, prompt_type=prompt_type, pipeline=test_pipeline))
test_evaluator = dict(prompt_types=(prompt_type, ))
