# Generalised referring segmentation on gRefCOCO (paper Tab. 12, zero-shot:
# cIoU and gIoU; N-acc / T-acc are logged too). One sample per expression;
# the prediction is the union of the masks of every query whose score
# (sigmoid(sentence logit) x mask score) is above the model's
# `test_cfg.gres_threshold` (0.6, paper Sec. 4.5); no query above it is the
# "no target" answer (an empty mask). The pipeline, loader and protocol are
# `refcoco.py`'s; `gt_masks` is the union of the targets (all zeros for a
# no-target expression).
# Defaults: val; the benchmark configs set `split` (val / testA / testB).
# Layout (gRefCOCO release, refer-toolkit format): data/coco/{train2014,
# grefcoco/grefs(unc).json, grefcoco/instances.json}. The official PSALM
# jsons also load: `split_file=None`,
# `ann_file='grefcoco/grefcoco_val_psalm.json'`.
_base_ = ['./refcoco.py']

dataset_type = 'PSALMGRefCocoDataset'

test_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        ann_file='grefcoco/instances.json',
        split_file='grefcoco/grefs(unc).json'))
test_evaluator = dict(_delete_=True, type='GRESMetric')
