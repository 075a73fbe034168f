# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Tests of the vision-language projectors."""
import torch
import torch.nn.functional as F

from mmdet.registry import MODELS
from projects.psalm.models.lmm.projector import (ConvLinearProjector,
                                                 ResNetSwinProjector)

# model.mm_projector.* of the official checkpoint (prefix stripped).
OFFICIAL_SHAPES = {
    'layer1.0.conv1.weight': (2048, 1024, 3, 3),
    'layer1.0.bn1.weight': (2048, ),
    'layer1.0.bn1.bias': (2048, ),
    'layer1.0.bn1.running_mean': (2048, ),
    'layer1.0.bn1.running_var': (2048, ),
    'layer1.0.bn1.num_batches_tracked': (),
    'layer1.0.conv2.weight': (2048, 2048, 3, 3),
    'layer1.0.bn2.weight': (2048, ),
    'layer1.0.bn2.bias': (2048, ),
    'layer1.0.bn2.running_mean': (2048, ),
    'layer1.0.bn2.running_var': (2048, ),
    'layer1.0.bn2.num_batches_tracked': (),
    'layer1.0.downsample.0.weight': (2048, 1024, 1, 1),
    'layer1.0.downsample.1.weight': (2048, ),
    'layer1.0.downsample.1.bias': (2048, ),
    'layer1.0.downsample.1.running_mean': (2048, ),
    'layer1.0.downsample.1.running_var': (2048, ),
    'layer1.0.downsample.1.num_batches_tracked': (),
    'fc.weight': (2048, 2048),
    'fc.bias': (2048, ),
}


def test_full_size_shapes_on_meta():
    with torch.device('meta'):
        res5 = torch.empty(2, 1024, 32, 32)  # Swin-B res5 of a 1024 image
        official = ResNetSwinProjector()
        paper = ConvLinearProjector()
        assert official(res5).shape == (2, 256, 2048)
        assert paper(res5).shape == (2, 256, 2048)
    num_params = sum(p.numel() for p in official.parameters())
    assert abs(num_params - 62.9e6) < 0.1e6
    assert {
        k: tuple(v.shape)
        for k, v in official.state_dict().items()
    } == OFFICIAL_SHAPES


def test_conv_linear_projector():
    torch.manual_seed(0)
    projector = MODELS.build(
        dict(
            type='ConvLinearProjector',
            in_channels=4,
            out_channels=6,
            conv_channels=5))
    x = torch.randn(2, 4, 32, 32)
    out = projector(x)
    assert out.shape == (2, 256, 6)
    feat = F.conv2d(x, projector.conv.weight, projector.conv.bias, 2, 1)
    expected = F.linear(
        feat.flatten(2).transpose(1, 2), projector.fc.weight,
        projector.fc.bias)
    torch.testing.assert_close(out, expected)
    assert ConvLinearProjector(4, 6, stride=1)(x).shape == (2, 1024, 6)


def test_conv2_applied_twice():
    torch.manual_seed(0)
    projector = MODELS.build(
        dict(
            type='ResNetSwinProjector',
            in_channels=4,
            hidden_channels=8,
            out_channels=6))
    projector.init_weights()
    block = projector.layer1[0]
    for bn in (block.bn1, block.bn2, block.downsample[1]):
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.5, 0.5)
    projector.eval()
    x = torch.randn(2, 4, 8, 8)

    def bn(module, feat):
        return F.batch_norm(feat, module.running_mean, module.running_var,
                            module.weight, module.bias, False, 0.0, module.eps)

    def conv2(feat):
        return F.conv2d(feat, block.conv2.weight, None, 1, 1)

    out1 = F.relu(bn(block.bn1, F.conv2d(x, block.conv1.weight, None, 2, 1)))
    shortcut = bn(block.downsample[1],
                  F.conv2d(x, block.downsample[0].weight, None, 2))
    twice = F.relu(bn(block.bn2, conv2(conv2(out1))) + shortcut)
    once = F.relu(bn(block.bn2, conv2(out1)) + shortcut)

    def head(feat):
        return F.linear(
            feat.flatten(2).transpose(1, 2), projector.fc.weight,
            projector.fc.bias)

    with torch.no_grad():
        out = projector(x)
    assert out.shape == (2, 16, 6)
    torch.testing.assert_close(out, head(twice))
    assert not torch.allclose(out, head(once))


def test_official_init():
    projector = ResNetSwinProjector(
        in_channels=64, hidden_channels=256, out_channels=8)
    block = projector.layer1[0]
    block.bn1.weight.data.fill_(3.0)
    block.bn2.bias.data.fill_(3.0)
    projector.init_weights()
    for conv in (block.conv1, block.conv2):
        # N(0, sqrt(2 / (k * k * out)))
        std = (2.0 / (3 * 3 * 256))**0.5
        assert abs(conv.weight.std().item() - std) < 0.05 * std
        assert abs(conv.weight.mean().item()) < 0.05 * std
    std = (2.0 / 256)**0.5
    assert abs(block.downsample[0].weight.std().item() - std) < 0.05 * std
    for norm in (block.bn1, block.bn2, block.downsample[1]):
        assert torch.all(norm.weight == 1) and torch.all(norm.bias == 0)
