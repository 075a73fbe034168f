# Fine-tune PSALM on your own data, LoRA recipe: LoRA adapters (peft, rank
# 16) on every linear layer of Phi-1.5's decoder (q/k/v/dense, fc1/fc2), the
# rest of the LLM and Swin-B frozen; the projector, the mask tokens, the
# condition encoder and the mask generator train. bf16 autocast, gradient
# checkpointing of the LLM. Data, schedule and starting weights: the full
# recipe this inherits.
# Memory (docs/finetune.md; computed, not measured): peak about 12 GiB per
# GPU at 1024x1024 with 1 image per GPU, 23 GiB with 4 -> a 24 GB GPU.
# Checkpoints hold the adapters (`...lora_A.default.weight`, `lora_B`) and
# their scaling in the ordinary state dict. Evaluate one with this model
# (`--cfg-options model.language_model.lora.r=16
# model.language_model.lora.alpha=32` on a test config), or merge it into a
# plain checkpoint first:
#   python tools/model_converters/merge_lora.py CKPT MERGED.pth
# Requires `peft` (requirements/optional.txt).
_base_ = ['./psalm_swin-b_phi-1.5_finetune-full_custom.py']

model = dict(
    language_model=dict(
        lora=dict(
            r=16,
            alpha=32,
            dropout=0.05,
            target_modules=['q_proj', 'k_proj', 'v_proj', 'dense', 'fc1',
                            'fc2'])))
# adapters at 10x the base learning rate (4e-4), as usual for LoRA
lr = 4e-5
optim_wrapper = dict(
    optimizer=dict(lr=lr),
    paramwise_cfg=dict(custom_keys={'.lora_': dict(lr_mult=10.0)}))
