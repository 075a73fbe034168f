# The quickstart's COCO-Interactive evaluation with point prompts
# (tools/quickstart.sh): the benchmark
# configs/benchmarks/psalm_swin-b_phi-1.5_test_coco-interactive-point.py
# (same bases, same protocol: every region one point prompt, mIoU and cIoU)
# with the TINY PSALM of configs/_base_/models/psalm_tiny.py in place of the
# paper-size model, 256x256 inputs, on the fixture tree of
#   python tools/misc/prepare_fixture_data.py work_dirs/quickstart/data
# (COCO-Interactive val built from the 2 images: 47 regions).
_base_ = [
    '../_base_/models/psalm_tiny.py',
    '../_base_/datasets/eval/coco_interactive.py',
    '../_base_/default_runtime.py'
]

data_root = 'work_dirs/quickstart/data/coco/'
image_size = 256
img_scale = (image_size, image_size)
test_pipeline = [
    dict(step, scale=img_scale) if step.type == 'Resize' else step
    for step in _base_.test_pipeline
]
prompt_type = 'point'
test_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root, pipeline=test_pipeline, prompt_type=prompt_type))
test_evaluator = dict(prompt_types=(prompt_type, ))
