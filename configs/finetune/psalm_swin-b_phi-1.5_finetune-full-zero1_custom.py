# The FULL recipe with ZeRO-1 over the GPUs: torch's ZeroRedundancyOptimizer
# keeps 1/N of the AdamW states on each of N GPUs (the model, gradients and
# data parallelism stay mmengine's DDP, so bf16 autocast and gradient
# checkpointing work as in the full recipe).
# Memory (docs/finetune.md; computed, not measured), 8 GPUs: peak about
# 21 GiB per GPU at 1024x1024 with 1 image per GPU, 31 GiB with 4 -> 24 GB
# GPUs with 1 image each, 40 GB ones with up to 4.
#   tools/dist_train.sh \
#       configs/finetune/psalm_swin-b_phi-1.5_finetune-full-zero1_custom.py 8
# (ZeRO-2/3, i.e. sharded gradients too, are not provided: DeepSpeed's bf16
# mode casts the whole model to bf16, which PSALM does not support, and
# FSDP's SHARD_GRAD_OP could not be checked without GPUs; see
# docs/finetune.md.)
_base_ = ['./psalm_swin-b_phi-1.5_finetune-full_custom.py']

optim_wrapper = dict(
    optimizer=dict(
        _delete_=True,
        type='ZeroRedundancyOptimizer',
        optimizer_type='AdamW',
        lr={{_base_.lr}},
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0.0))
# mmengine's Runner writes checkpoints on rank 0 only, while the sharded
# AdamW states can only be gathered by all ranks together (rank 0 alone
# would wait for the others forever): checkpoints hold the model, not the
# optimizer, so --resume restarts AdamW's moments (the schedule, the task
# sampler and the weights resume exactly)
default_hooks = dict(checkpoint=dict(save_optimizer=False))
