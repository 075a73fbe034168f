# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Tiny (and full-size) configs shared by the mask-generator tests."""
from typing import List

import torch

#: Channels of the four tiny backbone levels (strides 4, 8, 16, 32).
TINY_IN_CHANNELS = [8, 16, 24, 32]
TINY_STRIDES = [4, 8, 16, 32]


def pixel_decoder_cfg(embed_dims: int = 32,
                      num_heads: int = 4,
                      num_layers: int = 2,
                      num_points: int = 2,
                      ffn_channels: int = 64,
                      num_groups: int = 8,
                      **kwargs) -> dict:
    """Pixel decoder config in the mmdet layout (3 encoder levels)."""
    return dict(
        num_outs=3,
        norm_cfg=dict(type='GN', num_groups=num_groups),
        act_cfg=dict(type='ReLU'),
        encoder=dict(
            num_layers=num_layers,
            layer_cfg=dict(
                self_attn_cfg=dict(
                    embed_dims=embed_dims,
                    num_heads=num_heads,
                    num_levels=3,
                    num_points=num_points,
                    dropout=0.0,
                    batch_first=True),
                ffn_cfg=dict(
                    embed_dims=embed_dims,
                    feedforward_channels=ffn_channels,
                    num_fcs=2,
                    ffn_drop=0.0,
                    act_cfg=dict(type='ReLU', inplace=True)))),
        positional_encoding=dict(num_feats=embed_dims // 2, normalize=True),
        **kwargs)


def transformer_decoder_cfg(embed_dims: int = 32,
                            num_heads: int = 4,
                            num_layers: int = 9,
                            ffn_channels: int = 64) -> dict:
    """Mask2Former transformer decoder config."""
    return dict(
        num_layers=num_layers,
        return_intermediate=True,
        layer_cfg=dict(
            self_attn_cfg=dict(
                embed_dims=embed_dims,
                num_heads=num_heads,
                dropout=0.0,
                batch_first=True),
            cross_attn_cfg=dict(
                embed_dims=embed_dims,
                num_heads=num_heads,
                dropout=0.0,
                batch_first=True),
            ffn_cfg=dict(
                embed_dims=embed_dims,
                feedforward_channels=ffn_channels,
                num_fcs=2,
                ffn_drop=0.0,
                act_cfg=dict(type='ReLU', inplace=True))),
        init_cfg=None)


def generator_cfg(num_queries: int = 6,
                  num_layers: int = 9,
                  conv_bias: bool = False,
                  decoupled: bool = True) -> dict:
    """Tiny MaskGenerator config: C=32, 4 heads."""
    return dict(
        in_channels=TINY_IN_CHANNELS,
        feat_channels=32,
        out_channels=32,
        num_queries=num_queries,
        pixel_decoder=pixel_decoder_cfg(
            type='PSALMPixelDecoder', conv_bias=conv_bias),
        transformer_decoder=transformer_decoder_cfg(num_layers=num_layers),
        positional_encoding=dict(num_feats=16, normalize=True),
        decoupled=decoupled)


def full_generator_cfg() -> dict:
    """The PSALM config: Swin-B levels, C=256, 8 heads, 6 + 9 layers."""
    return dict(
        in_channels=[128, 256, 512, 1024],
        feat_channels=256,
        out_channels=256,
        num_queries=100,
        pixel_decoder=pixel_decoder_cfg(
            type='PSALMPixelDecoder',
            conv_bias=True,
            embed_dims=256,
            num_heads=8,
            num_layers=6,
            num_points=4,
            ffn_channels=1024,
            num_groups=32),
        transformer_decoder=transformer_decoder_cfg(
            embed_dims=256, num_heads=8, num_layers=9, ffn_channels=2048),
        positional_encoding=dict(num_feats=128, normalize=True))


def make_feats(batch_size: int = 2, size: int = 64) -> List[torch.Tensor]:
    """Random tiny backbone features ``[B, C_l, size / s_l, size / s_l]``."""
    return [
        torch.randn(batch_size, c, size // s, size // s)
        for c, s in zip(TINY_IN_CHANNELS, TINY_STRIDES)
    ]
