# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Vision-language projectors: last Swin level -> LLM image tokens."""
from typing import Optional, Tuple

from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmdet.registry import MODELS
from mmdet.utils import ConfigType, OptMultiConfig


def _to_tokens(x: Tensor) -> Tensor:
    """Flatten a feature map ``[B, C, H, W]`` into tokens ``[B, HW, C]``."""
    return x.flatten(2).transpose(1, 2)


def _strided_grid(feat_size: Tuple[int, int], stride: int) -> Tuple[int, int]:
    """Output size of a 3x3 (padding 1) or 1x1 convolution with ``stride``."""
    return tuple((size - 1) // stride + 1 for size in feat_size)


@MODELS.register_module()
class ConvLinearProjector(BaseModule):
    """The paper's projector: one 3x3 convolution followed by a linear layer.

    With the default stride 2, a 1024x1024 image (Swin res5 ``[B, 1024, 32,
    32]``) gives 16x16 = 256 image tokens.

    Args:
        in_channels (int): Channels of the Swin feature (1024 for Swin-B).
        out_channels (int): LLM hidden size (2048 for Phi-1.5).
        conv_channels (int, optional): Output channels of the convolution;
            defaults to ``out_channels``.
        stride (int): Convolution stride.
        init_cfg (dict or list[dict], optional): Initialisation config.
    """

    def __init__(self,
                 in_channels: int = 1024,
                 out_channels: int = 2048,
                 conv_channels: Optional[int] = None,
                 stride: int = 2,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        conv_channels = conv_channels or out_channels
        self.stride = stride
        self.conv = nn.Conv2d(
            in_channels, conv_channels, 3, stride=stride, padding=1)
        self.fc = nn.Linear(conv_channels, out_channels)

    def grid_size(self, feat_size: Tuple[int, int]) -> Tuple[int, int]:
        """``(H', W')`` of the token grid for a ``feat_size`` input."""
        return _strided_grid(feat_size, self.stride)

    def forward(self, x: Tensor) -> Tensor:
        """Project ``[B, Cin, H, W]`` to image tokens ``[B, H'W', D]``."""
        return self.fc(_to_tokens(self.conv(x)))


class _BasicBlock(nn.Module):
    """The official projector's residual block (conv2 applied twice)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int,
                 norm_cfg: ConfigType) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(
            in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = build_norm_layer(norm_cfg, out_channels)[1]
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(
            out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = build_norm_layer(norm_cfg, out_channels)[1]
        self.downsample = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
            build_norm_layer(norm_cfg, out_channels)[1])

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        # The official forward calls conv2 once unconditionally and once more
        # in its "no DCN" branch: same weights, applied twice, then bn2.
        out = self.bn2(self.conv2(self.conv2(out)))
        return self.relu(out + self.downsample(x))


@MODELS.register_module()
class ResNetSwinProjector(BaseModule):
    """The official ``ResNetSwin`` projector (``swin_conv`` type).

    One ResNet basic block (``layer1.0``: 3x3 conv stride 2 + BN + ReLU, a 3x3
    conv applied twice with shared weights + BN, 1x1-conv+BN shortcut, ReLU)
    and a linear layer ``fc``. Parameter names match the official
    ``model.mm_projector.*`` keys. Full size (1024 -> 2048 -> 2048) holds
    about 62.9 M parameters; res5 ``[B, 1024, 32, 32]`` gives ``[B, 256,
    2048]``.

    Args:
        in_channels (int): Channels of the Swin feature (1024 for Swin-B).
        hidden_channels (int): Channels of the residual block.
        out_channels (int): LLM hidden size (2048 for Phi-1.5).
        stride (int): Stride of the block.
        norm_cfg (dict): Norm layer config (official: plain BN).
        init_cfg (dict or list[dict], optional): Initialisation config;
            defaults to the official conv N(0, sqrt(2 / (k * k * out))) and
            BN weight 1 / bias 0.
    """

    def __init__(
        self,
        in_channels: int = 1024,
        hidden_channels: int = 2048,
        out_channels: int = 2048,
        stride: int = 2,
        norm_cfg: ConfigType = dict(type='BN'),
        init_cfg: OptMultiConfig = [
            dict(
                type='Kaiming',
                layer='Conv2d',
                mode='fan_out',
                nonlinearity='relu',
                distribution='normal'),
            dict(type='Constant', layer='_BatchNorm', val=1, bias=0)
        ]
    ) -> None:
        super().__init__(init_cfg=init_cfg)
        self.stride = stride
        self.layer1 = nn.Sequential(
            _BasicBlock(in_channels, hidden_channels, stride, norm_cfg))
        self.fc = nn.Linear(hidden_channels, out_channels)

    def grid_size(self, feat_size: Tuple[int, int]) -> Tuple[int, int]:
        """``(H', W')`` of the token grid for a ``feat_size`` input."""
        return _strided_grid(feat_size, self.stride)

    def forward(self, x: Tensor) -> Tensor:
        """Project ``[B, Cin, H, W]`` to image tokens ``[B, H'W', D]``."""
        return self.fc(_to_tokens(self.layer1(x)))
