# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""The PSALM mask generator (Eq. (1) of the paper).

``{(m_i, p_i)} = MaskGenerator({v_l}, {q_i}, {c_k})``: a Mask2Former pixel
decoder and masked-attention transformer decoder whose query *content* comes
from the LMM (the projected mask-token outputs) and whose classifier is a dot
product with the projected condition embeddings, one projection MLP per
condition type (category / sentence / visual prompt).
"""
from typing import List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import Conv2d
from mmdet.models.layers import (Mask2FormerTransformerDecoder,
                                 SinePositionalEncoding)
from mmdet.registry import MODELS
from mmdet.utils import ConfigType, OptMultiConfig
from mmengine.config import ConfigDict
from mmengine.model import BaseModule, ModuleList, caffe2_xavier_init
from torch import Tensor

__all__ = ['COND_TYPES', 'PADDED_COND_LOGIT', 'MaskGenerator']

#: Condition types of the paper (Sec. 3.3), one classifier MLP each.
COND_TYPES = ('category', 'sentence', 'visual')

#: Class logit given to padded conditions. Finite on purpose: ``-inf`` would
#: give NaN in softmax/BCE when every entry of a row is padded, and the value
#: is still representable in fp16/bf16 (unlike e.g. ``-1e9``), so that losses
#: stay finite under mixed precision while ``exp(-1e4)`` is exactly 0.
PADDED_COND_LOGIT = -1e4


@MODELS.register_module()
class MaskGenerator(BaseModule):
    """PSALM mask generator: Mask2Former decoder with condition classifiers.

    The module keeps the attribute names of mmdet's
    :class:`~mmdet.models.dense_heads.Mask2FormerHead` (``pixel_decoder``,
    ``transformer_decoder``, ``decoder_input_projs``,
    ``decoder_positional_encoding``, ``level_embed``, ``query_embed``,
    ``mask_embed``), so the ``panoptic_head.*`` weights of an mmdet
    Mask2Former checkpoint of the same config load into it (all but
    ``cls_embed`` and ``query_feat``, which PSALM replaces by the condition
    classifiers and the LMM queries). ``init_cfg=dict(type='Pretrained',
    checkpoint=..., prefix='panoptic_head.')`` does that at
    :meth:`init_weights`.

    For every prediction head (on the initial queries and after each decoder
    layer) with ``Y = post_norm(decoder output)`` ``[B, N, C]``:

    * masks: ``M[b, q] = <mask_embed(Y)[b, q], mask_features[b]>``;
    * class logits: ``logits[b, q, k] = <cond_mlps[t](Y)[b, q], c[b, k]>``
      (plain dot product, no temperature/bias) for the condition type ``t``;
      padded conditions get :data:`PADDED_COND_LOGIT`.

    Args:
        in_channels (list[int]): Channels of the backbone levels
            (strides 4, 8, 16, 32), e.g. ``[128, 256, 512, 1024]`` for Swin-B.
        pixel_decoder (:obj:`ConfigDict` or dict): Pixel decoder config
            (``in_channels``, ``feat_channels`` and ``out_channels`` are
            filled in, as in mmdet).
        transformer_decoder (:obj:`ConfigDict` or dict): Keyword arguments of
            :class:`mmdet.models.layers.Mask2FormerTransformerDecoder`.
        feat_channels (int): Channels of the pixel-decoder features.
            Defaults to 256.
        out_channels (int): Channels of ``mask_features``. Defaults to 256.
        num_queries (int): Number of mask tokens (rows of ``query_embed``).
            Unused when ``decoupled=False``. Defaults to 100.
        num_transformer_feat_level (int): Number of pixel-decoder levels
            attended to by the decoder, round-robin from low resolution.
            Defaults to 3.
        enforce_decoder_input_project (bool): Add 1x1 convs between the pixel
            decoder and the decoder even when the channels match.
            Defaults to False.
        positional_encoding (:obj:`ConfigDict` or dict): Config of the sine
            positional encoding of the decoder memory.
            Defaults to ``dict(num_feats=128, normalize=True)``.
        decoupled (bool): True (PSALM) decouples mask proposals from
            classification: the ``queries`` (mask tokens) propose masks that
            are classified against the conditions. False is the
            "non-decoupled" ablation (paper Tab. 3 / appendix 10): the
            condition embeddings themselves are the decoder queries (no
            ``query_embed``), so query ``k`` predicts condition ``k``'s mask
            and class. Defaults to True.
        init_cfg (:obj:`ConfigDict` or dict or list, optional):
            Initialisation config, applied after the default initialisation.
            Defaults to None.
    """

    def __init__(self,
                 in_channels: List[int],
                 *,
                 pixel_decoder: ConfigType,
                 transformer_decoder: ConfigType,
                 feat_channels: int = 256,
                 out_channels: int = 256,
                 num_queries: int = 100,
                 num_transformer_feat_level: int = 3,
                 enforce_decoder_input_project: bool = False,
                 positional_encoding: ConfigType = dict(
                     num_feats=128, normalize=True),
                 decoupled: bool = True,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        pixel_decoder = ConfigDict(pixel_decoder)
        transformer_decoder = ConfigDict(transformer_decoder)
        encoder_attn_cfg = pixel_decoder.encoder.layer_cfg.self_attn_cfg
        if encoder_attn_cfg.num_levels != num_transformer_feat_level:
            raise ValueError(
                f'The pixel decoder encodes {encoder_attn_cfg.num_levels} '
                'levels but num_transformer_feat_level is '
                f'{num_transformer_feat_level}.')
        self.decoupled = decoupled
        self.num_transformer_feat_level = num_transformer_feat_level
        self.num_heads = transformer_decoder.layer_cfg.cross_attn_cfg.num_heads

        pixel_decoder.update(
            in_channels=in_channels,
            feat_channels=feat_channels,
            out_channels=out_channels)
        self.pixel_decoder = MODELS.build(pixel_decoder)
        self.transformer_decoder = Mask2FormerTransformerDecoder(
            **transformer_decoder)
        embed_dims = self.transformer_decoder.embed_dims
        self.embed_dims = embed_dims

        # from low resolution to high resolution
        self.decoder_input_projs = ModuleList()
        for _ in range(num_transformer_feat_level):
            if embed_dims != feat_channels or enforce_decoder_input_project:
                self.decoder_input_projs.append(
                    Conv2d(feat_channels, embed_dims, kernel_size=1))
            else:
                self.decoder_input_projs.append(nn.Identity())
        self.decoder_positional_encoding = SinePositionalEncoding(
            **positional_encoding)
        self.level_embed = nn.Embedding(num_transformer_feat_level, embed_dims)
        if decoupled:
            # learned query positions; the content comes from the LMM
            self.query_embed = nn.Embedding(num_queries, embed_dims)

        self.mask_embed = nn.Sequential(
            nn.Linear(embed_dims, embed_dims), nn.ReLU(inplace=True),
            nn.Linear(embed_dims, embed_dims), nn.ReLU(inplace=True),
            nn.Linear(embed_dims, out_channels))
        self.cond_mlps = nn.ModuleDict({
            cond_type:
            nn.Sequential(
                nn.Linear(embed_dims, embed_dims), nn.ReLU(inplace=True),
                nn.Linear(embed_dims, embed_dims))
            for cond_type in COND_TYPES
        })

    @property
    def num_queries(self) -> int:
        """Number of mask tokens the LMM must provide (0 if not decoupled:
        the queries are then the condition embeddings)."""
        return self.query_embed.num_embeddings if self.decoupled else 0

    def init_weights(self) -> None:
        """mmdet Mask2FormerHead initialisation, then ``init_cfg``.

        Decoder input projections get caffe2-Xavier, the transformer decoder
        Xavier-normal on every matrix, the pixel decoder its own
        :meth:`init_weights`; ``init_cfg`` (e.g. a ``Pretrained`` checkpoint)
        is applied last by :meth:`BaseModule.init_weights`.
        """
        for m in self.decoder_input_projs:
            if isinstance(m, Conv2d):
                caffe2_xavier_init(m, bias=0)
        for p in self.transformer_decoder.parameters():
            if p.dim() > 1:
                nn.init.xavier_normal_(p)
        super().init_weights()

    @staticmethod
    def _unblock_full_rows(attn_mask: Tensor) -> Tensor:
        """Unblock the rows of a boolean attention mask (True = blocked) that
        block every key, so that attention never normalises over nothing."""
        fully_blocked = attn_mask.all(dim=-1, keepdim=True)
        return attn_mask & ~fully_blocked

    def _forward_head(self, decoder_out: Tensor, mask_features: Tensor,
                      attn_mask_target_size: Tuple[int, int],
                      cond_embeds: Tensor, cond_mask: Tensor,
                      cond_type: str) -> Tuple[Tensor, Tensor, Tensor]:
        """Prediction head applied to the queries before/after each layer.

        Args:
            decoder_out (Tensor): Queries ``[B, N, C]``.
            mask_features (Tensor): ``[B, C_out, H/4, W/4]``.
            attn_mask_target_size (tuple[int, int]): Size of the memory level
                attended to by the next layer.
            cond_embeds (Tensor): ``[B, K, C]``.
            cond_mask (Tensor): ``[B, K]`` bool, True for real conditions.
            cond_type (str): One of :data:`COND_TYPES`.

        Returns:
            tuple[Tensor]: class logits ``[B, N, K]``, mask logits
            ``[B, N, H/4, W/4]`` and the next cross-attention mask
            ``[B * num_heads, N, h * w]`` (bool, True = blocked, detached).
        """
        decoder_out = self.transformer_decoder.post_norm(decoder_out)
        # [B, N, C] x [B, K, C] -> [B, N, K]
        cls_logits = torch.einsum('bnc,bkc->bnk',
                                  self.cond_mlps[cond_type](decoder_out),
                                  cond_embeds)
        cls_logits = cls_logits.masked_fill(~cond_mask[:, None, :],
                                            PADDED_COND_LOGIT)
        # [B, N, C_out] x [B, C_out, h, w] -> [B, N, h, w]
        mask_logits = torch.einsum('bnc,bchw->bnhw',
                                   self.mask_embed(decoder_out), mask_features)
        attn_mask = F.interpolate(
            mask_logits,
            attn_mask_target_size,
            mode='bilinear',
            align_corners=False)
        # [B, N, h, w] -> [B * num_heads, N, h * w]
        attn_mask = attn_mask.flatten(2).unsqueeze(1).repeat(
            (1, self.num_heads, 1, 1)).flatten(0, 1)
        attn_mask = (attn_mask.sigmoid() < 0.5).detach()
        return cls_logits, mask_logits, attn_mask

    def _check_inputs(self, feats: List[Tensor], queries: Optional[Tensor],
                      cond_embeds: Tensor, cond_mask: Tensor,
                      cond_type: str) -> None:
        """Raise ``ValueError`` on inputs :meth:`forward` cannot handle."""
        if cond_type not in COND_TYPES:
            raise ValueError(f'cond_type must be one of {COND_TYPES}, got '
                             f'{cond_type!r}.')
        if len(feats) != self.pixel_decoder.num_input_levels:
            raise ValueError(
                f'Expected {self.pixel_decoder.num_input_levels} feature '
                f'levels, got {len(feats)}.')
        batch_size = feats[0].shape[0]
        if cond_embeds.dim() != 3 or cond_embeds.shape[0] != batch_size \
                or cond_embeds.shape[2] != self.embed_dims:
            raise ValueError(
                f'cond_embeds must be [B={batch_size}, K, {self.embed_dims}]'
                f', got {list(cond_embeds.shape)}.')
        if cond_mask.dtype != torch.bool \
                or cond_mask.shape != cond_embeds.shape[:2]:
            raise ValueError(
                'cond_mask must be a bool tensor of shape '
                f'{list(cond_embeds.shape[:2])}, got {cond_mask.dtype} '
                f'{list(cond_mask.shape)}.')
        if self.decoupled:
            expected = [batch_size, self.num_queries, self.embed_dims]
            if queries is None or list(queries.shape) != expected:
                got = None if queries is None else list(queries.shape)
                raise ValueError(f'queries must have shape {expected}, got '
                                 f'{got}.')

    def forward(
        self,
        feats: List[Tensor],
        queries: Optional[Tensor],
        cond_embeds: Tensor,
        cond_mask: Tensor,
        cond_type: str,
        pixel_features: Optional[Tuple[Tensor, List[Tensor]]] = None
    ) -> Tuple[List[Tensor], List[Tensor]]:
        """Predict masks and condition logits with deep supervision.

        Args:
            feats (list[Tensor]): Backbone levels, strides 4..32, each
                ``[B, C_l, H / s_l, W / s_l]``.
            queries (Tensor, optional): Query content ``[B, N, C]`` (projected
                LMM mask-token outputs), ``N = num_queries``. Ignored (may be
                None) when ``decoupled=False``.
            cond_embeds (Tensor): Condition embeddings ``[B, K, C]``, padded
                to the largest ``K`` of the batch.
            cond_mask (Tensor): ``[B, K]`` bool, False at padded conditions.
            cond_type (str): ``'category'``, ``'sentence'`` or ``'visual'``;
                selects the classifier MLP.
            pixel_features (tuple, optional): Precomputed outputs of the
                pixel decoder for ``feats`` (``mask_features`` and the
                multi-scale memories, batch 1 or B), e.g. of one image shared
                by B prompts; the pixel decoder then does not run.

        Returns:
            tuple[list[Tensor], list[Tensor]]: ``num_layers + 1`` class logits
            ``[B, N, K]`` and mask logits ``[B, N, H/4, W/4]``, the first from
            the initial queries, the last from the final layer. ``N = K``
            when ``decoupled=False``.
        """
        self._check_inputs(feats, queries, cond_embeds, cond_mask, cond_type)
        batch_size = feats[0].shape[0]
        # mask_features: [B, C_out, H/4, W/4]; memorys: low -> high resolution
        if pixel_features is None:
            mask_features, multi_scale_memorys = self.pixel_decoder(feats)
        else:
            # shape [1 or B, C, h, w] -> [B, C, h, w] (views)
            mask_features = pixel_features[0].expand(batch_size, -1, -1, -1)
            multi_scale_memorys = [
                m.expand(batch_size, -1, -1, -1) for m in pixel_features[1]
            ]
        decoder_inputs = []
        decoder_positional_encodings = []
        for i in range(self.num_transformer_feat_level):
            decoder_input = self.decoder_input_projs[i](multi_scale_memorys[i])
            # [B, C, h, w] -> [B, h * w, C]
            decoder_input = decoder_input.flatten(2).permute(0, 2, 1)
            decoder_inputs.append(decoder_input +
                                  self.level_embed.weight[i].view(1, 1, -1))
            no_padding = decoder_input.new_zeros(
                (batch_size, ) + multi_scale_memorys[i].shape[-2:],
                dtype=torch.bool)
            # [B, C, h, w] -> [B, h * w, C]
            decoder_positional_encodings.append(
                self.decoder_positional_encoding(no_padding).flatten(
                    2).permute(0, 2, 1))

        if self.decoupled:
            query_feat = queries  # [B, N, C]
            query_pos = self.query_embed.weight.unsqueeze(0).expand(
                batch_size, -1, -1)
            self_attn_mask = None
        else:
            query_feat = cond_embeds  # [B, K, C]
            query_pos = None
            # padded conditions must not be attended to by real ones:
            # [B, K] -> [B * num_heads, K, K], True = blocked
            num_conds = cond_mask.shape[1]
            self_attn_mask = self._unblock_full_rows(
                (~cond_mask)[:, None,
                             None, :].expand(-1, self.num_heads, num_conds,
                                             -1).flatten(0, 1))

        cls_logits_list = []
        mask_logits_list = []
        cls_logits, mask_logits, attn_mask = self._forward_head(
            query_feat, mask_features, multi_scale_memorys[0].shape[-2:],
            cond_embeds, cond_mask, cond_type)
        cls_logits_list.append(cls_logits)
        mask_logits_list.append(mask_logits)
        for i, layer in enumerate(self.transformer_decoder.layers):
            level_idx = i % self.num_transformer_feat_level
            query_feat = layer(
                query=query_feat,
                key=decoder_inputs[level_idx],
                value=decoder_inputs[level_idx],
                query_pos=query_pos,
                key_pos=decoder_positional_encodings[level_idx],
                cross_attn_mask=self._unblock_full_rows(attn_mask),
                self_attn_mask=self_attn_mask,
                key_padding_mask=None)
            next_level = (i + 1) % self.num_transformer_feat_level
            cls_logits, mask_logits, attn_mask = self._forward_head(
                query_feat, mask_features,
                multi_scale_memorys[next_level].shape[-2:], cond_embeds,
                cond_mask, cond_type)
            cls_logits_list.append(cls_logits)
            mask_logits_list.append(mask_logits)
        return cls_logits_list, mask_logits_list
