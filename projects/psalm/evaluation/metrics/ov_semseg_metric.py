# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Semantic mIoU on label maps with any ignore value (open vocabulary)."""
import numpy as np

from mmdet.registry import METRICS
from .panoptic_semantic_metric import PanopticSemSegMetric
from .utils import get_field, to_id_map


@METRICS.register_module()
class OVSemSegMetric(PanopticSemSegMetric):
    """mIoU / fwIoU / mACC / pACC of ``pred_sem_seg`` on ``gt_sem_seg``.

    The detectron2 ``SemSegEvaluator`` numbers of the official evaluation
    (classes without GT pixels do not count), computed by
    :class:`PanopticSemSegMetric`, here on the label maps of the data
    samples (``gt_sem_seg.sem_seg``, (1, H, W) at the original size) with a
    configurable ignore value (255; PC-459: 65535). mmseg's ``IoUMetric``
    reads ``pred_sem_seg.data`` / ``gt_sem_seg.data``, which PSALM's mmdet
    data samples do not have, and also counts classes that are only
    predicted.

    Args:
        **kwargs: :class:`PanopticSemSegMetric` arguments (``ignore_index``,
            ``classwise``, ``collect_device``, ``prefix``).
    """

    def _gt_map(self, data_sample: dict) -> np.ndarray:
        """The (H, W) int64 GT label map of a sample."""
        name = data_sample.get('img_path')
        return to_id_map(
            get_field(data_sample, 'gt_sem_seg', 'sem_seg'),
            f'{name} gt_sem_seg').astype(np.int64)
