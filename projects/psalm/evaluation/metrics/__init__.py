# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""PSALM metrics, registered in ``mmdet.registry.METRICS``."""
from .interactive_seg_metric import InteractiveSegMetric
from .ov_semseg_metric import OVSemSegMetric
from .panoptic_metric import PSALMPanopticMetric
from .panoptic_semantic_metric import PanopticSemSegMetric
from .refer_seg_metric import GRESMetric, ReferSegMetric
from .vos_metric import VOSMetric
from .vqa_metric import VQAMetric

__all__ = [
    'PSALMPanopticMetric', 'PanopticSemSegMetric', 'ReferSegMetric',
    'GRESMetric', 'InteractiveSegMetric', 'VOSMetric', 'VQAMetric',
    'OVSemSegMetric'
]
