# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""COCO panoptic quality for PSALM, through mmdet's ``CocoPanopticMetric``."""
from typing import Any

from mmdet.evaluation.metrics import CocoPanopticMetric
from mmdet.registry import METRICS

from ..functional.panoptic_quality import enable_mmdet_panoptic_metric


@METRICS.register_module()
class PSALMPanopticMetric(CocoPanopticMetric):
    """PQ / SQ / RQ (all, things, stuff) without ``panopticapi``.

    A thin wrapper: it hands the in-project ``PQStat`` / ``VOID`` /
    ``OFFSET`` / ``rgb2id`` / ``id2rgb`` to mmdet (see
    :func:`~projects.psalm.evaluation.functional.enable_mmdet_panoptic_metric`)
    and is otherwise mmdet's ``CocoPanopticMetric``, so it takes the same
    arguments (``ann_file``, ``seg_prefix``, ``classwise``, ``outfile_prefix``,
    ``format_only``, ``nproc``, ``backend_args``, ``collect_device``,
    ``prefix``), logs the same table and returns ``PQ``, ``SQ``, ``RQ``,
    ``PQ_th``, ``SQ_th``, ``RQ_th``, ``PQ_st``, ``SQ_st``, ``RQ_st`` (in %).

    Data-sample fields read (mmdet's convention): ``pred_panoptic_seg.sem_seg``
    of shape (1, H, W) with ``label + instance * INSTANCE_OFFSET`` values
    (``label == len(classes)`` is VOID), ``img_id``, ``img_path`` (its
    basename with ``.png`` names the panoptic PNG in ``seg_prefix``) and
    ``ori_shape``; without ``ann_file`` also ``segments_info`` (``id``,
    ``category``, ``is_thing``) and ``seg_map_path``. ``dataset_meta`` must
    hold ``classes`` and ``thing_classes``.

    Args:
        **kwargs: Arguments of ``mmdet.evaluation.CocoPanopticMetric``.
    """

    def __init__(self, **kwargs: Any) -> None:
        enable_mmdet_panoptic_metric()
        super().__init__(**kwargs)
