# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""cIoU / mIoU / N-acc / T-acc on hand-worked masks."""
import numpy as np
import pytest
import torch
from mmdet.structures.mask import BitmapMasks

from projects.psalm.evaluation.functional.mask_iou import (cumulative_iou,
                                                           mask_iou_stats,
                                                           mean_iou,
                                                           target_accuracies)


def three_samples():
    """(pred, gt) masks of shape (3, 10, 10).

    Sample 0: a 4x4 block predicted exactly: I = U = 16, IoU 1.
    Sample 1: a full 10x10 target, half of it predicted: I = 50, U = 100,
        IoU 0.5.
    Sample 2: no target, empty prediction: I = U = 0, IoU := 1.
    cIoU = (16 + 50 + 0) / (16 + 100 + 0) = 66 / 116, dominated by the large
    sample; mIoU = (1 + 0.5 + 1) / 3 = 5 / 6.
    """
    gt = np.zeros((3, 10, 10), dtype=bool)
    pred = np.zeros_like(gt)
    gt[0, 2:6, 2:6] = pred[0, 2:6, 2:6] = True
    gt[1] = True
    pred[1, :5] = True
    return pred, gt


def test_ciou_and_miou_differ_as_hand_worked():
    intersections, unions, pred_areas, gt_areas = mask_iou_stats(
        *three_samples())
    np.testing.assert_array_equal(intersections, [16, 50, 0])
    np.testing.assert_array_equal(unions, [16, 100, 0])
    np.testing.assert_array_equal(pred_areas, [16, 50, 0])
    np.testing.assert_array_equal(gt_areas, [16, 100, 0])
    assert cumulative_iou(intersections, unions) == pytest.approx(66 / 116)
    assert mean_iou(intersections, unions) == pytest.approx(5 / 6)
    # without the empty sample, mIoU = 0.75 while cIoU is unchanged
    assert mean_iou(intersections[:2], unions[:2]) == pytest.approx(0.75)
    assert cumulative_iou(intersections[:2],
                          unions[:2]) == pytest.approx(66 / 116)


@pytest.mark.parametrize('convert', [
    lambda m: m, torch.from_numpy, lambda m: torch.from_numpy(m).float(),
    lambda m: BitmapMasks(m.astype(np.uint8), 10, 10)
])
def test_mask_types_agree(convert):
    pred, gt = three_samples()
    stats = mask_iou_stats(convert(pred), convert(gt))
    np.testing.assert_array_equal(stats[0], [16, 50, 0])
    np.testing.assert_array_equal(stats[1], [16, 100, 0])


def test_gres_accuracies_with_no_target_samples():
    # no-target samples: one predicted empty (TN), one not (FP) -> N-acc 1/2
    # target samples: two predicted non-empty (TP), one empty (FN)
    #   -> T-acc 2/3
    gt_areas = np.array([0, 0, 30, 30, 30])
    pred_areas = np.array([0, 12, 25, 5, 0])
    n_acc, t_acc = target_accuracies(pred_areas, gt_areas)
    assert n_acc == pytest.approx(1 / 2)
    assert t_acc == pytest.approx(2 / 3)
    # no no-target sample at all: N-acc undefined
    n_acc, t_acc = target_accuracies(pred_areas[2:], gt_areas[2:])
    assert np.isnan(n_acc) and t_acc == pytest.approx(2 / 3)


def test_no_target_iou_convention():
    # a non-empty prediction on a no-target sample has IoU 0
    pred = np.ones((1, 4, 4), dtype=bool)
    gt = np.zeros_like(pred)
    intersections, unions, _, _ = mask_iou_stats(pred, gt)
    assert mean_iou(intersections, unions) == 0.0
    assert cumulative_iou(np.array([0]), np.array([0])) == 1.0


def test_bad_input_raises():
    pred, gt = three_samples()
    with pytest.raises(ValueError, match='same'):
        mask_iou_stats(pred[:2], gt)
    with pytest.raises(TypeError):
        mask_iou_stats(pred.tolist(), gt)
    with pytest.raises(ValueError, match='zero samples'):
        mean_iou(np.array([]), np.array([]))
