# Fine-tune PSALM on your own data, FULL recipe: everything but Swin-B
# trained (as stage 2, configs/psalm_joint.py, which this inherits), bf16
# autocast, gradient checkpointing of the LLM (base model), AdamW.
# Memory (docs/finetune.md; computed, not measured): peak about 31 GiB per
# GPU at 1024x1024 with 1 image per GPU, 42 GiB with 4 -> a 40 GB GPU with
# 1-2 images, an 80 GB one with 4 (24 GB GPUs: the ZeRO-1 variant on 8).
#
# Data (docs/finetune.md "Prepare your data"): data/custom/ with
#   images/                                every image
#   annotations/panoptic_train.json + panoptic_train/   coco_to_panoptic.py
#   annotations/refs_train.json            expressions_to_refcoco.py
#   annotations/interactive_train.json     build_coco_interactive.py
# Three tasks, one per batch, in equal shares (MultiTaskBatchSampler): the
# category condition with YOUR class names ('panoptic'), referring
# expressions with one, several or no target ('gres'), and visual prompts
# ('interactive'). Without data for a task, remove its dataset and its entry
# of `task_ratios`. LLaVA data ('vqa', psalm_joint.py's 4th task) is left
# out: add `_base_.llava_train_dataset` back to keep the text answers
# trained.
#
# Starting weights: a PSALM checkpoint of this architecture (stage 2,
# configs/psalm_joint.py). For the released weights use
# psalm_official_swin-b_phi-1.5_finetune-lora_custom.py (or copy its model
# block into another recipe).
_base_ = ['../psalm_joint.py']

load_from = 'work_dirs/psalm_joint/iter_56000.pth'
custom_root = 'data/custom/'
batch_size = 2      # per GPU; 8 GPUs x 2 = the batch the lr below is for
max_iters = 2000    # a few hundred images: ~40 epochs of each task
warmup_iters = 100
lr = 2e-5           # half of stage 2's 4e-5

panoptic_dataset = dict(
    _base_.panoptic_train_dataset,
    data_root=custom_root,
    ann_file='annotations/panoptic_train.json',
    data_prefix=dict(img='images/', seg='annotations/panoptic_train/'))
# PSALMGRefCocoDataset reads one, several or no target per expression
# (task 'gres'; an all single-target table also trains as 'referring' with
# type='PSALMRefCocoDataset')
gres_dataset = dict(
    type='PSALMGRefCocoDataset',
    data_root=custom_root,
    ann_file='annotations/refs_train.json',
    split_file=None,
    data_prefix=dict(img_path='images/'),
    protocol='random',
    pipeline=_base_.refcoco_train_pipeline)
interactive_dataset = dict(
    _base_.interactive_train_dataset,
    data_root=custom_root,
    ann_file='annotations/interactive_train.json',
    data_prefix=dict(img='images/'))

train_dataloader = dict(
    batch_size=batch_size,
    num_workers=4,
    batch_sampler=dict(task_ratios=[1, 1, 1]),
    dataset=dict(
        datasets=[panoptic_dataset, gres_dataset, interactive_dataset]))

train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
# bf16 autocast, fp32 master weights (--amp-dtype bfloat16 does the same);
# gradients clipped as the official fine-tuning (DeepSpeed's 1.0)
optim_wrapper = dict(
    type='AmpOptimWrapper',
    dtype='bfloat16',
    loss_scale=1.0,
    optimizer=dict(
        type='AdamW', lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0),
    clip_grad=dict(max_norm=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=warmup_iters),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=warmup_iters,
         end=max_iters, eta_min=0.0)
]
auto_scale_lr = dict(enable=False, base_batch_size=16)
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=500, max_keep_ckpts=2))
