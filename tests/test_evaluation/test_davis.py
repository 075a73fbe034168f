# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""DAVIS J / F / J&F on real masks and hand-worked squares."""
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from projects.psalm.evaluation.functional.davis import (DAVIS_PALETTE,
                                                        db_eval_boundary,
                                                        db_eval_iou, disk,
                                                        evaluate_video,
                                                        jf_summary,
                                                        save_davis_png,
                                                        seg2bmap)

DATA = osp.join(osp.dirname(__file__), '..', 'data')
BLACKSWAN = osp.join(DATA, 'davis', 'Annotations', '480p', 'blackswan')


def load_blackswan() -> np.ndarray:
    """The 10 ground-truth frames as object-id maps, shape (10, 480, 854)."""
    frames = [
        np.array(Image.open(osp.join(BLACKSWAN, f'{t:05d}.png')))
        for t in range(10)
    ]
    # DAVIS-2016 masks are 0 / 255 for one object -> ids 0 / 1
    return (np.stack(frames) > 0).astype(np.uint8)


def square(shift: int = 0) -> np.ndarray:
    """A 40x40 square (rows 20-59, cols 20+shift .. 59+shift) in 100x100."""
    mask = np.zeros((100, 100), dtype=bool)
    mask[20:60, 20 + shift:60 + shift] = True
    return mask


def test_gt_vs_gt_real_video_is_perfect():
    gt = load_blackswan()
    scores = evaluate_video(gt, gt.copy(), video_name='blackswan')
    assert list(scores) == [1]
    j_scores, f_scores = scores[1]
    # frames 1..8 of 10: first and last are excluded
    assert len(j_scores) == 8
    assert np.all(j_scores == 1) and np.all(f_scores == 1)
    assert jf_summary(scores.values()) == dict(
        J=1.0, F=1.0, **{'J&F': 1.0}, num_objects=1.0)


def test_square_vs_shifted_square():
    """Hand-worked J and F of a square against a copy shifted 10 px right.

    J = 40 * 30 / (40 * 50) = 0.6.
    seg2bmap's boundary of the square is the perimeter of the 41x41 box
    rows 19-59, cols 19-59: 160 pixels (the shifted one: cols 29-69).
    Tolerance: ceil(0.008 * sqrt(100^2 + 100^2)) = ceil(1.13) = 2 px.
    GT boundary pixels within 2 px of the prediction's boundary: top and
    bottom rows at cols 27-59 (33 + 33), and 4 pixels of the right column next
    to the predicted top / bottom rows (rows 20, 21, 57, 58): 70 of 160.
    By symmetry precision = recall = 70 / 160, so F = 0.4375.
    """
    gt, pred = square(), square(shift=10)
    assert seg2bmap(gt).sum() == 160
    assert db_eval_iou(gt, pred) == pytest.approx(0.6)
    assert db_eval_boundary(gt, pred) == pytest.approx(70 / 160)
    # a 1-pixel shift stays within the tolerance: F = 1, J = 39 / 41
    assert db_eval_boundary(gt, square(shift=1)) == 1.0
    assert db_eval_iou(gt, square(shift=1)) == pytest.approx(39 / 41)


def test_boundary_tolerance_on_real_frame():
    # 854x480: ceil(0.008 * 979.6) = 8 px; a shift of 8 px keeps every
    # boundary pixel matched, a shift of 9 px does not.
    gt = load_blackswan()[1].astype(bool)
    assert not gt[:, -9:].any()
    assert db_eval_boundary(gt, np.roll(gt, 8, axis=1)) == 1.0
    assert db_eval_boundary(gt, np.roll(gt, 9, axis=1)) < 1.0


