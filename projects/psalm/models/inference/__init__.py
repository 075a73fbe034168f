# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
from .postprocess import (category_inference, gres_inference,
                          referring_inference, resize_mask_logits,
                          unique_visual_prompt_inference,
                          visual_prompt_inference)
from .predictions import CATEGORY_TASKS, fill_prediction

__all__ = [
    'CATEGORY_TASKS', 'fill_prediction',
    'resize_mask_logits', 'category_inference', 'referring_inference',
    'gres_inference', 'visual_prompt_inference',
    'unique_visual_prompt_inference'
]
