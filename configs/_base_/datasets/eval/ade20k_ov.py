# ADE20K-150 open-vocabulary semantic segmentation (paper Tab. 11, A150
# mIoU): the 2000 validation images, prompted with the 150 class names of
# `projects/psalm/datasets/class_names/ade150.txt` (ADE's synonyms joined
# into one name per class, as the official evaluation does), task
# 'semantic' (`ov_semantic.py`).
# Layout (mmseg's): data/ade/ADEChallengeData2016/{images,annotations}/
# validation; labels 0 (other) -> ignored, 1..150 -> 0..149
# (reduce_zero_label).
_base_ = ['./ov_semantic.py']

dataset_type = 'PSALMADE20KDataset'
data_root = 'data/ade/ADEChallengeData2016/'

test_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(
            img_path='images/validation',
            seg_map_path='annotations/validation'),
        class_names='ade150'))
