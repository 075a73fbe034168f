# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
from .checkpoint import UnsafeCheckpointError, load_weights_only
from .hooks import (AtomicCheckpointHook, NonFiniteCheckHook,
                    RandomStateHook, SafeCheckpointHook, SamplerResumeHook)
from .random_state import (gather_random_states, get_random_state,
                           set_random_state)
from .runtime import (apply_amp, destroy_distributed, init_cpu_distributed,
                      prepare_config)
from .vos_loop import VOSTestLoop, fuse_object_masks

__all__ = [
    'UnsafeCheckpointError', 'load_weights_only', 'SafeCheckpointHook',
    'prepare_config', 'init_cpu_distributed', 'apply_amp', 'VOSTestLoop',
    'fuse_object_masks', 'destroy_distributed', 'AtomicCheckpointHook',
    'NonFiniteCheckHook', 'RandomStateHook', 'SamplerResumeHook',
    'get_random_state', 'set_random_state', 'gather_random_states'
]
