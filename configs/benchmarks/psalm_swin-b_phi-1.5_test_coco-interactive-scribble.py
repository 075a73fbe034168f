# PSALM (Swin-B + Phi-1.5) on COCO-Interactive val with scribble prompts
# (paper Tab. 10: mIoU and cIoU).
_base_ = [
    '../_base_/models/psalm_swin-b_phi-1.5.py',
    '../_base_/datasets/eval/coco_interactive.py',
    '../_base_/default_runtime.py'
]

prompt_type = 'scribble'
test_dataloader = dict(dataset=dict(prompt_type=prompt_type))
test_evaluator = dict(prompt_types=(prompt_type, ))
