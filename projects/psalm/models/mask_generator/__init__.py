# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
from .criterion import PSALMCriterion
from .deform_attn import MixedPrecisionMSDeformAttn, ms_deform_attn_core
from .mask_generator import COND_TYPES, PADDED_COND_LOGIT, MaskGenerator
from .pixel_decoder import PSALMPixelDecoder

__all__ = [
    'MixedPrecisionMSDeformAttn', 'ms_deform_attn_core', 'PSALMPixelDecoder',
    'MaskGenerator', 'PSALMCriterion', 'COND_TYPES', 'PADDED_COND_LOGIT'
]
