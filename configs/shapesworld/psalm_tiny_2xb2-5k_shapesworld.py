# The quickstart's training job (tools/quickstart.sh): PSALM stage-2 joint
# training (configs/psalm_joint.py's four tasks and task sampler: panoptic,
# referring (RefCOCO/+/g), interactive (COCO-Interactive) and vqa (LLaVA
# format), one task per batch, 1:1:1:1 at random) of the TINY randomly
# initialised PSALM (configs/_base_/models/psalm_tiny_shapesworld.py: real
# Phi-1.5 tokenizer, small Swin and Phi) on the ShapesWorld training split:
#   python tools/dataset_converters/generate_shapesworld.py data/shapesworld
# 256x256 inputs, AdamW, warm-up + cosine, gradients clipped at norm 1.
# Evaluate with configs/shapesworld/psalm_tiny_test_shapesworld-*.py.
_base_ = [
    '../_base_/models/psalm_tiny_shapesworld.py',
    '../_base_/tiny_joint_cpu.py'
]

# the Swin pre-trained on the training split by step 1 of tools/quickstart.sh
# (configs/shapesworld/swin-tiny-convstem_objcls_1xb4-1k_shapesworld.py),
# frozen as the paper freezes its pre-trained Swin-B
pretrained_backbone = 'work_dirs/quickstart/swin_pretrain/iter_1000.pth'
model = dict(
    frozen_modules=('backbone', ),
    backbone=dict(
        init_cfg=dict(
            _delete_=True, type='Pretrained',
            checkpoint=pretrained_backbone)))

data_root = 'data/shapesworld/'
coco_root = data_root + 'coco/'
llava_root = data_root + 'llava/'
# 5000 iterations (warm-up 100 + cosine); tools/quickstart.sh runs 2
# processes x batch 2 (tools/train.py alone: --cfg-options
# train_dataloader.batch_size=4 keeps the total batch)
max_iters = 5000
warmup_iters = 100

# psalm_joint.py's four sub-datasets (same order, same files) on the
# ShapesWorld tree and with the 256 pipelines
train_dataloader = dict(
    dataset=dict(datasets=[
        dict(
            _base_.panoptic_train_dataset,
            data_root=coco_root,
            pipeline=_base_.panoptic_train_pipeline),
        dict(
            _base_.refcoco_train_dataset,
            datasets=[
                dict(
                    d,
                    data_root=coco_root,
                    pipeline=_base_.refcoco_train_pipeline)
                for d in _base_.refcoco_train_dataset.datasets
            ]),
        dict(
            _base_.interactive_train_dataset,
            data_root=coco_root,
            pipeline=_base_.interactive_train_pipeline),
        dict(
            _base_.llava_train_dataset,
            data_root=llava_root,
            pipeline=_base_.llava_train_pipeline),
    ]))
train_cfg = dict(max_iters=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=warmup_iters),
    dict(type='CosineAnnealingLR', by_epoch=False, begin=warmup_iters,
         end=max_iters, eta_min=0.0)
]
default_hooks = dict(checkpoint=dict(interval=max_iters))
