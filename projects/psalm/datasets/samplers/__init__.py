# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
from .multi_task_sampler import MultiTaskBatchSampler, SeededBatch

__all__ = ['MultiTaskBatchSampler', 'SeededBatch']
