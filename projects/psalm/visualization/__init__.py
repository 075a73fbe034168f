# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
from .browse import PROMPT_COLOR, draw_psalm_sample, prompt_lines
from .overlay import draw_answer, draw_masks, draw_prompt_outlines

__all__ = [
    'PROMPT_COLOR', 'draw_psalm_sample', 'prompt_lines', 'draw_answer',
    'draw_masks', 'draw_prompt_outlines'
]
