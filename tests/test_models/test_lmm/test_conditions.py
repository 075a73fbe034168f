# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Condition embeddings are pooled from exactly their own spans."""
import pytest
import torch

from projects.psalm.models.lmm.conditions import (ConditionEncoder,
                                                  pool_visual_prompts,
                                                  span_pooling_weights)


def make_encoder(**kwargs):
    torch.manual_seed(0)
    return ConditionEncoder(llm_dims=8, embed_dims=4, **kwargs)


@pytest.mark.parametrize('cond_type,pooling', [('category', 'ref_token'),
                                               ('sentence', 'ref_token'),
                                               ('sentence', 'mean'),
                                               ('visual', 'ref_token')])
def test_each_condition_sees_only_its_span(cond_type, pooling):
    encoder = make_encoder(sentence_pooling=pooling)
    spans = [torch.tensor([[2, 5], [6, 7], [9, 12]]), torch.tensor([[1, 3]])]
    hidden = torch.randn(2, 14, 8)
    embeds, valid = encoder(hidden, spans, cond_type)
    assert embeds.shape == (2, 3, 4)
    assert valid.tolist() == [[True, True, True], [True, False, False]]
    assert torch.equal(embeds[1, 1:], torch.zeros(2, 4))  # padding
    for b, sample_spans in enumerate(spans):
        for k, (start, end) in enumerate(sample_spans.tolist()):
            # changing every position outside span k leaves condition k alone
            perturbed = hidden.clone()
            outside = torch.ones(14, dtype=torch.bool)
            outside[start:end] = False
            perturbed[b, outside] += 100.0
            again, _ = encoder(perturbed, spans, cond_type)
            assert torch.allclose(again[b, k], embeds[b, k], atol=1e-5)
            # and changing a position inside it changes it (for ref_token of
            # a sentence only the last position counts)
            inside = end - 1
            perturbed = hidden.clone()
            perturbed[b, inside] += 1.0
            again, _ = encoder(perturbed, spans, cond_type)
            assert not torch.allclose(again[b, k], embeds[b, k])


def test_mean_versus_ref_token_values():
    hidden = torch.arange(2 * 6 * 8, dtype=torch.float).view(2, 6, 8)
    spans = [torch.tensor([[1, 4]]), torch.tensor([[0, 2]])]
    weights, _ = span_pooling_weights(spans, 6, 'mean', hidden.device)
    assert torch.allclose(weights @ hidden,
                          torch.stack([hidden[0, 1:4].mean(0, keepdim=True),
                                       hidden[1, 0:2].mean(0, keepdim=True)]))
    weights, _ = span_pooling_weights(spans, 6, 'last', hidden.device)
    assert torch.equal(weights @ hidden,
                       torch.stack([hidden[0, 3:4], hidden[1, 1:2]]))
    with pytest.raises(ValueError, match='invalid condition spans'):
        span_pooling_weights([torch.tensor([[3, 3]])], 6, 'mean', 'cpu')


def test_mask_average_pooling_is_exact():
    # a 4x4 feature map, prompts at 16x16 input resolution
    fmap = torch.randn(8, 4, 4)
    masks = torch.zeros(2, 16, 16, dtype=torch.bool)
    masks[0, :4, :4] = True  # exactly cell (0, 0)
    masks[1, 0:4, 0:8] = True  # cells (0, 0) and (0, 1), equal area
    masks[1, 4:6, 0:4] = True  # half of... a quarter of cell (1, 0)
    pooled = pool_visual_prompts(fmap, masks, 'mask_avg')
    assert torch.allclose(pooled[0], fmap[:, 0, 0])
    # areas 16, 16 and 8 pixels
    expected = (16 * fmap[:, 0, 0] + 16 * fmap[:, 0, 1] +
                8 * fmap[:, 1, 0]) / 40
    assert torch.allclose(pooled[1], expected, atol=1e-6)


def test_sampled_points_pooling_official():
    fmap = torch.randn(8, 4, 4)
    constant = torch.ones(8, 4, 4) * 3.0
    mask = torch.zeros(1, 16, 16, dtype=torch.bool)
    mask[0, 5:11, 2:13] = True
    gen = torch.Generator().manual_seed(0)
    # bilinear samples of a constant map average to the constant
    assert torch.allclose(
        pool_visual_prompts(constant, mask, 'sampled_points', 256, gen),
        torch.full((1, 8), 3.0))
    # a single-pixel prompt samples that pixel 256 times (align_corners):
    point = torch.zeros(1, 16, 16, dtype=torch.bool)
    point[0, 0, 0] = True
    assert torch.allclose(
        pool_visual_prompts(fmap, point, 'sampled_points', 256, gen)[0],
        fmap[:, 0, 0])


def test_empty_prompt_raises():
    with pytest.raises(ValueError, match='empty'):
        pool_visual_prompts(torch.randn(8, 4, 4),
                            torch.zeros(1, 16, 16, dtype=torch.bool),
                            'mask_avg')


def test_visual_prompts_from_image_tokens():
    encoder = make_encoder().eval()
    tokens = torch.randn(2, 16, 8)  # a 4x4 grid
    masks = [torch.zeros(3, 16, 16, dtype=torch.bool),
             torch.zeros(1, 16, 16, dtype=torch.bool)]
    masks[0][:, :4, :4] = True
    masks[1][0, 12:, 12:] = True
    pooled = encoder.encode_visual_prompts(tokens, (4, 4), masks)
    assert [p.shape for p in pooled] == [(3, 8), (1, 8)]
    assert torch.allclose(pooled[0][0], tokens[0, 0])
    assert torch.allclose(pooled[1][0], tokens[1, 15])
