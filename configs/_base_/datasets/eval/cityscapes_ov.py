# Cityscapes open-vocabulary instance segmentation (paper Tab. 11,
# Cityscapes mask AP) on the 500 val frames, prompted with the 19 class
# names of `class_names/cityscapes19.txt`. ONE run of the 'panoptic' task
# (thing classes: `class_names/cityscapes_thing8.txt`) gives:
#   * mask AP of `pred_instances` (top-100 queries, thing classes only).
#     The official Cityscapes AP needs `cityscapesscripts`, which the
#     project does not install; mmdet's CocoMetric scores the instances
#     instead, COCO-style (AP@[.5:.95], all areas), against the instances
#     of `*_gtFine_instanceIds.png` (LoadCityscapesInstances: group regions
#     such as "cars" are crowd annotations, as in mmdet's Cityscapes-to-COCO
#     converter). The numbers are close to, not identical with, the
#     cityscapesscripts AP (which also drops regions < 100 px and matches
#     overlaps differently);
#   * semantic mIoU of `pred_sem_seg` on the 19 train ids (detectron2
#     SemSegEvaluator protocol).
# Layout (mmseg's): data/cityscapes/{leftImg8bit,gtFine}/val/<city>/
# (`*_leftImg8bit.png`, `*_gtFine_labelTrainIds.png` from mmseg's
# `tools/dataset_converters/cityscapes.py`, `*_gtFine_instanceIds.png`).
# The loader, the semantic part and its metric are `ov_semantic.py`'s.
_base_ = ['./ov_semantic.py']

dataset_type = 'PSALMCityscapesDataset'
data_root = 'data/cityscapes/'
backend_args = {{_base_.backend_args}}

test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale={{_base_.img_scale}}, keep_ratio=True),
    # after Resize: GT at the original size for the metrics
    dict(type='mmseg.LoadAnnotations', backend_args=backend_args),
    dict(type='LoadCityscapesInstances', backend_args=backend_args),
    # `instances` is the GT CocoMetric reads when it has no ann_file
    dict(
        type='PackPSALMInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor', 'prompt', 'is_thing', 'instances'))
]
test_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(
            img_path='leftImg8bit/val', seg_map_path='gtFine/val'),
        class_names='cityscapes19',
        thing_classes='cityscapes_thing8',
        task='panoptic',
        pipeline=test_pipeline))
test_evaluator = [
    dict(type='CocoMetric', metric='segm', backend_args=backend_args),
    # the 19-class mIoU
    {{_base_.test_evaluator}}
]
