# Evaluate a (fine-tuned) PSALM on your own panoptic val data
# (data/custom/annotations/panoptic_val.json + panoptic_val/, instances_val
# .json; docs/finetune.md): PQ / SQ / RQ, thing mask AP and semantic mIoU in
# one run of the 'panoptic' task, the metrics of the COCO panoptic benchmark.
# The class names of the prompt are the json's category names: any names
# work (open vocabulary, no training needed). To prompt with other words or
# synonyms, give a class-name file (one line per json category, in order,
# each line `name[, synonym, ...]` starting with the json's name):
#   python tools/test.py THIS_CONFIG CKPT --cfg-options \
#     test_dataloader.dataset.type=PSALMOVPanopticDataset \
#     test_dataloader.dataset.class_names=data/custom/class_names.txt
# A LoRA checkpoint: add `model.language_model.lora.r=R
# model.language_model.lora.alpha=A` (its recipe's values), or merge it
# first (tools/model_converters/merge_lora.py).
_base_ = ['../benchmarks/psalm_swin-b_phi-1.5_test_coco-panoptic.py']

custom_root = 'data/custom/'
test_dataloader = dict(
    dataset=dict(
        data_root=custom_root,
        ann_file='annotations/panoptic_val.json',
        data_prefix=dict(img='images/', seg='annotations/panoptic_val/')))
test_evaluator = [
    dict(
        type='PSALMPanopticMetric',
        ann_file=custom_root + 'annotations/panoptic_val.json',
        seg_prefix=custom_root + 'annotations/panoptic_val/'),
    dict(
        type='CocoMetric',
        ann_file=custom_root + 'annotations/instances_val.json',
        metric='segm'),
    dict(type='PanopticSemSegMetric')
]
