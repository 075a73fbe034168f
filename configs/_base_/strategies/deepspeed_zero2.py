# DeepSpeed ZeRO-2 through mmengine's FlexibleRunner: optimizer states and
# gradients sharded over the data-parallel ranks, as the official PSALM
# training (scripts/zero2.json: ZeRO stage 2, overlapped communication,
# contiguous gradients, no gradient clipping).
#
# Precision: the official run used DeepSpeed fp16 (dynamic loss scaling,
# initial scale 2^16), which casts the whole model. Here the weights and the
# optimizer stay fp32 and the forward runs under bf16 torch autocast
# (DeepSpeed's `torch_autocast` section; needs a DeepSpeed release that has
# it), so PSALM's MixedPrecisionMSDeformAttn keeps the deformable sampling in
# fp32 and no loss scaling is needed. On GPUs without bf16 replace it by
# `fp16=dict(enabled=True, loss_scale=0, initial_scale_power=16)` and
# `inputs_to_half=['inputs']` (the official setting).
#
# Launch: tools/dist_train.sh CONFIG 8 (torchrun); tools/train.py builds the
# FlexibleRunner because of `runner_type`. DeepSpeed saves its own
# checkpoint layout (mmengine's DeepSpeedStrategy).
runner_type = 'FlexibleRunner'
strategy = dict(
    type='DeepSpeedStrategy',
    config=dict(
        torch_autocast=dict(enabled=True, dtype='bfloat16'),
        # the optimizer is the config's torch AdamW (lr schedule by
        # mmengine), which ZeRO accepts
        zero_allow_untested_optimizer=True),
    zero_optimization=dict(
        stage=2,
        allgather_partitions=True,
        allgather_bucket_size=2e8,
        reduce_scatter=True,
        reduce_bucket_size=2e8,
        overlap_comm=True,
        contiguous_gradients=True),
    gradient_accumulation_steps=1,
    # train_micro_batch_size_per_gpu is taken from the train dataloader
)
# The config that includes this file sets
#   optim_wrapper = dict(type='DeepSpeedOptimWrapper')
# (DeepSpeed runs backward and step with the schedule's optimizer; mmengine
# forbids the same key in two bases, and the schedule defines optim_wrapper)
