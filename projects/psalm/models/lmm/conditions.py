# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Condition prompts (paper Sec. 3.3): from LLM outputs to classifier weights.

Three condition types give the mask generator its classifier weights:

* **category** -- each class name (``"person"``, ..., ``"background"``) is one
  span of the prompt; its embedding is the average of the LLM outputs over the
  span (paper Fig. 3a; the official code also pools a trailing ``[SEG]``).
* **sentence** -- the referring sentence is followed by ``[REF]`` and the
  LLM output at ``[REF]`` is the embedding (paper Fig. 3b, ``'ref_token'``);
  the released weights average over the sentence and its ``[SEG]``
  terminator instead (``'mean'``).
* **visual prior** -- every point / scribble / box / mask prompt is first
  turned into ONE LLM input vector by pooling the projected image tokens under
  its binary mask (paper: average mask pooling, ``'mask_avg'``; official: mean
  of 256 random bilinear samples, ``'sampled_points'``), then its LLM output
  is the embedding (Fig. 3c).

Each condition type has its own linear projector from the LLM width to the
mask generator width, as has the mask-token output (the decoder queries).
"""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor

from mmdet.registry import MODELS
from mmdet.utils import OptMultiConfig
from ..mask_generator.mask_generator import COND_TYPES


def span_pooling_weights(spans: List[Tensor], length: int, mode: str,
                         device: torch.device) -> Tuple[Tensor, Tensor]:
    """Build a pooling matrix that averages (or picks) LLM outputs per span.

    Args:
        spans (list[Tensor]): Per sample a ``[K_b, 2]`` tensor of half-open
            ``(start, end)`` positions.
        length (int): Sequence length L.
        mode (str): ``'mean'`` averages the span, ``'last'`` takes its last
            position.
        device (torch.device): Device of the result.

    Returns:
        tuple[Tensor, Tensor]: weights ``[B, K, L]`` (rows sum to 1 for valid
        conditions) and the validity mask ``[B, K]`` (False for padding).
    """
    num = max((len(s) for s in spans), default=0)
    weights = torch.zeros(len(spans), num, length, device=device)
    valid = torch.zeros(len(spans), num, dtype=torch.bool, device=device)
    pos = torch.arange(length, device=device)
    for b, sample_spans in enumerate(spans):
        if len(sample_spans) == 0:
            continue
        start, end = sample_spans.to(device).unbind(-1)  # [K_b] each
        if bool((end <= start).any()) or bool((end > length).any()):
            raise ValueError(f'invalid condition spans {sample_spans.tolist()} '
                             f'for a sequence of length {length}')
        if mode == 'mean':
            inside = (pos >= start[:, None]) & (pos < end[:, None])
            weights[b, :len(start)] = inside / (end - start)[:, None]
        elif mode == 'last':
            weights[b, :len(start)] = (pos == (end - 1)[:, None]).float()
        else:
            raise ValueError(f'unknown span pooling mode {mode!r}')
        valid[b, :len(start)] = True
    return weights, valid


def pool_visual_prompts(feature_map: Tensor, prompt_masks: Tensor, mode: str,
                        num_points: int = 256,
                        generator: Optional[torch.Generator] = None) -> Tensor:
    """Pool one feature vector per visual prompt.

    Args:
        feature_map (Tensor): ``[D, h, w]`` projected image tokens of one image.
        prompt_masks (Tensor): ``[K, H, W]`` binary prompt masks at input
            resolution (e.g. 1024x1024).
        mode (str): ``'mask_avg'`` (paper) or ``'sampled_points'`` (official).
        num_points (int): Samples per prompt for ``'sampled_points'``.
        generator (torch.Generator, optional): RNG for the sampled points.

    Returns:
        Tensor: ``[K, D]``.
    """
    num_prompts, height, width = prompt_masks.shape
    if num_prompts == 0:
        return feature_map.new_zeros(0, feature_map.shape[0])
    masks = prompt_masks.to(feature_map.dtype)
    area = masks.flatten(1).sum(1)
    if bool((area == 0).any()):
        empty = torch.nonzero(area == 0).flatten().tolist()
        raise ValueError(f'visual prompts {empty} are empty: nothing to pool')
    if mode == 'mask_avg':
        # Average of the (nearest-)upsampled feature map under the mask ==
        # feature map weighted by the mask area falling into each cell.
        cell_area = F.adaptive_avg_pool2d(masks[None], feature_map.shape[-2:])[0]
        weights = cell_area.flatten(1)  # [K, h*w]
        weights = weights / weights.sum(1, keepdim=True)
        return weights @ feature_map.flatten(1).t()  # [K, D]
    if mode == 'sampled_points':
        pooled = []
        for mask in prompt_masks:
            ys, xs = torch.nonzero(mask, as_tuple=True)
            if len(ys) >= num_points:
                idx = torch.randperm(len(ys), generator=generator,
                                     device='cpu')[:num_points]
            else:
                idx = torch.randint(len(ys), (num_points, ),
                                    generator=generator, device='cpu')
            idx = idx.to(ys.device)
            # (x, y) in [-1, 1] with align_corners=True, coordinates / size
            grid = torch.stack([xs[idx] / width, ys[idx] / height], -1)
            grid = (grid * 2 - 1).to(feature_map.dtype)
            samples = F.grid_sample(feature_map[None], grid[None, None],
                                    mode='bilinear', align_corners=True)
            pooled.append(samples[0, :, 0].mean(-1))  # [D]
        return torch.stack(pooled)
    raise ValueError(f'unknown visual prompt pooling {mode!r}')


@MODELS.register_module()
class ConditionEncoder(BaseModule):
    """Turn LLM outputs into condition embeddings and decoder queries.

    Args:
        llm_dims (int): LLM hidden size (2048 for Phi-1.5).
        embed_dims (int): Mask generator width (256).
        sentence_pooling (str): ``'ref_token'`` (paper: the ``[REF]`` output)
            or ``'mean'`` (official: mean over the sentence span).
        visual_pooling (str): ``'mask_avg'`` (paper) or ``'sampled_points'``
            (official, 256 random samples).
        num_sample_points (int): Samples per prompt for ``'sampled_points'``.
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 llm_dims: int,
                 embed_dims: int = 256,
                 sentence_pooling: str = 'ref_token',
                 visual_pooling: str = 'mask_avg',
                 num_sample_points: int = 256,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg)
        if sentence_pooling not in ('ref_token', 'mean'):
            raise ValueError(f'sentence_pooling must be ref_token or mean, got '
                             f'{sentence_pooling!r}')
        if visual_pooling not in ('mask_avg', 'sampled_points'):
            raise ValueError('visual_pooling must be mask_avg or '
                             f'sampled_points, got {visual_pooling!r}')
        self.sentence_pooling = sentence_pooling
        self.visual_pooling = visual_pooling
        self.num_sample_points = num_sample_points
        self.query_projector = nn.Linear(llm_dims, embed_dims)
        self.projectors = nn.ModuleDict(
            {t: nn.Linear(llm_dims, embed_dims)
             for t in COND_TYPES})

    def encode_visual_prompts(self, image_tokens: Tensor,
                              grid_size: Tuple[int, int],
                              prompt_masks: Sequence[Tensor]) -> List[Tensor]:
        """Pool the projected image tokens under each visual prompt.

        Args:
            image_tokens (Tensor): ``[B, h*w, D]`` projector output.
            grid_size (tuple[int, int]): ``(h, w)`` of the token grid.
            prompt_masks (Sequence[Tensor]): Per image ``[K_b, H, W]``.

        Returns:
            list[Tensor]: Per image ``[K_b, D]`` LLM input vectors.
        """
        generator = None
        if not self.training and self.visual_pooling == 'sampled_points':
            # deterministic evaluation (the official code is random here)
            generator = torch.Generator().manual_seed(0)
        feature_maps = image_tokens.transpose(1, 2).unflatten(-1, grid_size)
        return [
            pool_visual_prompts(fmap, masks, self.visual_pooling,
                                self.num_sample_points, generator)
            for fmap, masks in zip(feature_maps, prompt_masks)
        ]

    def project_queries(self, mask_token_states: Tensor) -> Tensor:
        """``[B, N, D]`` LLM outputs at the mask tokens -> ``[B, N, C]``."""
        return self.query_projector(mask_token_states)

    def forward(self, hidden: Tensor, cond_spans: List[Tensor],
                cond_type: str) -> Tuple[Tensor, Tensor]:
        """Pool and project the condition embeddings.

        Args:
            hidden (Tensor): ``[B, L, D]`` LLM outputs.
            cond_spans (list[Tensor]): Per sample ``[K_b, 2]`` spans in
                ``hidden`` coordinates.
            cond_type (str): ``'category'``, ``'sentence'`` or ``'visual'``.

        Returns:
            tuple[Tensor, Tensor]: ``[B, K, C]`` embeddings (zeros at padding)
            and the ``[B, K]`` validity mask.
        """
        if cond_type not in COND_TYPES:
            raise ValueError(f'unknown condition type {cond_type!r}')
        mode = 'last' if (cond_type == 'sentence'
                          and self.sentence_pooling == 'ref_token') else 'mean'
        weights, valid = span_pooling_weights(cond_spans, hidden.shape[1],
                                              mode, hidden.device)
        pooled = weights.to(hidden.dtype) @ hidden  # [B, K, D]
        embeds = self.projectors[cond_type](pooled) * valid[..., None]
        return embeds, valid
