# PyTorch FSDP through mmengine's FlexibleRunner, configured like ZeRO-2
# (SHARD_GRAD_OP: gradients and optimizer states sharded, parameters
# gathered for the step), with bf16 autocast by mmengine's AmpOptimWrapper
# (weights and optimizer in fp32; PSALM's MixedPrecisionMSDeformAttn keeps
# the deformable sampling in fp32; bf16 needs no loss scaling, the scale is
# fixed at 1).
#
# The whole PSALM is one FSDP unit (no auto-wrap policy): its 1.6 B
# parameters fit on a training GPU when gathered, and the frozen Swin lives
# in the same flat parameter as trained parts, which `use_orig_params=True`
# allows. Gradient checkpointing is the language model's own (non-reentrant,
# `model.language_model.gradient_checkpointing`).
#
# Launch: tools/dist_train.sh CONFIG 8 (torchrun); tools/train.py builds the
# FlexibleRunner because of `runner_type`.
runner_type = 'FlexibleRunner'
strategy = dict(
    type='FSDPStrategy',
    model_wrapper=dict(
        type='MMFullyShardedDataParallel',
        use_orig_params=True,
        sharding_strategy='SHARD_GRAD_OP'),
    # checkpoints: one full state dict written by rank 0, loadable without
    # FSDP (tools/test.py, the converters)
    state_dict_cfg='full')
# The config that includes this file sets
#   optim_wrapper = dict(type='AmpOptimWrapper', dtype='bfloat16',
#                        loss_scale=1.0, use_fsdp=True)
# (mmengine forbids the same key in two bases, and the schedule defines
# optim_wrapper)