def test_empty_masks_and_void():
    empty = np.zeros((100, 100), dtype=bool)
    assert db_eval_iou(empty, empty) == 1.0
    assert db_eval_boundary(empty, empty) == 1.0
    # one side without boundary: precision or recall is 0 -> F = 0
    assert db_eval_boundary(empty, square()) == 0.0
    assert db_eval_boundary(square(), empty) == 0.0
    # disagreement only on void pixels is ignored
    gt = square()
    pred = gt.copy()
    pred[:, 40:] = False
    void = gt & ~pred
    assert db_eval_iou(gt, pred, void) == 1.0
    assert db_eval_iou(gt, pred) == pytest.approx(0.5)
    assert disk(2).tolist() == [[0, 0, 1, 0, 0], [0, 1, 1, 1, 0],
                                [1, 1, 1, 1, 1], [0, 1, 1, 1, 0],
                                [0, 0, 1, 0, 0]]


def test_first_and_last_frames_are_excluded():
    gt = np.zeros((5, 100, 100), dtype=np.uint8)
    gt[:, 20:60, 20:60] = 1
    pred = gt.copy()
    pred[0] = 0
    pred[4] = 0
    j_scores, f_scores = evaluate_video(gt, pred)[1]
    assert j_scores.tolist() == [1, 1, 1] and f_scores.tolist() == [1, 1, 1]
    pred[2] = 0
    result = jf_summary(evaluate_video(gt, pred).values())
    assert result['J'] == pytest.approx(2 / 3)
    assert result['F'] == pytest.approx(2 / 3)


def test_object_appearing_after_first_frame():
    # object 1 on all 6 frames; object 2 first appears (in the GT) at frame 2
    gt = np.zeros((6, 100, 100), dtype=np.uint8)
    gt[:, 10:30, 10:30] = 1
    gt[2:, 60:90, 60:90] = 2
    pred = gt.copy()
    pred[1, 60:90, 60:90] = 2  # before it appears: not scored
    pred[2][pred[2] == 2] = 0  # its reference frame: not scored either
    scores = evaluate_video(gt, pred)
    assert len(scores[1][0]) == 4  # frames 1-4
    assert len(scores[2][0]) == 2  # frames 3-4
    assert jf_summary(scores.values())['J&F'] == 1.0
    pred[3][pred[3] == 2] = 0
    # object 2 missed on frame 3: its J is (0 + 1) / 2
    assert np.mean(evaluate_video(gt, pred)[2][0]) == 0.5


def test_void_label_and_unknown_objects():
    gt = np.zeros((3, 20, 20), dtype=np.uint8)
    gt[:, 5:10, 5:10] = 1
    gt[:, 10:15, 5:10] = 255
    pred = gt.copy()
    pred[pred == 255] = 1  # predicted on void pixels: ignored
    assert evaluate_video(gt, pred)[1][0].tolist() == [1.0]
    pred[1, 0, 0] = 3
    with pytest.raises(ValueError, match=r"'v'.*\[3\]"):
        evaluate_video(gt, pred, video_name='v')


def test_objects_are_averaged_per_object():
    # object A: J 1 and 0 on its two frames -> 0.5; object B: 1 on four
    # frames -> 1.0. DAVIS averages object means: 0.75 (not 5 / 6).
    result = jf_summary([(np.array([1.0, 0.0]), np.array([1.0, 0.0])),
                         (np.ones(4), np.ones(4))])
    assert result['J'] == result['F'] == result['J&F'] == 0.75
    assert result['num_objects'] == 2


def test_palette_and_png_writer(tmp_path):
    real = Image.open(osp.join(DATA, 'davis_judo', 'masks', 'judo',
                               '00005.png'))
    real_palette = np.array(real.getpalette()).reshape(-1, 3)
    np.testing.assert_array_equal(real_palette,
                                  DAVIS_PALETTE[:len(real_palette)])
    assert DAVIS_PALETTE[:3].tolist() == [[0, 0, 0], [128, 0, 0],
                                          [0, 128, 0]]

    index_mask = np.array(real)
    path = tmp_path / 'video' / '00005.png'
    save_davis_png(index_mask, str(path))
    written = Image.open(path)
    assert written.mode == 'P'
    np.testing.assert_array_equal(np.array(written), index_mask)
    np.testing.assert_array_equal(
        np.array(written.getpalette()).reshape(-1, 3), DAVIS_PALETTE)
    with pytest.raises(ValueError, match=r'\[0, 256\]'):
        save_davis_png(np.array([[0, 256]]), str(path))
