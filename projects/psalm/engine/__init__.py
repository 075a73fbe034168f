# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
from .checkpoint import UnsafeCheckpointError, load_weights_only
from .hooks import SafeCheckpointHook
from .runtime import apply_amp, init_cpu_distributed, prepare_config

__all__ = [
    'UnsafeCheckpointError', 'load_weights_only', 'SafeCheckpointHook',
    'prepare_config', 'init_cpu_distributed', 'apply_amp'
]
