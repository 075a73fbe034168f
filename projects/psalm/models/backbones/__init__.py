# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
from .conv_stem_swin import ConvStem, ConvStemSwinTransformer

__all__ = ['ConvStem', 'ConvStemSwinTransformer']
