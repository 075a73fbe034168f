# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""User-facing inference: :class:`PSALMInferencer` and its prompts."""
from .inferencer import PSALMInferencer
from .prompts import KIND_TASKS, PROMPT_KINDS, PromptRequest, parse_prompt

__all__ = [
    'PSALMInferencer', 'PromptRequest', 'parse_prompt', 'PROMPT_KINDS',
    'KIND_TASKS'
]
