# Evaluate a (fine-tuned) PSALM on your own objects prompted by a point
# (data/custom/annotations/interactive_val.json from
# build_coco_interactive.py; docs/finetune.md): mIoU and cIoU. Other prompt
# types: --cfg-options test_dataloader.dataset.prompt_type=box
# "test_evaluator.prompt_types=[box]" (scribble, box, mask).
_base_ = ['../benchmarks/psalm_swin-b_phi-1.5_test_coco-interactive-point.py']

test_dataloader = dict(
    dataset=dict(
        data_root='data/custom/',
        ann_file='annotations/interactive_val.json',
        data_prefix=dict(img='images/')))
