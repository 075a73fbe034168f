# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""LMM parts: tokenizer, Phi language model, input schema, projectors."""
from .input_schema import (IGNORE_INDEX, IMAGE_TOKEN_INDEX, MASK_TOKEN_INDEX,
                           REGION_TOKEN_INDEX, InputSchema, SequenceSpec)
from .language_model import PhiLanguageModel
from .projector import ConvLinearProjector, ResNetSwinProjector
from .tokenizer import (DEFAULT_TOKENIZER_DIR, CachedEncoder, add_tokens,
                        build_tokenizer, load_tokenizer)

__all__ = [
    'IGNORE_INDEX', 'IMAGE_TOKEN_INDEX', 'MASK_TOKEN_INDEX',
    'REGION_TOKEN_INDEX', 'InputSchema', 'SequenceSpec', 'PhiLanguageModel',
    'ConvLinearProjector', 'ResNetSwinProjector', 'DEFAULT_TOKENIZER_DIR',
    'CachedEncoder', 'add_tokens', 'build_tokenizer', 'load_tokenizer'
]
