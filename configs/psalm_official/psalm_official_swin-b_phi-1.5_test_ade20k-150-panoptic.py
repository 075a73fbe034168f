# Released PSALM weights (EnmingZhang/PSALM converted by
# tools/model_converters/psalm_official_to_mmpsalm.py) on ADE20K-150 val,
# open-vocabulary panoptic and instance segmentation in one run (paper
# Tab. 11: A150 mask AP; PQ is logged too). The data settings are those of
# configs/benchmarks/psalm_swin-b_phi-1.5_test_ade20k-150-panoptic.py (see
# there; tests/test_configs/test_official_configs.py keeps them equal).
_base_ = [
    '../_base_/models/psalm_official.py',
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
