# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""PQ without panopticapi: the in-project matcher and mmdet's metric on it."""
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.structures import PixelData
from PIL import Image

from projects.psalm.evaluation.functional.panoptic_quality import (
    OFFSET, VOID, PQStat, enable_mmdet_panoptic_metric, id2rgb,
    pq_compute_single_image, rgb2id)
from projects.psalm.evaluation.metrics.panoptic_metric import \
    PSALMPanopticMetric

SAMPLE = osp.join(
    osp.dirname(__file__), '..', 'data', 'coco_panoptic_sample')

# Hand-worked image, 10 x 10 pixels, two categories:
#   category 1 'person' (thing), category 2 'sky' (stuff).
# Ground truth (segment ids): rows 0-3 person (id 1, area 40), rows 4-7 sky
# (id 2, area 40), rows 8-9 VOID (id 0).
# Prediction: rows 0-4 person (id 1, area 50), rows 5-9 sky (id 2, area 50).
#   person: I = 40, U = 50 + 40 - 40 = 50 -> IoU 0.8 > 0.5, TP.
#   sky: I = 30 (rows 5-7), prediction on VOID = 20 (rows 8-9),
#        U = 50 + 40 - 30 - 20 = 40 -> IoU 0.75, TP.
# Things: PQ = SQ = 0.8, RQ = 1; stuff: PQ = SQ = 0.75, RQ = 1;
# all: PQ = SQ = (0.8 + 0.75) / 2 = 0.775, RQ = 1.
CATEGORIES = {
    1: dict(id=1, name='person', isthing=1),
    2: dict(id=2, name='sky', isthing=0)
}


def hand_case(pred_person_rows: int = 5):
    """The hand-worked GT / prediction id maps and segment lists."""
    gt = np.zeros((10, 10), dtype=np.int64)
    gt[:4] = 1
    gt[4:8] = 2
    pred = np.zeros((10, 10), dtype=np.int64)
    pred[:pred_person_rows] = 1
    pred[5:] = 2
    gt_segments = [
        dict(id=1, category_id=1, iscrowd=0, area=40),
        dict(id=2, category_id=2, iscrowd=0, area=40)
    ]
    pred_segments = [dict(id=1, category_id=1), dict(id=2, category_id=2)]
    return gt, pred, gt_segments, pred_segments


def averages(pq_stat: PQStat, categories: dict) -> dict:
    return {
        name: pq_stat.pq_average(categories, isthing)[0]
        for name, isthing in (('all', None), ('things', True),
                              ('stuff', False))
    }


def test_rgb_id_round_trip_on_real_png():
    png = np.array(
        Image.open(osp.join(SAMPLE, 'panoptic_examples', '000000142238.png')))
    ids = rgb2id(png)
    ann = json.load(open(osp.join(SAMPLE, 'panoptic_examples.json')))
    segment_ids = {s['id'] for s in ann['annotations'][0]['segments_info']}
    assert set(np.unique(ids).tolist()) - {VOID} == segment_ids
    np.testing.assert_array_equal(id2rgb(ids), png)
    assert rgb2id((1, 2, 3)) == 1 + 2 * 256 + 3 * 256**2
    assert id2rgb(1 + 2 * 256 + 3 * 256**2) == [1, 2, 3]
    assert OFFSET == 256**3


def test_hand_worked_thing_and_stuff():
    result = averages(pq_compute_single_image(*hand_case(), CATEGORIES),
                      CATEGORIES)
    assert result['things'] == pytest.approx(
        dict(pq=0.8, sq=0.8, rq=1.0, n=1))
    assert result['stuff'] == pytest.approx(
        dict(pq=0.75, sq=0.75, rq=1.0, n=1))
    assert result['all'] == pytest.approx(
        dict(pq=0.775, sq=0.775, rq=1.0, n=2))


