# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Referring (RefCOCO/+/g) and generalised referring (gRefCOCO) metrics."""
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmdet.registry import METRICS
from mmengine.evaluator import BaseMetric

from ..functional.mask_iou import (cumulative_iou, mean_iou,
                                   target_accuracies)
from .utils import log_metrics_table, sample_mask_stats


@METRICS.register_module()
class ReferSegMetric(BaseMetric):
    """cIoU and mIoU of referring segmentation.

    Follows mmdet's ``RefSegMetric`` data convention (``RefCocoDataset``), with
    one prediction per referring expression:

    * ``pred_instances.masks``: predicted masks of shape (N, H, W), one per
      expression of the image (PSALM: the top-1 query's mask);
    * ``gt_masks``: ground-truth masks of shape (N, H, W) (``BitmapMasks``,
      tensor or array), row ``i`` for expression ``i``.

    Each expression is one sample. Unlike mmdet's ``RefSegMetric`` (IoU := 0),
    a sample whose prediction and ground truth are both empty has IoU 1.

    Results (in %): ``cIoU`` = sum_i |P_i & G_i| / sum_i |P_i | G_i|,
    ``mIoU`` = mean_i IoU_i; plus ``num_samples``.

    Args:
        collect_device (str): Device used to collect results across ranks,
            ``'cpu'`` or ``'gpu'``. Defaults to ``'cpu'``.
        prefix (str, optional): Prefix of the metric names. Defaults to
            ``default_prefix``.
    """
    default_prefix: Optional[str] = 'refseg'

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Store intersection, union and areas of every expression.

        Args:
            data_batch (dict): A batch from the dataloader (unused).
            data_samples (Sequence[dict]): Data samples with predictions.
        """
        for data_sample in data_samples:
            self.results.append(sample_mask_stats(data_sample))

    @staticmethod
    def _concat(
        results: List[Tuple[np.ndarray, ...]]
    ) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Concatenate the per-image stats.

        Args:
            results (list): ``(intersections, unions, pred_areas, gt_areas)``
                per image, each of shape (N_image, ).

        Returns:
            tuple[np.ndarray]: The four stats over all expressions, each of
            shape (N, ).

        Raises:
            ValueError: If no expression was processed.
        """
        if results:
            stats = tuple(np.concatenate(stat) for stat in zip(*results))
            if len(stats[0]):
                return stats
        raise ValueError(
            'No referring expression was processed; nothing to evaluate.')

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Compute cIoU and mIoU over all expressions.

        Args:
            results (list): ``(intersections, unions, pred_areas, gt_areas)``
                per image.

        Returns:
            dict[str, float]: ``cIoU``, ``mIoU`` (in %) and ``num_samples``.
        """
        intersections, unions, _, _ = self._concat(results)
        metrics = {
            'cIoU': 100 * cumulative_iou(intersections, unions),
            'mIoU': 100 * mean_iou(intersections, unions),
            'num_samples': float(len(unions))
        }
        log_metrics_table('Referring segmentation results:', metrics)
        return metrics


@METRICS.register_module()
class GRESMetric(ReferSegMetric):
    """cIoU, gIoU, N-acc and T-acc of generalised referring segmentation.

    Same data convention as :class:`ReferSegMetric`; a no-target expression
    has an all-zero ``gt_masks`` row, and an empty predicted mask means the
    model answered "no target". No-target samples count in every metric
    (their IoU is 1 for an empty prediction, else 0).

    Results (in %): ``cIoU``, ``gIoU`` (mean per-sample IoU),
    ``N-acc`` = TN / (TN + FP) over no-target samples and
    ``T-acc`` = TP / (TP + FN) over target samples (``nan`` when there are no
    such samples); plus ``num_samples`` and ``num_no_target``.

    Note that PSALM's gRefCOCO post-processing falls back to the top-1 mask
    when no query passes the threshold, so it never predicts "no target" and
    its N-acc is 0 by construction.

    Args:
        collect_device (str): Device used to collect results across ranks.
            Defaults to ``'cpu'``.
        prefix (str, optional): Prefix of the metric names. Defaults to
            ``default_prefix``.
    """
    default_prefix: Optional[str] = 'gres'

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Compute cIoU, gIoU, N-acc and T-acc over all expressions.

        Args:
            results (list): ``(intersections, unions, pred_areas, gt_areas)``
                per image.

        Returns:
            dict[str, float]: ``cIoU``, ``gIoU``, ``N-acc``, ``T-acc`` (in %),
            ``num_samples`` and ``num_no_target``.
        """
        intersections, unions, pred_areas, gt_areas = self._concat(results)
        n_acc, t_acc = target_accuracies(pred_areas, gt_areas)
        metrics = {
            'cIoU': 100 * cumulative_iou(intersections, unions),
            'gIoU': 100 * mean_iou(intersections, unions),
            'N-acc': 100 * n_acc,
            'T-acc': 100 * t_acc,
            'num_samples': float(len(unions)),
            'num_no_target': float(np.sum(gt_areas == 0))
        }
        log_metrics_table('Generalised referring segmentation results:',
                          metrics)
        return metrics
