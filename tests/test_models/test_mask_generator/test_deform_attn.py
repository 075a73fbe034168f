# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""MixedPrecisionMSDeformAttn against mmcv's MultiScaleDeformableAttention."""
from typing import Dict, Tuple

import pytest
import torch
from mmcv.ops import MultiScaleDeformableAttention

from projects.psalm.models.mask_generator.deform_attn import \
    MixedPrecisionMSDeformAttn

EMBED_DIMS = 32
SPATIAL_SHAPES = [(8, 8), (4, 4), (2, 2)]


def _pair(
    batch_first: bool = True
) -> Tuple[MultiScaleDeformableAttention, MixedPrecisionMSDeformAttn]:
    """mmcv module with random (non-default) weights and a copy of ours."""
    cfg = dict(
        embed_dims=EMBED_DIMS,
        num_heads=4,
        num_levels=len(SPATIAL_SHAPES),
        num_points=2,
        dropout=0.0,
        batch_first=batch_first)
    ref = MultiScaleDeformableAttention(**cfg)
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.1 * torch.randn_like(p))
    ours = MixedPrecisionMSDeformAttn(**cfg)
    ours.load_state_dict(ref.state_dict())
    return ref, ours


def _inputs(batch_size: int = 2,
            batch_first: bool = True) -> Dict[str, torch.Tensor]:
    """Encoder-style inputs: every pixel of every level is a query."""
    spatial_shapes = torch.tensor(SPATIAL_SHAPES)
    num_value = int(spatial_shapes.prod(1).sum())
    level_start_index = torch.cat(
        (spatial_shapes.new_zeros(1), spatial_shapes.prod(1).cumsum(0)[:-1]))
    query = torch.randn(batch_size, num_value, EMBED_DIMS)
    value = torch.randn(batch_size, num_value, EMBED_DIMS)
    if not batch_first:
        query, value = query.transpose(0, 1), value.transpose(0, 1)
    return dict(
        query=query.requires_grad_(),
        value=value.requires_grad_(),
        query_pos=torch.randn_like(query),
        # [B, num_query, num_levels, 2] in [0, 1]
        reference_points=torch.rand(batch_size, num_value, len(SPATIAL_SHAPES),
                                    2),
        spatial_shapes=spatial_shapes,
        level_start_index=level_start_index)


@pytest.mark.parametrize('batch_first', [True, False])
def test_matches_mmcv_on_cpu(batch_first: bool) -> None:
    torch.manual_seed(0)
    ref, ours = _pair(batch_first)
    inputs = _inputs(batch_first=batch_first)
    num_value = int(inputs['spatial_shapes'].prod(1).sum())
    padding = torch.zeros(2, num_value, dtype=torch.bool)  # [B, num_value]
    padding[1, -4:] = True
    expected = ref(**inputs, key_padding_mask=padding)
    actual = ours(**inputs, key_padding_mask=padding)
    assert actual.shape == expected.shape == inputs['query'].shape
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)


def test_bf16_autocast_gives_fp32_close_to_reference() -> None:
    torch.manual_seed(0)
    _, ours = _pair()
    inputs = _inputs()
    expected = ours(**inputs)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        actual = ours(**inputs)
    assert actual.dtype == torch.float32
    assert torch.isfinite(actual).all()
    rel_err = (actual - expected).norm() / expected.norm()
    assert rel_err < 2e-2


def test_gradient_reaches_inputs_and_parameters() -> None:
    torch.manual_seed(0)
    _, ours = _pair()
    inputs = _inputs()
    ours(**inputs).square().sum().backward()
    for name in ('query', 'value'):
        assert inputs[name].grad is not None
        assert inputs[name].grad.abs().sum() > 0, name
    for name, p in ours.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_same_state_dict_keys_and_shapes() -> None:
    ref, ours = _pair()
    assert {k: v.shape for k, v in ours.state_dict().items()} == \
        {k: v.shape for k, v in ref.state_dict().items()}


def test_rejects_non_2d_reference_points() -> None:
    _, ours = _pair()
    inputs = _inputs()
    inputs['reference_points'] = torch.rand(2, 84, len(SPATIAL_SHAPES), 4)
    with pytest.raises(ValueError, match='2-d reference'):
        ours(**inputs)
