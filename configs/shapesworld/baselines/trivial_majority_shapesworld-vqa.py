# Trivial baseline for the ShapesWorld vqa evaluation: the same dataset,
# pipeline, post-processing and metrics as
# ../psalm_tiny_test_shapesworld-vqa.py, with TrivialBaseline (text rule
# 'majority', projects/psalm/models/baselines.py) in place of PSALM. No weights
# (no checkpoint argument):
#   python tools/test.py configs/shapesworld/baselines/trivial_majority_shapesworld-vqa.py
_base_ = ['../psalm_tiny_test_shapesworld-vqa.py']

sw_root = 'data/shapesworld/'
model = dict(
    _delete_=True,
    type='TrivialBaseline',
    data_preprocessor=_base_.model.data_preprocessor,
    rules=dict(text='majority'),
    answers_file=sw_root + 'llava/llava_v1_5_mix665k_onlyMM_filtered.json')
