# Fine-tune PSALM on your own data, FROZEN-LLM recipe: Swin-B and Phi-1.5
# frozen; the projector, the learnable mask tokens, the condition encoder
# and the mask generator train (the LLM still passes gradients back to the
# projector). bf16 autocast. Data, schedule and starting weights: the full
# recipe this inherits.
# Memory (docs/finetune.md; computed, not measured): peak about 12 GiB per
# GPU at 1024x1024 with 1 image per GPU, 22 GiB with 4 -> a 24 GB GPU. The
# frozen LLM checkpoints (gradient_checkpointing=True, no dropout: PSALM
# keeps it in train mode, where Hugging Face checkpoints).
_base_ = ['./psalm_swin-b_phi-1.5_finetune-full_custom.py']

model = dict(frozen_modules=('backbone', 'language_model'))
lr = 4e-5  # the new parts only: stage 2's learning rate
optim_wrapper = dict(optimizer=dict(lr=lr))
