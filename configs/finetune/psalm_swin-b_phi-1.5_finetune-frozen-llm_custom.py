# Fine-tune PSALM on your own data, FROZEN-LLM recipe: Swin-B and Phi-1.5
# frozen; the projector, the learnable mask tokens, the condition encoder
# and the mask generator train (the LLM still passes gradients back to the
# projector). bf16 autocast. Data, schedule and starting weights: the full
# recipe this inherits.
# Memory (docs/finetune.md; computed, not measured): peak about 16 GiB per
# GPU at 1024x1024 with 1 image per GPU, 34 GiB with 4 -> a 24 GB GPU with
# 1-2 images per GPU, 40 GB with 4. A frozen part runs in eval mode, where
# Hugging Face turns gradient checkpointing off: the LLM's activations are
# all kept (the LoRA recipe keeps the LLM in train mode and checkpoints
# it).
_base_ = ['./psalm_swin-b_phi-1.5_finetune-full_custom.py']

model = dict(frozen_modules=('backbone', 'language_model'))
lr = 4e-5  # the new parts only: stage 2's learning rate
optim_wrapper = dict(optimizer=dict(lr=lr))
