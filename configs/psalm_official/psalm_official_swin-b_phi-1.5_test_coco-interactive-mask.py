# Released PSALM weights (EnmingZhang/PSALM converted by
# tools/model_converters/psalm_official_to_mmpsalm.py) on COCO-Interactive
# val with mask prompts (paper Tab. 10: mIoU and cIoU); the official
# prompt encoding (256 sampled points on the projected image tokens).
_base_ = [
    '../_base_/models/psalm_official.py',
    '../_base_/datasets/eval/coco_interactive.py',
    '../_base_/default_runtime.py'
]

prompt_type = 'mask'
test_dataloader = dict(dataset=dict(prompt_type=prompt_type))
test_evaluator = dict(prompt_types=(prompt_type, ))
