# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Mixed-precision-safe multi-scale deformable attention.

mmcv's CUDA ``ms_deform_attn`` kernel is dispatched for fp32 and fp16 only (no
bf16), and mmcv calls it whenever the value tensor lives on a GPU, even when
mmcv was compiled without CUDA. :class:`MixedPrecisionMSDeformAttn` keeps the
parameters and maths of :class:`mmcv.ops.MultiScaleDeformableAttention`
(same state-dict keys, same initialisation) but

* runs the projections in whatever precision autocast chooses,
* runs the sampling core in fp32 with autocast disabled, and
* uses the compiled CUDA kernel only where one was compiled, falling back to
  mmcv's PyTorch implementation (``grid_sample``) everywhere else (CPU, or a
  CPU-only mmcv build on a GPU machine).
"""
from functools import lru_cache
from typing import Optional

import torch
from mmcv.ops import MultiScaleDeformableAttention
from mmcv.ops.multi_scale_deform_attn import (
    MultiScaleDeformableAttnFunction, multi_scale_deformable_attn_pytorch)
from torch import Tensor

from mmdet.registry import MODELS


@lru_cache(maxsize=None)
def mmcv_has_cuda_kernels() -> bool:
    """Whether the installed mmcv was compiled with its CUDA kernels."""
    from mmcv.ops import get_compiling_cuda_version
    return get_compiling_cuda_version() not in ('', 'not available')


def ms_deform_attn_core(value: Tensor, spatial_shapes: Tensor,
                        level_start_index: Tensor, sampling_locations: Tensor,
                        attention_weights: Tensor, im2col_step: int) -> Tensor:
    """Deformable sampling in fp32, on the fastest available implementation.

    Args:
        value (Tensor): ``[B, num_value, num_heads, head_dims]``.
        spatial_shapes (Tensor): ``[num_levels, 2]`` as (h, w).
        level_start_index (Tensor): ``[num_levels]``.
        sampling_locations (Tensor): ``[B, num_query, num_heads, num_levels,
            num_points, 2]`` in [0, 1].
        attention_weights (Tensor): ``[B, num_query, num_heads, num_levels,
            num_points]``.
        im2col_step (int): Chunk size of the CUDA kernel.

    Returns:
        Tensor: ``[B, num_query, num_heads * head_dims]`` in fp32.
    """
    device_type = value.device.type
    with torch.autocast(device_type=device_type, enabled=False):
        value = value.float()
        sampling_locations = sampling_locations.float()
        attention_weights = attention_weights.float()
        if value.is_cuda and mmcv_has_cuda_kernels():
            return MultiScaleDeformableAttnFunction.apply(
                value, spatial_shapes, level_start_index, sampling_locations,
                attention_weights, im2col_step)
        return multi_scale_deformable_attn_pytorch(value, spatial_shapes,
                                                   sampling_locations,
                                                   attention_weights)


@MODELS.register_module()
class MixedPrecisionMSDeformAttn(MultiScaleDeformableAttention):
    """:class:`mmcv.ops.MultiScaleDeformableAttention` safe under bf16/fp16.

    Constructor arguments, parameters and initialisation are those of the mmcv
    class; only :meth:`forward` differs (see the module docstring). Supports
    2-d reference points (the pixel-decoder case).
    """

    def forward(self,
                query: Tensor,
                key: Optional[Tensor] = None,
                value: Optional[Tensor] = None,
                identity: Optional[Tensor] = None,
                query_pos: Optional[Tensor] = None,
                key_padding_mask: Optional[Tensor] = None,
                reference_points: Optional[Tensor] = None,
                spatial_shapes: Optional[Tensor] = None,
                level_start_index: Optional[Tensor] = None,
                **kwargs) -> Tensor:
        """Forward with the same signature as the mmcv module.

        Args:
            query (Tensor): ``[B, num_query, C]`` if ``batch_first`` else
                ``[num_query, B, C]``.
            value (Tensor, optional): Same layout as ``query``; defaults to
                ``query``.
            identity (Tensor, optional): Residual; defaults to ``query``.
            query_pos (Tensor, optional): Added to ``query``.
            key_padding_mask (Tensor, optional): ``[B, num_value]``, True at
                padded positions.
            reference_points (Tensor): ``[B, num_query, num_levels, 2]``.
            spatial_shapes (Tensor): ``[num_levels, 2]``.
            level_start_index (Tensor): ``[num_levels]``.

        Returns:
            Tensor: Same shape and dtype as ``identity``.
        """
        if reference_points is None or reference_points.shape[-1] != 2:
            raise ValueError('MixedPrecisionMSDeformAttn expects 2-d reference '
                             'points [B, num_query, num_levels, 2].')
        if value is None:
            value = query
        if identity is None:
            identity = query
        if query_pos is not None:
            query = query + query_pos
        if not self.batch_first:
            query = query.permute(1, 0, 2)
            value = value.permute(1, 0, 2)
        bs, num_query, _ = query.shape
        num_value = value.shape[1]
        if int((spatial_shapes[:, 0] * spatial_shapes[:, 1]).sum()) != num_value:
            raise ValueError('spatial_shapes do not match the number of values '
                             f'({num_value}).')

        value = self.value_proj(value)
        if key_padding_mask is not None:
            value = value.masked_fill(key_padding_mask[..., None], 0.0)
        value = value.view(bs, num_value, self.num_heads, -1)
        sampling_offsets = self.sampling_offsets(query).view(
            bs, num_query, self.num_heads, self.num_levels, self.num_points, 2)
        attention_weights = self.attention_weights(query).view(
            bs, num_query, self.num_heads, self.num_levels * self.num_points)
        attention_weights = attention_weights.float().softmax(-1).view(
            bs, num_query, self.num_heads, self.num_levels, self.num_points)
        # (w, h) per level, to normalise the pixel offsets
        offset_normalizer = torch.stack(
            [spatial_shapes[..., 1], spatial_shapes[..., 0]], -1)
        sampling_locations = reference_points[:, :, None, :, None, :].float() \
            + sampling_offsets.float() \
            / offset_normalizer[None, None, None, :, None, :]

        output = ms_deform_attn_core(value, spatial_shapes, level_start_index,
                                     sampling_locations, attention_weights,
                                     self.im2col_step)
        if not torch.is_autocast_enabled(output.device.type):
            # e.g. a model cast to bf16 as a whole: match the weights' dtype
            output = output.to(self.output_proj.weight.dtype)
        output = self.output_proj(output)
        if not self.batch_first:
            output = output.permute(1, 0, 2)
        return self.dropout(output).to(identity.dtype) + identity
