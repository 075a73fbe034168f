# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""PSALM evaluation: array-level metric functions and mmengine metrics."""
from . import functional, metrics
from .metrics import (GRESMetric, InteractiveSegMetric, PSALMPanopticMetric,
                      ReferSegMetric, VOSMetric, VQAMetric)

__all__ = [
    'functional', 'metrics', 'PSALMPanopticMetric', 'ReferSegMetric',
    'GRESMetric', 'InteractiveSegMetric', 'VOSMetric', 'VQAMetric'
]
