# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""A Swin Transformer whose patch embedding is a small convolutional stem.

mmdet's :class:`~mmdet.models.backbones.SwinTransformer` embeds
non-overlapping 4x4 patches with one linear map. Trained from random
weights on a few hundred images (the CPU quickstart on ShapesWorld), such a
Swin learns *shapes* very slowly: a linear probe on its mask-pooled stride-8
features separates the 6 ShapesWorld shapes at 25% after 1000 steps (chance
16.7%), where the same Swin with this stem reaches 83-89%
(configs/_base_/models/psalm_tiny_shapesworld.py lists the measurements).
Replacing the patchify layer by a
few strided 3x3 convolutions is the remedy of "Early Convolutions Help
Transformers See Better" (Xiao et al., NeurIPS 2021); every Swin stage,
window attention and patch merging is unchanged.
"""
from typing import Sequence, Tuple

import torch.nn as nn
from mmcv.cnn import ConvModule, build_norm_layer
from mmengine.logging import MMLogger
from mmengine.model import BaseModule
from mmengine.runner import CheckpointLoader
from mmengine.utils import to_2tuple
from torch import Tensor

from mmdet.models.backbones import SwinTransformer
from mmdet.registry import MODELS

__all__ = ['ConvStem', 'ConvStemSwinTransformer']


class ConvStem(BaseModule):
    """Strided 3x3 conv-norm-ReLU layers, then a 1x1 projection to the
    token width and a token norm; a drop-in for mmdet's ``PatchEmbed``.

    Args:
        in_channels (int): Image channels.
        embed_dims (int): Token width.
        channels (Sequence[int]): Width of each 3x3 layer.
        strides (Sequence[int]): Stride of each 3x3 layer (their product is
            the stem's stride).
        conv_norm_cfg (dict): Norm of the 3x3 layers.
        norm_cfg (dict, optional): Norm of the output tokens.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 in_channels: int,
                 embed_dims: int,
                 channels: Sequence[int],
                 strides: Sequence[int],
                 conv_norm_cfg: dict = dict(type='GN', num_groups=4),
                 norm_cfg: dict = dict(type='LN'),
                 init_cfg: dict = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if len(channels) != len(strides) or not channels:
            raise ValueError(
                f'ConvStem needs one stride per layer, got channels '
                f'{tuple(channels)} and strides {tuple(strides)}')
        layers = []
        for out_channels, stride in zip(channels, strides):
            layers.append(
                ConvModule(
                    in_channels,
                    out_channels,
                    3,
                    stride=stride,
                    padding=1,
                    norm_cfg=conv_norm_cfg,
                    act_cfg=dict(type='ReLU')))
            in_channels = out_channels
        self.convs = nn.Sequential(*layers)
        self.projection = nn.Conv2d(in_channels, embed_dims, 1)
        self.norm = build_norm_layer(norm_cfg, embed_dims)[1] \
            if norm_cfg is not None else None

    def forward(self, x: Tensor) -> Tuple[Tensor, Tuple[int, int]]:
        """``[B, 3, H, W]`` image -> ``[B, h*w, C]`` tokens and ``(h, w)``
        (as ``PatchEmbed``)."""
        x = self.projection(self.convs(x))  # [B, C, h, w]
        hw_shape = (x.shape[2], x.shape[3])
        x = x.flatten(2).transpose(1, 2)  # [B, h*w, C]
        if self.norm is not None:
            x = self.norm(x)
        return x, hw_shape


@MODELS.register_module()
class ConvStemSwinTransformer(SwinTransformer):
    """mmdet's Swin Transformer with a :class:`ConvStem` patch embedding.

    Args:
        stem_channels (Sequence[int]): Width of each 3x3 stem layer.
        stem_strides (Sequence[int]): Their strides; the product must equal
            ``patch_size`` (the first stage's stride).
        stem_norm_cfg (dict): Norm of the stem's 3x3 layers.
        **kwargs: :class:`~mmdet.models.backbones.SwinTransformer`
            arguments (``use_abs_pos_embed`` and ``convert_weights`` are not
            supported: the stem keeps no patch grid of a pre-training size,
            and no released Swin has this stem). ``init_cfg=dict(
            type='Pretrained', checkpoint=...)`` loads the ``backbone.``
            entries of a checkpoint (e.g. of
            :class:`~projects.psalm.models.ObjectClassifier`) and, unlike
            mmdet's Swin, refuses one that misses or adds any weight.
    """

    def __init__(self,
                 stem_channels: Sequence[int] = (16, 32, 32, 32),
                 stem_strides: Sequence[int] = (2, 2, 1, 1),
                 stem_norm_cfg: dict = dict(type='GN', num_groups=4),
                 **kwargs) -> None:
        super().__init__(**kwargs)
        patch_size = to_2tuple(kwargs.get('patch_size', 4))[0]
        stride = 1
        for s in stem_strides:
            stride *= s
        if stride != patch_size:
            raise ValueError(
                f'the stem strides {tuple(stem_strides)} give stride '
                f'{stride}, but patch_size is {patch_size}')
        if self.use_abs_pos_embed or self.convert_weights:
            raise ValueError('ConvStemSwinTransformer supports neither '
                             'use_abs_pos_embed nor convert_weights')
        norm_cfg = kwargs.get('norm_cfg', dict(type='LN'))
        self.patch_embed = ConvStem(
            kwargs.get('in_channels', 3),
            kwargs.get('embed_dims', 96),
            stem_channels,
            stem_strides,
            conv_norm_cfg=stem_norm_cfg,
            norm_cfg=norm_cfg if kwargs.get('patch_norm', True) else None)
        # re-apply frozen_stages to the new stem
        self._freeze_stages()

    def init_weights(self) -> None:
        """Random initialisation as mmdet's Swin, or the ``backbone.``
        weights of the ``init_cfg`` checkpoint, all of them."""
        if self.init_cfg is None:
            super().init_weights()
            return
        if self.init_cfg.get('type') != 'Pretrained' \
                or 'checkpoint' not in self.init_cfg:
            raise ValueError('init_cfg must be dict(type=\'Pretrained\', '
                             f'checkpoint=...), got {self.init_cfg}')
        filename = self.init_cfg['checkpoint']
        ckpt = CheckpointLoader.load_checkpoint(filename, map_location='cpu')
        state = ckpt.get('state_dict', ckpt)
        prefix = self.init_cfg.get('prefix', 'backbone.')
        state = {
            k[len(prefix):]: v
            for k, v in state.items() if k.startswith(prefix)
        }
        if not state:
            raise ValueError(f'{filename} holds no {prefix!r} weights: not a '
                             'checkpoint of this backbone')
        try:
            missing, unexpected = self.load_state_dict(state, strict=False)
        except RuntimeError as error:  # shape mismatches
            raise ValueError(f'{filename} does not fit {type(self).__name__}'
                             f': {error}') from error
        if missing or unexpected:
            raise ValueError(
                f'{filename} does not fit {type(self).__name__}: missing '
                f'{missing[:5]}, unexpected {unexpected[:5]} '
                f'({len(missing)} / {len(unexpected)} in all)')
        MMLogger.get_current_instance().info(
            f'{type(self).__name__}: loaded {len(state)} weights from '
            f'{filename}')
