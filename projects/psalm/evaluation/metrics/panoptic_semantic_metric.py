# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Semantic mIoU of a panoptic dataset, its GT derived from the panoptic PNG.

Mask2Former (and PSALM, paper Sec. 4.4) report on COCO panoptic val2017 the
mIoU "by merging instance masks from the same category": detectron2's
``SemSegEvaluator`` on the semantic maps of Mask2Former's
``prepare_coco_semantic_annos_from_panoptic_annos.py``. This metric builds
the same map on the fly from the panoptic PNG, so no converted files are
needed, and computes the same numbers.
"""
from collections import OrderedDict
from typing import Dict, Optional, Sequence

import mmcv
import numpy as np
from mmengine.evaluator import BaseMetric
from mmengine.fileio import get

from mmdet.registry import METRICS
from ..functional.panoptic_quality import rgb2id
from .utils import get_field, log_table, sample_name, to_id_map


def panoptic_to_semantic(pan_ids: np.ndarray,
                         segments_info: Sequence[dict],
                         ignore_index: int = 255) -> np.ndarray:
    """The semantic map of a panoptic id map (Mask2Former's conversion).

    Every segment of ``segments_info``, crowd segments included, paints its
    contiguous class; pixels of no segment (VOID) get ``ignore_index``.

    Args:
        pan_ids (np.ndarray): (H, W) segment ids (``R + 256 G + 256^2 B``).
        segments_info (Sequence[dict]): Segments with ``id`` and contiguous
            ``category`` (mmdet's ``CocoPanopticDataset`` layout).
        ignore_index (int): Label of unlabelled pixels. Defaults to 255.

    Returns:
        np.ndarray: (H, W) int64 class map.
    """
    # shape (H, W) segment ids -> (H, W) class labels through a lookup
    ids = np.asarray([s['id'] for s in segments_info], dtype=np.int64)
    labels = np.asarray([s['category'] for s in segments_info],
                        dtype=np.int64)
    semantic = np.full(pan_ids.shape, ignore_index, dtype=np.int64)
    if len(ids) == 0:
        return semantic
    order = np.argsort(ids)
    ids, labels = ids[order], labels[order]
    pos = np.clip(np.searchsorted(ids, pan_ids), 0, len(ids) - 1)
    hit = ids[pos] == pan_ids
    semantic[hit] = labels[pos[hit]]
    return semantic


@METRICS.register_module()
class PanopticSemSegMetric(BaseMetric):
    """mIoU / fwIoU / mACC / pACC of ``pred_sem_seg`` on panoptic GT.

    The GT of a sample is read from its panoptic PNG (``seg_map_path``) and
    ``segments_info`` (both packed in the metainfo by
    :class:`~projects.psalm.datasets.PackPSALMInputs` from
    :class:`~projects.psalm.datasets.PSALMCocoPanopticDataset`) and turned
    into a class map by :func:`panoptic_to_semantic`: crowd segments keep
    their class, VOID pixels are ignored.

    The numbers follow detectron2's ``SemSegEvaluator`` (Mask2Former's
    protocol): per class ``IoU = TP / (TP + FP + FN)`` and
    ``Acc = TP / (TP + FN)`` over the whole dataset; ``mIoU`` and ``mACC``
    average the classes that have GT pixels (a class only predicted does
    not count, unlike mmseg's ``IoUMetric``); ``fwIoU`` weights the IoUs by
    the GT frequency; ``pACC`` = all TP / all GT pixels. All in %.

    Data-sample fields read: ``pred_sem_seg.sem_seg`` ((1, H, W) class
    indices at the original size), ``seg_map_path``, ``segments_info``
    (``id``, contiguous ``category``). ``dataset_meta['classes']`` gives the
    number of classes.

    Args:
        ignore_index (int): GT label of VOID pixels. Defaults to 255.
        classwise (bool): Also return and log ``IoU-<class>`` per class.
            Defaults to False.
        backend_args (dict, optional): File backend of the PNGs.
        collect_device (str): Device used to collect results across ranks.
            Defaults to ``'cpu'``.
        prefix (str, optional): Prefix of the metric names. Defaults to
            ``default_prefix``.
    """
    default_prefix: Optional[str] = 'sem_seg'

    def __init__(self,
                 ignore_index: int = 255,
                 classwise: bool = False,
                 backend_args: Optional[dict] = None,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        self.ignore_index = ignore_index
        self.classwise = classwise
        self.backend_args = backend_args

    def _gt_map(self, data_sample: dict) -> np.ndarray:
        """Decode the semantic GT of a sample from its panoptic PNG."""
        path = get_field(data_sample, 'seg_map_path')
        png = mmcv.imfrombytes(
            get(path, backend_args=self.backend_args),
            flag='color',
            channel_order='rgb')
        return panoptic_to_semantic(
            rgb2id(png), get_field(data_sample, 'segments_info'),
            self.ignore_index)

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Store per-class TP, predicted and GT pixel counts of each sample.

        Args:
            data_batch (dict): A batch from the dataloader (unused).
            data_samples (Sequence[dict]): Data samples with predictions.
        """
        num_classes = len(self.dataset_meta['classes'])
        for data_sample in data_samples:
            name = sample_name(data_sample)
            pred = to_id_map(
                get_field(data_sample, 'pred_sem_seg', 'sem_seg'),
                f'{name} pred_sem_seg').astype(np.int64)
            gt = self._gt_map(data_sample)
            if pred.shape != gt.shape:
                raise ValueError(f'{name}: pred_sem_seg is {pred.shape} but '
                                 f'the panoptic GT is {gt.shape}')
            valid = gt != self.ignore_index
            pred, gt = pred[valid], gt[valid]
            if len(gt) and (gt.min() < 0 or gt.max() >= num_classes):
                raise ValueError(f'{name}: GT labels must lie in [0, '
                                 f'{num_classes}), got {np.unique(gt)}')
            if len(pred) and (pred.min() < 0 or pred.max() >= num_classes):
                raise ValueError(f'{name}: predicted labels must lie in [0, '
                                 f'{num_classes}), got {np.unique(pred)}')
            # (num_classes, ) pixel counts each
            self.results.append(
                dict(
                    tp=np.bincount(
                        gt[pred == gt], minlength=num_classes),
                    pred=np.bincount(pred, minlength=num_classes),
                    gt=np.bincount(gt, minlength=num_classes)))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Compute mIoU, fwIoU, mACC and pACC over the dataset.

        Args:
            results (list): ``tp``, ``pred``, ``gt`` per-class pixel counts of
                every sample.

        Returns:
            dict[str, float]: ``mIoU``, ``fwIoU``, ``mACC``, ``pACC`` (in %)
            and, when ``classwise``, ``IoU-<class>``.

        Raises:
            ValueError: If no sample has a labelled pixel.
        """
        tp, pred, gt = (
            np.sum([r[key] for r in results], axis=0).astype(np.float64)
            for key in ('tp', 'pred', 'gt'))
        if not gt.sum():
            raise ValueError('No labelled GT pixel; nothing to evaluate.')
        # detectron2: classes with GT pixels are the valid ones
        valid = gt > 0
        union = gt + pred - tp
        iou = np.full(len(gt), np.nan)
        acc = np.full(len(gt), np.nan)
        iou[valid] = tp[valid] / union[valid]
        acc[valid] = tp[valid] / gt[valid]
        metrics = OrderedDict(
            mIoU=100 * float(np.mean(iou[valid])),
            fwIoU=100 * float(np.sum(iou[valid] * gt[valid] / gt.sum())),
            mACC=100 * float(np.mean(acc[valid])),
            pACC=100 * float(tp.sum() / gt.sum()))
        log_table('Semantic segmentation results:',
                  [list(metrics), [f'{v:.2f}' for v in metrics.values()]])
        if self.classwise:
            rows = [['class', 'IoU', 'Acc']]
            for name, class_iou, class_acc in zip(self.dataset_meta['classes'],
                                                  iou, acc):
                metrics[f'IoU-{name}'] = 100 * float(class_iou)
                rows.append([name, f'{100 * class_iou:.2f}',
                             f'{100 * class_acc:.2f}'])
            log_table('Per-class semantic segmentation results:', rows)
        return dict(metrics)
