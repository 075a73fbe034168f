# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
from .formatting import PSALM_META_KEYS, PackPSALMInputs
from .visual_prompts import LoadVisualPrompts, ResizeVisualPrompts

__all__ = [
    'PSALM_META_KEYS', 'PackPSALMInputs', 'LoadVisualPrompts',
    'ResizeVisualPrompts'
]
