# PSALM stage-2 joint training data (paper Sec. 4.2, appendix 7, Tab. 16):
# four tasks, 25% of the iterations each, one task per batch:
#   0 COCO panoptic ('panoptic')        coco_panoptic.py
#   1 RefCOCO/+/g train ('referring')   refcoco.py
#   2 COCO-Interactive ('interactive')  coco_interactive.py
#   3 LLaVA-1.5 mix665k ('vqa')         llava_instruct.py
# MultiTaskBatchSampler draws the task of every step with equal probability
# (mode='random', the paper); mode='round_robin' cycles through the tasks
# like the official code. Every rank trains the same task at a step.
# Data in another place: link it into data/ (recommended), or override the
# `data_root` of each sub-dataset, e.g. with COCO in /datasets/coco/:
#   --cfg-options \
#     train_dataloader.dataset.datasets.0.data_root=/datasets/coco/ \
#     train_dataloader.dataset.datasets.1.datasets.0.data_root=/datasets/coco/ \
#     train_dataloader.dataset.datasets.1.datasets.1.data_root=/datasets/coco/ \
#     train_dataloader.dataset.datasets.1.datasets.2.data_root=/datasets/coco/ \
#     train_dataloader.dataset.datasets.2.data_root=/datasets/coco/ \
#     train_dataloader.dataset.datasets.3.data_root=/datasets/llava/
# (a top-level `data_root=...` changes nothing: text configs resolve the
# base variables when they are read).
_base_ = [
    './coco_panoptic.py', './refcoco.py', './coco_interactive.py',
    './llava_instruct.py'
]

train_dataloader = dict(
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    # provides the seed, rank and world size; MultiTaskBatchSampler makes
    # the (infinite) batches
    sampler=dict(type='InfiniteSampler', shuffle=True),
    batch_sampler=dict(
        type='MultiTaskBatchSampler', task_ratios=[1, 1, 1, 1],
        mode='random'),
    dataset=dict(
        type='ConcatDataset',
        # the sub-datasets' metainfos differ, so mmdet keeps one per task;
        # its check compares every key with the first sub-dataset's and
        # fails (depending on set order) on a key the first lacks: the
        # `cumulative_sizes` of the nested RefCOCO concatenation
        ignore_keys=['cumulative_sizes'],
        datasets=[
            {{_base_.panoptic_train_dataset}},
            {{_base_.refcoco_train_dataset}},
            {{_base_.interactive_train_dataset}},
            {{_base_.llava_train_dataset}},
        ]))
