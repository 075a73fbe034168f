# PSALM stage 2 (configs/psalm_joint.py) trained with DeepSpeed ZeRO-2, the
# official code's strategy, through mmengine's FlexibleRunner; bf16
# autocast, fp32 weights and optimizer (configs/_base_/strategies/).
#   tools/dist_train.sh configs/psalm_swin-b_phi-1.5_16xb4-56k_coco-panoptic-refcoco-interactive-llava_deepspeed-zero2.py 8  # noqa: E501
# Needs `pip install deepspeed` (not part of requirements/).
_base_ = [
    './psalm_joint.py',
    './_base_/strategies/deepspeed_zero2.py',
]

# DeepSpeed runs backward and step (the AdamW and schedule of psalm_joint)
optim_wrapper = dict(type='DeepSpeedOptimWrapper')

# NonFiniteCheckHook guards an mmengine OptimWrapper; DeepSpeed does
# backward and step in one call (tools/train.py removes hooks set to None)
default_hooks = dict(non_finite=None)

# keep the GPUs fed: 1024x1024 decoding, resizing and panoptic PNGs
train_dataloader = dict(
    num_workers=8, persistent_workers=True, pin_memory=True,
    prefetch_factor=4)
