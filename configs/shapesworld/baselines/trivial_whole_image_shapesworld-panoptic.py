# Trivial baseline for the ShapesWorld panoptic evaluation: the same dataset,
# pipeline, post-processing and metrics as
# ../psalm_tiny_test_shapesworld-panoptic.py, with TrivialBaseline (category rule
# 'whole_image', projects/psalm/models/baselines.py) in place of PSALM. No weights
# (no checkpoint argument):
#   python tools/test.py configs/shapesworld/baselines/trivial_whole_image_shapesworld-panoptic.py
_base_ = ['../psalm_tiny_test_shapesworld-panoptic.py']

sw_root = 'data/shapesworld/'
model = dict(
    _delete_=True,
    type='TrivialBaseline',
    data_preprocessor=_base_.model.data_preprocessor,
    rules=dict(category='whole_image'),
    panoptic_train=dict(
        ann_file=sw_root + 'coco/annotations/panoptic_train2017.json',
        seg_dir=sw_root + 'coco/annotations/panoptic_train2017/',
        img_dir=sw_root + 'coco/train2017/'))
