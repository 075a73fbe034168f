# Trivial baseline for the ShapesWorld interactive-point evaluation: the same dataset,
# pipeline, post-processing and metrics as
# ../psalm_tiny_test_shapesworld-interactive-point.py, with TrivialBaseline (visual rule
# 'prompt', projects/psalm/models/baselines.py) in place of PSALM. No weights
# (no checkpoint argument):
#   python tools/test.py configs/shapesworld/baselines/trivial_prompt_shapesworld-interactive-point.py
_base_ = ['../psalm_tiny_test_shapesworld-interactive-point.py']

model = dict(
    _delete_=True,
    type='TrivialBaseline',
    data_preprocessor=_base_.model.data_preprocessor,
    rules=dict(visual='prompt'))
