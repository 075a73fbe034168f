# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""MaskGenerator: shapes, padding, gradients, ablation switch, sizes, keys."""
from typing import Tuple

import pytest
import torch
from mmdet.models.dense_heads import Mask2FormerHead
from mmengine.config import ConfigDict

from projects.psalm.models.mask_generator.mask_generator import (
    COND_TYPES, PADDED_COND_LOGIT, MaskGenerator)

from ._configs import (TINY_IN_CHANNELS, full_generator_cfg, generator_cfg,
                       make_feats, pixel_decoder_cfg, transformer_decoder_cfg)

# official PSALM parameter counts (reference §7, psalm_state_dict_keys.txt)
OFFICIAL_PIXEL_DECODER_PARAMS = 5_544_896
OFFICIAL_PREDICTOR_PARAMS = 14_879_232
# official predictor parameters PSALM never uses: query_feat [100, 256] and
# SEG_query_embed [101, 256]
OFFICIAL_UNUSED_PARAMS = 100 * 256 + 101 * 256


def _build(**kwargs) -> MaskGenerator:
    generator = MaskGenerator(**generator_cfg(**kwargs))
    generator.init_weights()
    return generator


def _conditions(cond_type: str,
                batch_size: int = 2) -> Tuple[torch.Tensor, torch.Tensor]:
    """Random condition embeddings [B, K, 32] and mask [B, K], the second
    sample padded (except for the single sentence condition)."""
    num_conds = {'category': 5, 'sentence': 1, 'visual': 3}[cond_type]
    cond_mask = torch.ones(batch_size, num_conds, dtype=torch.bool)
    if num_conds > 1:
        cond_mask[1, -2:] = False
    return torch.randn(batch_size, num_conds, 32), cond_mask


def _n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize('cond_type', COND_TYPES)
def test_output_shapes_and_padded_logits(cond_type: str) -> None:
    torch.manual_seed(0)
    generator = _build()
    cond_embeds, cond_mask = _conditions(cond_type)
    all_cls, all_masks = generator(
        make_feats(2, 64), torch.randn(2, 6, 32), cond_embeds, cond_mask,
        cond_type)
    num_conds = cond_mask.shape[1]
    assert len(all_cls) == len(all_masks) == 10
    for cls_logits, mask_logits in zip(all_cls, all_masks):
        assert cls_logits.shape == (2, 6, num_conds)
        assert mask_logits.shape == (2, 6, 16, 16)  # H/4 x W/4
        padded = ~cond_mask[:, None, :].expand_as(cls_logits)
        assert (cls_logits[padded] == PADDED_COND_LOGIT).all()
        assert torch.isfinite(cls_logits).all()
        assert (cls_logits[~padded].abs() < 1e3).all()


def test_logits_are_dot_products_with_the_condition_embeddings() -> None:
    torch.manual_seed(0)
    generator = _build()
    cond_embeds, cond_mask = _conditions('category')
    queries = torch.randn(2, 6, 32)
    feats = make_feats(2, 64)
    cls_logits = generator(feats, queries, cond_embeds, cond_mask,
                           'category')[0][-1]
    doubled = generator(feats, queries, 2 * cond_embeds, cond_mask,
                        'category')[0][-1]
    valid = cond_mask[:, None, :].expand_as(cls_logits)
    # linear in the condition embeddings (no bias / temperature)
    torch.testing.assert_close(doubled[valid], 2 * cls_logits[valid])


def test_gradient_reaches_queries_conditions_and_both_decoders() -> None:
    torch.manual_seed(0)
    generator = _build()
    cond_embeds, cond_mask = _conditions('visual')
    cond_embeds.requires_grad_()
    queries = torch.randn(2, 6, 32, requires_grad=True)
    all_cls, all_masks = generator(
        make_feats(2, 64), queries, cond_embeds, cond_mask, 'visual')
    valid = cond_mask[:, None, :].expand_as(all_cls[-1])
    loss = sum(c[valid].square().mean() + m.square().mean()
               for c, m in zip(all_cls, all_masks))
    loss.backward()
    pixel_decoder = generator.pixel_decoder
    deform_attn = pixel_decoder.encoder.layers[0].self_attn
    decoder_layers = generator.transformer_decoder.layers
    grads = dict(
        queries=queries.grad,
        cond_embeds=cond_embeds.grad,
        input_conv=pixel_decoder.input_convs[0].conv.weight.grad,
        deform_attn=deform_attn.value_proj.weight.grad,
        fpn_conv=pixel_decoder.output_convs[0].conv.weight.grad,
        first_cross_attn=decoder_layers[0].cross_attn.attn.in_proj_weight.grad,
        last_ffn=decoder_layers[-1].ffn.layers[1].weight.grad,
        query_embed=generator.query_embed.weight.grad,
        level_embed=generator.level_embed.weight.grad,
        visual_classifier=generator.cond_mlps['visual'][0].weight.grad)
    for name, grad in grads.items():
        assert grad is not None and grad.abs().sum() > 0, name
    # padded conditions receive no gradient; other classifiers are unused
    assert (cond_embeds.grad[1, -2:] == 0).all()
    assert generator.cond_mlps['category'][0].weight.grad is None


