# PSALM stage 2 (configs/psalm_joint.py) trained with PyTorch FSDP in its
# ZeRO-2 form (SHARD_GRAD_OP) through mmengine's FlexibleRunner; bf16
# autocast by AmpOptimWrapper, fp32 weights and optimizer
# (configs/_base_/strategies/fsdp.py).
#   tools/dist_train.sh configs/psalm_swin-b_phi-1.5_16xb4-56k_coco-panoptic-refcoco-interactive-llava_fsdp.py 8  # noqa: E501
_base_ = [
    './psalm_joint.py',
    './_base_/strategies/fsdp.py',
]

# bf16 autocast; bf16 has fp32's range, so the loss scale stays 1; the
# FSDP-aware scaler agrees on skipped steps across ranks (ShardedGradScaler)
optim_wrapper = dict(
    type='AmpOptimWrapper', dtype='bfloat16', loss_scale=1.0, use_fsdp=True)

# keep the GPUs fed: 1024x1024 decoding, resizing and panoptic PNGs
train_dataloader = dict(
    num_workers=8, persistent_workers=True, pin_memory=True,
    prefetch_factor=4)
