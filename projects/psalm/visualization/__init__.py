# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
from .browse import PROMPT_COLOR, draw_psalm_sample, prompt_lines

__all__ = ['PROMPT_COLOR', 'draw_psalm_sample', 'prompt_lines']
