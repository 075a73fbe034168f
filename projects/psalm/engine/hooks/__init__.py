# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
from .safe_checkpoint_hook import (SafeCheckpointHook, check_state_dict_match,
                                   from_plain, to_plain)
from .sampler_resume_hook import SamplerResumeHook

__all__ = [
    'SafeCheckpointHook', 'check_state_dict_match', 'to_plain', 'from_plain',
    'SamplerResumeHook'
]