def test_non_decoupled_uses_conditions_as_queries() -> None:
    torch.manual_seed(0)
    generator = _build(decoupled=False)
    assert generator.num_queries == 0
    assert not hasattr(generator, 'query_embed')
    cond_embeds, cond_mask = _conditions('category')
    feats = make_feats(2, 64)
    all_cls, all_masks = generator(feats, None, cond_embeds, cond_mask,
                                   'category')
    assert len(all_cls) == 10
    assert all_cls[-1].shape == (2, 5, 5)  # N = K
    assert all_masks[-1].shape == (2, 5, 16, 16)
    # padded conditions are masked out of the self-attention: changing them
    # does not change the predictions of the real conditions
    changed = cond_embeds.clone()
    changed[~cond_mask] = 100 * torch.randn_like(changed[~cond_mask])
    all_cls2, all_masks2 = generator(feats, None, changed, cond_mask,
                                     'category')
    real = cond_mask[1]
    torch.testing.assert_close(all_masks2[-1][1, real], all_masks[-1][1, real])
    torch.testing.assert_close(all_cls2[-1][1, real][:, real],
                               all_cls[-1][1, real][:, real])


def test_decoupled_num_queries_and_input_checks() -> None:
    generator = _build()
    assert generator.num_queries == 6
    cond_embeds, cond_mask = _conditions('category')
    feats = make_feats(2, 64)
    with pytest.raises(ValueError, match='queries must have shape'):
        generator(feats, torch.randn(2, 7, 32), cond_embeds, cond_mask,
                  'category')
    with pytest.raises(ValueError, match='queries must have shape'):
        generator(feats, None, cond_embeds, cond_mask, 'category')
    with pytest.raises(ValueError, match='cond_type'):
        generator(feats, torch.randn(2, 6, 32), cond_embeds, cond_mask,
                  'region')
    with pytest.raises(ValueError, match='cond_mask'):
        generator(feats, torch.randn(2, 6, 32), cond_embeds, cond_mask.long(),
                  'category')
    with pytest.raises(ValueError, match='num_transformer_feat_level'):
        MaskGenerator(**generator_cfg(), num_transformer_feat_level=4)


def test_bf16_autocast_keeps_logits_finite() -> None:
    torch.manual_seed(0)
    generator = _build(num_layers=3)
    cond_embeds, cond_mask = _conditions('category')
    with torch.autocast('cpu', dtype=torch.bfloat16):
        all_cls, all_masks = generator(
            make_feats(2, 64), torch.randn(2, 6, 32), cond_embeds, cond_mask,
            'category')
    for cls_logits, mask_logits in zip(all_cls, all_masks):
        assert torch.isfinite(cls_logits).all()
        assert torch.isfinite(mask_logits).all()
        padded = ~cond_mask[:, None, :].expand_as(cls_logits)
        torch.testing.assert_close(
            cls_logits[padded].float(),
            torch.full((int(padded.sum()), ), PADDED_COND_LOGIT),
            rtol=1e-2,
            atol=0)


def test_full_size_parameter_counts_on_meta_device() -> None:
    with torch.device('meta'):
        generator = MaskGenerator(**full_generator_cfg())
    pixel_decoder = _n_params(generator.pixel_decoder)
    rest = _n_params(generator) - pixel_decoder
    # identical to the official pixel decoder (conv biases included)
    assert pixel_decoder == OFFICIAL_PIXEL_DECODER_PARAMS  # 5.54 M
    # transformer decoder + post_norm + query_embed + level_embed +
    # mask_embed + 3 condition MLPs = official predictor minus its unused
    # query_feat / SEG_query_embed
    assert rest == OFFICIAL_PREDICTOR_PARAMS - OFFICIAL_UNUSED_PARAMS  # 14.83M
    state_dict = generator.state_dict()
    assert sum(k.startswith('pixel_decoder.') for k in state_dict) == 119
    assert sum(not k.startswith('pixel_decoder.') for k in state_dict) == \
        186 - 2


def test_loads_mmdet_mask2former_head_weights_and_matches_its_masks() -> None:
    torch.manual_seed(0)
    head = Mask2FormerHead(
        in_channels=TINY_IN_CHANNELS,
        feat_channels=32,
        out_channels=32,
        num_things_classes=3,
        num_stuff_classes=1,
        num_queries=6,
        pixel_decoder=ConfigDict(
            pixel_decoder_cfg(type='MSDeformAttnPixelDecoder')),
        transformer_decoder=ConfigDict(transformer_decoder_cfg()),
        positional_encoding=dict(num_feats=16, normalize=True),
        loss_cls=ConfigDict(
            type='CrossEntropyLoss',
            use_sigmoid=False,
            loss_weight=2.0,
            reduction='mean',
            class_weight=[1.0] * 4 + [0.1]))
    head.init_weights()
    head.eval()
    shared = {
        k: v
        for k, v in head.state_dict().items()
        if not k.startswith(('cls_embed.', 'query_feat.'))
    }
    generator = _build(conv_bias=True)
    generator.eval()
    missing, unexpected = generator.load_state_dict(shared, strict=False)
    assert not unexpected
    assert set(missing) == {
        'pixel_decoder.lateral_convs.0.conv.bias',
        'pixel_decoder.output_convs.0.conv.bias'
    } | {k
         for k in generator.state_dict() if k.startswith('cond_mlps.')}

    # with mmdet's query_feat as the query content, the masks are mmdet's
    feats = make_feats(2, 64)
    with torch.no_grad():
        _, expected_masks = head(feats, [])
        queries = head.query_feat.weight.unsqueeze(0).repeat(2, 1, 1)
        cond_embeds, cond_mask = _conditions('category')
        _, masks = generator(feats, queries, cond_embeds, cond_mask,
                             'category')
    assert len(masks) == len(expected_masks) == 10
    for actual, expected in zip(masks, expected_masks):
        torch.testing.assert_close(actual, expected)
