# ShapesWorld interactive segmentation with box prompts (held-out val split;
# mIoU, cIoU): configs/shapesworld/psalm_tiny_test_shapesworld-interactive-point.py
# (the benchmark configs/benchmarks/psalm_swin-b_phi-1.5_test_coco-interactive-box.py
# with the ShapesWorld tiny PSALM at 256x256) with box prompts
_base_ = ['./psalm_tiny_test_shapesworld-interactive-point.py']

prompt_type = 'box'
test_dataloader = dict(dataset=dict(prompt_type=prompt_type))
test_evaluator = dict(prompt_types=(prompt_type, ))
