# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
from .atomic_checkpoint_hook import AtomicCheckpointHook
from .non_finite_check_hook import NonFiniteCheckHook
from .random_state_hook import RandomStateHook
from .safe_checkpoint_hook import (SafeCheckpointHook, check_state_dict_match,
                                   from_plain, to_plain)
from .sampler_resume_hook import SamplerResumeHook

__all__ = [
    'SafeCheckpointHook', 'check_state_dict_match', 'to_plain', 'from_plain',
    'SamplerResumeHook', 'AtomicCheckpointHook', 'NonFiniteCheckHook',
    'RandomStateHook'
]
