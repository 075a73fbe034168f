# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""PSALMPixelDecoder: mmdet's MSDeformAttnPixelDecoder + biases + bf16 MSDA."""
import torch
from mmdet.models.layers import MSDeformAttnPixelDecoder
from mmdet.registry import MODELS
from mmengine.config import ConfigDict

from projects.psalm.models.mask_generator.deform_attn import \
    MixedPrecisionMSDeformAttn
from projects.psalm.models.mask_generator.pixel_decoder import \
    PSALMPixelDecoder

from ._configs import TINY_IN_CHANNELS, make_feats, pixel_decoder_cfg

BIAS_KEYS = {'lateral_convs.0.conv.bias', 'output_convs.0.conv.bias'}


def _build(conv_bias: bool = False) -> PSALMPixelDecoder:
    decoder = MODELS.build(
        ConfigDict(
            pixel_decoder_cfg(
                type='PSALMPixelDecoder',
                in_channels=TINY_IN_CHANNELS,
                feat_channels=32,
                out_channels=32,
                conv_bias=conv_bias)))
    decoder.init_weights()
    return decoder


def _build_mmdet() -> MSDeformAttnPixelDecoder:
    decoder = MSDeformAttnPixelDecoder(**ConfigDict(
        pixel_decoder_cfg(
            in_channels=TINY_IN_CHANNELS, feat_channels=32, out_channels=32)))
    decoder.init_weights()
    return decoder


def test_output_shapes() -> None:
    torch.manual_seed(0)
    decoder = _build(conv_bias=True)
    mask_features, memorys = decoder(make_feats(batch_size=2, size=64))
    assert mask_features.shape == (2, 32, 16, 16)  # stride 4
    # low -> high resolution: strides 32, 16, 8
    assert [tuple(m.shape) for m in memorys] == [(2, 32, 2, 2), (2, 32, 4, 4),
                                                 (2, 32, 8, 8)]


def test_encoder_attention_is_mixed_precision() -> None:
    decoder = _build()
    attns = [layer.self_attn for layer in decoder.encoder.layers]
    assert len(attns) == 2
    assert all(isinstance(a, MixedPrecisionMSDeformAttn) for a in attns)


def test_state_dict_keys_match_mmdet_and_conv_bias_adds_biases() -> None:
    mmdet_sd = _build_mmdet().state_dict()
    plain_sd = _build(conv_bias=False).state_dict()
    biased_sd = _build(conv_bias=True).state_dict()
    assert {k: v.shape for k, v in plain_sd.items()} == \
        {k: v.shape for k, v in mmdet_sd.items()}
    assert set(biased_sd) - set(plain_sd) == BIAS_KEYS
    assert set(plain_sd) <= set(biased_sd)
    for key in BIAS_KEYS:
        assert biased_sd[key].shape == (32, )
        assert (biased_sd[key] == 0).all()  # zero-initialised


def test_same_output_as_mmdet_with_shared_weights() -> None:
    torch.manual_seed(0)
    mmdet_decoder = _build_mmdet()
    feats = make_feats(batch_size=2, size=64)
    expected_mask, expected_memorys = mmdet_decoder(feats)
    for conv_bias in (False, True):
        decoder = _build(conv_bias)
        missing, unexpected = decoder.load_state_dict(
            mmdet_decoder.state_dict(), strict=False)
        assert set(missing) == (BIAS_KEYS if conv_bias else set())
        assert not unexpected
        mask_features, memorys = decoder(feats)
        torch.testing.assert_close(mask_features, expected_mask)
        for actual, expected in zip(memorys, expected_memorys):
            torch.testing.assert_close(actual, expected)
    # the extra biases do enter the computation
    with torch.no_grad():
        decoder.output_convs[0].conv.bias.fill_(1.0)
    assert not torch.allclose(decoder(feats)[0], expected_mask)


def test_bf16_autocast_runs_close_to_fp32() -> None:
    torch.manual_seed(0)
    decoder = _build(conv_bias=True)
    feats = make_feats(batch_size=1, size=64)
    expected, _ = decoder(feats)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        actual, memorys = decoder(feats)
    assert all(torch.isfinite(m).all() for m in [actual, *memorys])
    rel_err = (actual.float() - expected).norm() / expected.norm()
    assert rel_err < 5e-2
