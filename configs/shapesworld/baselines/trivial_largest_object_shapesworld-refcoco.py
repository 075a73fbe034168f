# Trivial baseline for the ShapesWorld refcoco evaluation: the same dataset,
# pipeline, post-processing and metrics as
# ../psalm_tiny_test_shapesworld-refcoco.py, with TrivialBaseline (sentence rule
# 'largest_object', projects/psalm/models/baselines.py) in place of PSALM. No weights
# (no checkpoint argument):
#   python tools/test.py configs/shapesworld/baselines/trivial_largest_object_shapesworld-refcoco.py
_base_ = ['../psalm_tiny_test_shapesworld-refcoco.py']

sw_root = 'data/shapesworld/'
model = dict(
    _delete_=True,
    type='TrivialBaseline',
    data_preprocessor=_base_.model.data_preprocessor,
    rules=dict(sentence='largest_object'),
    instances_file=sw_root + 'coco/refcoco/instances.json')
