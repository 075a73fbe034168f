# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Pixel decoder of the PSALM mask generator.

PSALM uses the Mask2Former multi-scale deformable-attention pixel decoder
unchanged, except that the GroupNorm-normalised FPN convolutions of the
released weights (``adapter_1`` / ``layer_1`` in the official layout, i.e.
mmdet's ``lateral_convs`` / ``output_convs``) carry a bias. This module reuses
:class:`mmdet.models.layers.MSDeformAttnPixelDecoder` and only

* optionally adds those biases (``conv_bias=True``), and
* swaps every encoder self-attention for
  :class:`~.deform_attn.MixedPrecisionMSDeformAttn` (same config and
  state-dict keys), so that the decoder runs under bf16/fp16 autocast and on
  machines without mmcv's compiled CUDA kernel.
"""
from typing import List, Tuple, Union

import torch.nn as nn
from mmdet.models.layers import MSDeformAttnPixelDecoder
from mmdet.registry import MODELS
from mmdet.utils import ConfigType, OptMultiConfig

from .deform_attn import MixedPrecisionMSDeformAttn

__all__ = ['PSALMPixelDecoder']


@MODELS.register_module()
class PSALMPixelDecoder(MSDeformAttnPixelDecoder):
    """MSDeformAttn pixel decoder with optional FPN conv biases.

    The forward pass is the one of mmdet's
    :class:`~mmdet.models.layers.MSDeformAttnPixelDecoder`: given the backbone
    levels (strides 4..32) it returns ``(mask_features [B, C, H/4, W/4],
    multi_scale_memorys)``, the latter a list of ``num_outs`` maps ordered
    from low to high resolution (strides 32, 16, 8 for the PSALM config).

    Args:
        in_channels (list[int] | tuple[int]): Channels of the input levels.
        strides (list[int] | tuple[int]): Strides of the input levels.
        feat_channels (int): Channels of the internal features.
        out_channels (int): Channels of ``mask_features``.
        num_outs (int): Number of multi-scale outputs.
        norm_cfg (:obj:`ConfigDict` or dict): Normalisation config.
        act_cfg (:obj:`ConfigDict` or dict): Activation config.
        encoder (:obj:`ConfigDict` or dict): Deformable encoder config (as in
            mmdet; ``layer_cfg.self_attn_cfg`` configures the
            :class:`MixedPrecisionMSDeformAttn` modules).
        positional_encoding (:obj:`ConfigDict` or dict): Sine positional
            encoding config.
        conv_bias (bool): Add a bias to the lateral (1x1) and output (3x3)
            FPN convolutions even though they are followed by a norm layer,
            as in the official PSALM weights. The biases are zero-initialised.
            Defaults to False (mmdet's layout).
        init_cfg (:obj:`ConfigDict` or dict or list, optional):
            Initialisation config. Defaults to None.
    """

    def __init__(self,
                 in_channels: Union[List[int],
                                    Tuple[int]] = [256, 512, 1024, 2048],
                 strides: Union[List[int], Tuple[int]] = [4, 8, 16, 32],
                 feat_channels: int = 256,
                 out_channels: int = 256,
                 num_outs: int = 3,
                 norm_cfg: ConfigType = dict(type='GN', num_groups=32),
                 act_cfg: ConfigType = dict(type='ReLU'),
                 encoder: ConfigType = None,
                 positional_encoding: ConfigType = dict(
                     num_feats=128, normalize=True),
                 conv_bias: bool = False,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(
            in_channels=in_channels,
            strides=strides,
            feat_channels=feat_channels,
            out_channels=out_channels,
            num_outs=num_outs,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
            encoder=encoder,
            positional_encoding=positional_encoding,
            init_cfg=init_cfg)
        self.conv_bias = conv_bias
        for layer in self.encoder.layers:
            layer.self_attn = MixedPrecisionMSDeformAttn(**layer.self_attn_cfg)
        if conv_bias:
            for conv_module in [*self.lateral_convs, *self.output_convs]:
                conv = conv_module.conv
                if conv.bias is None:
                    conv.bias = nn.Parameter(
                        conv.weight.new_zeros(conv.out_channels))
