# PSALM (Swin-B + Phi-1.5) open-vocabulary panoptic and instance
# segmentation on ADE20K-150 val (paper Tab. 11: A150 mask AP; PQ is
# logged too) in ONE run of the 'panoptic' task, prompted with the 150
# class names of `class_names/ade150.txt`:
#   * PQ / SQ / RQ of `pred_panoptic_seg` on Mask2Former's ADE20K panoptic
#     annotations (`datasets/prepare_ade20k_pan_seg.py`: 100 thing and 50
#     stuff classes);
#   * mask AP of `pred_instances` (thing classes only) against the thing
#     segments of the same panoptic annotations (LoadPanopticInstances;
#     crowd segments ignored), i.e. Mask2Former's ADE20K instance protocol
#     on instances derived from the panoptic PNGs rather than its separate
#     `ade20k_instance_val.json` (which holds the same objects, possibly
#     overlapping).
# Layout: data/ade/ADEChallengeData2016/{images/validation,
# ade20k_panoptic_val.json, ade20k_panoptic_val/*.png}.
_base_ = [
    '../_base_/models/psalm_swin-b_phi-1.5.py',
    '../_base_/datasets/eval/ade20k_ov.py', '../_base_/default_runtime.py'
]


data_root = 'data/ade/ADEChallengeData2016/'
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='Resize', scale=(1024, 1024), keep_ratio=True),
    # the thing segments of the panoptic PNG, at the original size
    dict(type='LoadPanopticInstances', backend_args=None),
    dict(
        type='PackPSALMInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor', 'prompt', 'is_thing', 'segments_info',
                   'seg_map_path', 'instances'))
]
test_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='PSALMOVPanopticDataset',
        task='panoptic',
        data_root=data_root,
        ann_file='ade20k_panoptic_val.json',
        data_prefix=dict(
            img='images/validation/', seg='ade20k_panoptic_val/'),
        class_names='ade150',
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=None))
test_evaluator = [
    dict(
        type='PSALMPanopticMetric',
        ann_file=data_root + 'ade20k_panoptic_val.json',
        seg_prefix=data_root + 'ade20k_panoptic_val/'),
    dict(type='CocoMetric', metric='segm')
]