def test_iou_must_exceed_half_and_void_fp_is_ignored():
    # Person predicted on rows 0-1 only: I = 20, U = 20 + 40 - 20 = 40,
    # IoU = 0.5 is not > 0.5 -> FN + FP, so things PQ = SQ = RQ = 0;
    # all: PQ = SQ = 0.375, RQ = (0 + 1) / 2.
    gt, pred, gt_segments, pred_segments = hand_case(pred_person_rows=2)
    result = averages(
        pq_compute_single_image(gt, pred, gt_segments, pred_segments,
                                CATEGORIES), CATEGORIES)
    assert result['things'] == pytest.approx(dict(pq=0, sq=0, rq=0, n=1))
    assert result['all'] == pytest.approx(
        dict(pq=0.375, sq=0.375, rq=0.5, n=2))
    # An extra person segment lying entirely on VOID is not a false positive.
    pred = hand_case()[1]
    pred[8:, :] = 3
    pq_stat = pq_compute_single_image(
        gt, pred, gt_segments,
        hand_case()[3] + [dict(id=3, category_id=1)], CATEGORIES)
    assert (pq_stat[1].tp, pq_stat[1].fp, pq_stat[1].fn) == (1, 0, 0)


def test_pq_stat_sums_across_images():
    stat = pq_compute_single_image(*hand_case(), CATEGORIES)
    stat += pq_compute_single_image(*hand_case(), CATEGORIES)
    assert (stat[1].tp, stat[2].tp) == (2, 2)
    assert stat[1].iou == pytest.approx(1.6)
    assert averages(stat, CATEGORIES)['all']['pq'] == pytest.approx(0.775)


def test_bad_prediction_is_rejected():
    gt, pred, gt_segments, _ = hand_case()
    with pytest.raises(ValueError, match='Image 7: segment 2'):
        pq_compute_single_image(gt, pred, gt_segments,
                                [dict(id=1, category_id=1)], CATEGORIES, 7)


def test_gt_vs_gt_on_real_sample_is_100():
    ann = json.load(open(osp.join(SAMPLE, 'panoptic_examples.json')))
    categories = {c['id']: c for c in ann['categories']}
    pq_stat = PQStat()
    for image_ann in ann['annotations']:
        ids = rgb2id(
            np.array(
                Image.open(
                    osp.join(SAMPLE, 'panoptic_examples',
                             image_ann['file_name']))))
        pq_stat += pq_compute_single_image(ids, ids,
                                           image_ann['segments_info'],
                                           image_ann['segments_info'],
                                           categories, image_ann['image_id'])
    result = averages(pq_stat, categories)
    for name in ('all', 'things', 'stuff'):
        assert result[name]['pq'] == result[name]['sq'] == \
            result[name]['rq'] == 1.0
    assert result['things']['n'] > 0 and result['stuff']['n'] > 0
    assert result['all']['n'] == result['things']['n'] + result['stuff']['n']


def test_mmdet_metric_on_hand_case_matches_functional(tmp_path):
    """The mmdet code path (PNG round trip, its matcher) gives 77.5 too."""
    gt, _, _, _ = hand_case()
    Image.fromarray(id2rgb(gt)).save(tmp_path / 'img.png')
    metric = PSALMPanopticMetric(seg_prefix=str(tmp_path))
    metric.dataset_meta = dict(classes=('person', 'sky'),
                               thing_classes=('person', ))
    # labels: person 0, sky 1, VOID 2 (= len(classes));
    # things are label + instance * INSTANCE_OFFSET (1000)
    pred = np.full((10, 10), 2)
    pred[:5] = 0 + 1 * 1000
    pred[5:] = 1
    sample = DetDataSample(
        metainfo=dict(img_id=0, img_path='x/img.jpg', ori_shape=(10, 10)))
    sample.pred_panoptic_seg = PixelData(sem_seg=torch.from_numpy(pred)[None])
    sample.segments_info = [
        dict(id=1, category=0, is_thing=True),
        dict(id=2, category=1, is_thing=False)
    ]
    metric.process({}, [sample.to_dict()])
    result = metric.evaluate(1)
    expected = dict(PQ=77.5, SQ=77.5, RQ=100, PQ_th=80, SQ_th=80, RQ_th=100,
                    PQ_st=75, SQ_st=75, RQ_st=100)
    assert {k.split('/')[-1]: v for k, v in result.items()} == \
        pytest.approx(expected)


def test_enable_fills_mmdet_symbols_idempotently():
    from mmdet.evaluation.functional import panoptic_utils
    from mmdet.evaluation.metrics import coco_panoptic_metric
    enable_mmdet_panoptic_metric()
    enable_mmdet_panoptic_metric()
    assert coco_panoptic_metric.panopticapi is not None
    assert coco_panoptic_metric.id2rgb is not None
    for module in (coco_panoptic_metric, panoptic_utils):
        assert module.PQStat is not None and module.rgb2id is not None
