# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Panoptic quality (PQ / SQ / RQ) without ``panopticapi``.

``panopticapi`` (cocodataset/panopticapi, BSD-2, (c) 2018 Alexander Kirillov)
is git-only and not on PyPI, and mmdet's ``CocoPanopticMetric`` refuses to
run without it. This module re-implements the few pieces mmdet uses
(``PQStat``, ``VOID``, ``OFFSET``, ``rgb2id``, ``id2rgb``) with the same
semantics, a per-image matcher working on id maps, and
:func:`enable_mmdet_panoptic_metric`, the single place where those symbols
are handed to mmdet.

Matching rules (as in ``panopticapi.evaluation.pq_compute_single_core``):

1. A ground-truth and a predicted segment of the same category match when
   ``IoU > 0.5``, where the union excludes the predicted pixels that fall on
   VOID (id 0) in the ground truth. Crowd ground-truth segments never match.
2. Unmatched non-crowd ground-truth segments are false negatives.
3. An unmatched predicted segment is a false positive unless more than half of
   it lies on VOID plus the crowd region of its own category.
"""
import sys
from collections import defaultdict
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

#: Segment id of unlabelled pixels in COCO panoptic PNGs.
VOID = 0
#: Multiplier used to pack a (gt id, pred id) pair into one integer.
OFFSET = 256 * 256 * 256


def rgb2id(color: Union[np.ndarray, Sequence[int]]) -> Union[np.ndarray, int]:
    """Convert a COCO panoptic RGB encoding to segment ids.

    Args:
        color (np.ndarray | Sequence[int]): An RGB image of shape (H, W, 3)
            or a single ``(R, G, B)`` triple.

    Returns:
        np.ndarray | int: ``R + 256 * G + 256 ** 2 * B``, shape (H, W) for an
        image, an ``int`` for a triple.
    """
    if isinstance(color, np.ndarray) and color.ndim == 3:
        if color.dtype == np.uint8:
            color = color.astype(np.int32)
        return color[:, :, 0] + 256 * color[:, :, 1] + \
            256 * 256 * color[:, :, 2]
    return int(color[0] + 256 * color[1] + 256 * 256 * color[2])


def id2rgb(id_map: Union[np.ndarray, int]) -> Union[np.ndarray, List[int]]:
    """Convert segment ids to the COCO panoptic RGB encoding.

    Args:
        id_map (np.ndarray | int): Segment ids of shape (H, W), or one id.

    Returns:
        np.ndarray | list[int]: ``uint8`` RGB image of shape (H, W, 3), or an
        ``[R, G, B]`` list for a single id.
    """
    if isinstance(id_map, np.ndarray):
        id_map_copy = id_map.copy()
        rgb_map = np.zeros((*id_map.shape, 3), dtype=np.uint8)
        for i in range(3):
            rgb_map[..., i] = id_map_copy % 256
            id_map_copy //= 256
        return rgb_map
    color = []
    for _ in range(3):
        color.append(id_map % 256)
        id_map //= 256
    return color


class PQStatCat:
    """Matching statistics of one category.

    Attributes:
        iou (float): Sum of the IoUs of the true positives.
        tp (int): Number of true positives.
        fp (int): Number of false positives.
        fn (int): Number of false negatives.
    """

    def __init__(self) -> None:
        self.iou = 0.0
        self.tp = 0
        self.fp = 0
        self.fn = 0

    def __iadd__(self, other: 'PQStatCat') -> 'PQStatCat':
        self.iou += other.iou
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        return self


class PQStat:
    """Per-category PQ statistics, summable across images and processes.

    Drop-in replacement of ``panopticapi.evaluation.PQStat``:
    ``pq_stat[category_id]`` returns a :class:`PQStatCat` (created on first
    access), ``+=`` merges two ``PQStat`` objects.
    """

    def __init__(self) -> None:
        self.pq_per_cat: Dict[int, PQStatCat] = defaultdict(PQStatCat)

    def __getitem__(self, category_id: int) -> PQStatCat:
        return self.pq_per_cat[category_id]

    def __iadd__(self, other: 'PQStat') -> 'PQStat':
        for category_id, stat in other.pq_per_cat.items():
            self.pq_per_cat[category_id] += stat
        return self

    def pq_average(self, categories: Mapping[int, dict],
                   isthing: Optional[bool]) -> Tuple[dict, dict]:
        """Average PQ, SQ and RQ over categories.

        For a category, ``PQ = sum_IoU / (TP + FP/2 + FN/2)``,
        ``SQ = sum_IoU / TP`` and ``RQ = TP / (TP + FP/2 + FN/2)``. Categories
        with ``TP + FP + FN == 0`` are left out of the average.

        Args:
            categories (Mapping[int, dict]): Category id -> category info with
                an ``'isthing'`` key (0 or 1).
            isthing (bool, optional): ``True`` averages over things only,
                ``False`` over stuff only, ``None`` over all categories.

        Returns:
            tuple[dict, dict]: ``{'pq', 'sq', 'rq', 'n'}`` averaged over the
            ``n`` counted categories (all 0.0 when ``n == 0``, where
            panopticapi would divide by zero), and the per-category
            ``{'pq', 'sq', 'rq'}`` dicts keyed by category id.
        """
        pq, sq, rq, n = 0.0, 0.0, 0.0, 0
        per_class_results = {}
        for category_id, category in categories.items():
            if isthing is not None and \
                    (category['isthing'] == 1) != isthing:
                continue
            stat = self.pq_per_cat[category_id]
            if stat.tp + stat.fp + stat.fn == 0:
                per_class_results[category_id] = {
                    'pq': 0.0,
                    'sq': 0.0,
                    'rq': 0.0
                }
                continue
            n += 1
            denominator = stat.tp + 0.5 * stat.fp + 0.5 * stat.fn
            pq_class = stat.iou / denominator
            sq_class = stat.iou / stat.tp if stat.tp != 0 else 0.0
            rq_class = stat.tp / denominator
            per_class_results[category_id] = {
                'pq': pq_class,
                'sq': sq_class,
                'rq': rq_class
            }
            pq += pq_class
            sq += sq_class
            rq += rq_class
        if n == 0:
            return {'pq': 0.0, 'sq': 0.0, 'rq': 0.0, 'n': 0}, per_class_results
        return {
            'pq': pq / n,
            'sq': sq / n,
            'rq': rq / n,
            'n': n
        }, per_class_results


def pq_compute_single_image(pan_gt: np.ndarray,
                            pan_pred: np.ndarray,
                            gt_segments_info: Sequence[dict],
                            pred_segments_info: Sequence[dict],
                            categories: Mapping[int, dict],
                            image_id: Union[int, str] = '') -> PQStat:
    """Match the segments of one image and count TP / FP / FN per category.

    Args:
        pan_gt (np.ndarray): Ground-truth segment ids, shape (H, W); 0 is
            VOID.
        pan_pred (np.ndarray): Predicted segment ids, shape (H, W); 0 is
            VOID.
        gt_segments_info (Sequence[dict]): Ground-truth segments with keys
            ``id``, ``category_id``, ``iscrowd`` and ``area`` (the area is
            taken from here, as panopticapi does).
        pred_segments_info (Sequence[dict]): Predicted segments with keys
            ``id`` and ``category_id``; their areas are counted on
            ``pan_pred``.
        categories (Mapping[int, dict]): Known category ids.
        image_id (int | str): Used in error messages only.

    Returns:
        PQStat: The statistics of this image.

    Raises:
        ValueError: If the shapes differ, or the predicted PNG and segment
            list disagree, or a predicted category is unknown.
    """
    if pan_gt.shape != pan_pred.shape:
        raise ValueError(f'Image {image_id}: ground truth of shape '
                         f'{pan_gt.shape} and prediction of shape '
                         f'{pan_pred.shape} differ.')
    pq_stat = PQStat()
    gt_segms = {el['id']: dict(el) for el in gt_segments_info}
    pred_segms = {el['id']: dict(el) for el in pred_segments_info}

    # predicted segment areas + sanity checks
    pred_labels_set = set(pred_segms)
    labels, labels_cnt = np.unique(pan_pred, return_counts=True)
    for label, label_cnt in zip(labels.tolist(), labels_cnt.tolist()):
        if label not in pred_segms:
            if label == VOID:
                continue
            raise ValueError(f'Image {image_id}: segment {label} is in the '
                             'predicted id map but not in its segments_info.')
        pred_segms[label]['area'] = label_cnt
        pred_labels_set.remove(label)
        category_id = pred_segms[label]['category_id']
        if category_id not in categories:
            raise ValueError(f'Image {image_id}: segment {label} has unknown '
                             f'category_id {category_id}.')
    if pred_labels_set:
        raise ValueError(f'Image {image_id}: segments '
                         f'{sorted(pred_labels_set)} are in segments_info but '
                         'not in the predicted id map.')

    # confusion matrix: (gt id, pred id) -> intersection
    # shape (H, W) -> (H * W, ) packed pairs
    pan_gt_pred = pan_gt.astype(np.uint64) * OFFSET + pan_pred.astype(
        np.uint64)
    gt_pred_map = {}
    labels, labels_cnt = np.unique(pan_gt_pred, return_counts=True)
    for label, intersection in zip(labels.tolist(), labels_cnt.tolist()):
        gt_pred_map[(label // OFFSET, label % OFFSET)] = intersection

    # 1. matched pairs
    gt_matched, pred_matched = set(), set()
    for (gt_label, pred_label), intersection in gt_pred_map.items():
        if gt_label not in gt_segms or pred_label not in pred_segms:
            continue
        gt_segm, pred_segm = gt_segms[gt_label], pred_segms[pred_label]
        if gt_segm['iscrowd'] == 1:
            continue
        if gt_segm['category_id'] != pred_segm['category_id']:
            continue
        union = pred_segm['area'] + gt_segm['area'] - intersection - \
            gt_pred_map.get((VOID, pred_label), 0)
        iou = intersection / union
        if iou > 0.5:
            pq_stat[gt_segm['category_id']].tp += 1
            pq_stat[gt_segm['category_id']].iou += iou
            gt_matched.add(gt_label)
            pred_matched.add(pred_label)

    # 2. false negatives; crowd segments are ignored
    crowd_labels_dict = {}
    for gt_label, gt_info in gt_segms.items():
        if gt_label in gt_matched:
            continue
        if gt_info['iscrowd'] == 1:
            crowd_labels_dict[gt_info['category_id']] = gt_label
            continue
        pq_stat[gt_info['category_id']].fn += 1

    # 3. false positives, unless mostly on VOID + same-category crowd
    for pred_label, pred_info in pred_segms.items():
        if pred_label in pred_matched:
            continue
        intersection = gt_pred_map.get((VOID, pred_label), 0)
        if pred_info['category_id'] in crowd_labels_dict:
            intersection += gt_pred_map.get(
                (crowd_labels_dict[pred_info['category_id']], pred_label), 0)
        if intersection / pred_info['area'] > 0.5:
            continue
        pq_stat[pred_info['category_id']].fp += 1
    return pq_stat


def enable_mmdet_panoptic_metric() -> None:
    """Let mmdet's ``CocoPanopticMetric`` run without ``panopticapi``.

    mmdet 3.3.0 imports ``PQStat``, ``VOID``, ``OFFSET``, ``rgb2id`` and
    ``id2rgb`` from ``panopticapi`` inside a ``try`` block and, when that
    fails, leaves them as ``None`` in
    ``mmdet.evaluation.metrics.coco_panoptic_metric`` and
    ``mmdet.evaluation.functional.panoptic_utils`` (whose
    ``pq_compute_single_core`` / ``pq_compute_multi_core`` then raise). This
    function fills exactly those module attributes with the equivalents of
    this module. It is idempotent, does nothing when the real
    ``panopticapi`` was imported by mmdet, and is called only by
    ``PSALMPanopticMetric.__init__``; nothing is patched at import time.

    ``pq_compute_multi_core`` (used when ``outfile_prefix`` is set) runs in a
    ``multiprocessing.Pool``; the filled attributes reach the workers with the
    ``fork`` start method (mmengine's default ``mp_start_method``).
    """
    from mmdet.evaluation.functional import panoptic_utils
    from mmdet.evaluation.metrics import coco_panoptic_metric
    if coco_panoptic_metric.panopticapi is not None:
        return
    # only checked for ``is None`` by mmdet
    coco_panoptic_metric.panopticapi = sys.modules[__name__]
    for module in (coco_panoptic_metric, panoptic_utils):
        module.PQStat = PQStat
        module.VOID = VOID
        module.rgb2id = rgb2id
    coco_panoptic_metric.id2rgb = id2rgb
    panoptic_utils.OFFSET = OFFSET
