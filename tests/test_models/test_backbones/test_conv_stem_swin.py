# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""ConvStemSwinTransformer: mmdet's Swin stages behind a conv stem (same
outputs), its argument checks, freezing and strict pretrained loading."""
import pytest
import torch

from mmdet.registry import MODELS
import projects.psalm  # noqa: F401

TINY = dict(
    embed_dims=16,
    depths=[1, 1, 1, 1],
    num_heads=[1, 2, 4, 8],
    window_size=4,
    mlp_ratio=2,
    drop_path_rate=0.0)


def _build(**kwargs):
    cfg = dict(type='ConvStemSwinTransformer', **TINY)
    cfg.update(kwargs)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def test_outputs_match_the_swin_levels():
    torch.manual_seed(0)
    stem_swin = _build()
    swin = MODELS.build(dict(type='SwinTransformer', **TINY))
    image = torch.randn(2, 3, 96, 128)
    got = stem_swin(image)
    want = swin(image)
    assert [g.shape for g in got] == [w.shape for w in want] == [
        (2, 16, 24, 32), (2, 32, 12, 16), (2, 64, 6, 8), (2, 128, 3, 4)
    ]
    # the stages are mmdet's: same parameter names after the stem
    stage_keys = {k for k in swin.state_dict() if not k.startswith('patch')}
    assert stage_keys <= set(stem_swin.state_dict())
    tokens, hw = stem_swin.patch_embed(image)
    assert tokens.shape == (2, 24 * 32, 16) and hw == (24, 32)


def test_gradients_reach_the_stem():
    model = _build()
    sum(f.sum() for f in model(torch.randn(1, 3, 64, 64))).backward()
    assert model.patch_embed.convs[0].conv.weight.grad.abs().sum() > 0


@pytest.mark.parametrize('kwargs, match', [
    (dict(stem_strides=(2, 2, 2, 1)), 'give stride 8, but patch_size is 4'),
    (dict(stem_channels=(16, 32), stem_strides=(4, )), 'one stride per'),
    (dict(use_abs_pos_embed=True), 'use_abs_pos_embed'),
])
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MODELS.build(dict(type='ConvStemSwinTransformer', **TINY, **kwargs))


def test_frozen_stages_freeze_the_stem():
    model = _build(frozen_stages=1)
    assert not any(p.requires_grad for p in model.patch_embed.parameters())
    assert not any(p.requires_grad for p in model.stages[0].parameters())
    assert all(p.requires_grad for p in model.stages[1].parameters())


def test_pretrained_loads_every_weight_or_refuses(tmp_path):
    source = _build()
    state = {'backbone.' + k: v for k, v in source.state_dict().items()}
    state['classifier.weight'] = torch.zeros(6, 32)  # other modules: ignored
    good = tmp_path / 'good.pth'
    torch.save(dict(state_dict=state), good)
    loaded = _build(init_cfg=dict(type='Pretrained', checkpoint=str(good)))
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key

    partial = tmp_path / 'partial.pth'
    torch.save(dict(state_dict={k: v for k, v in state.items()
                                if 'stages.3' not in k}), partial)
    with pytest.raises(ValueError, match=r'partial\.pth does not fit.*'
                       r'missing'):
        _build(init_cfg=dict(type='Pretrained', checkpoint=str(partial)))

    wider = tmp_path / 'wider.pth'
    other = MODELS.build(dict(type='ConvStemSwinTransformer',
                              **dict(TINY, embed_dims=32)))
    torch.save(dict(state_dict={'backbone.' + k: v
                                for k, v in other.state_dict().items()}),
               wider)
    with pytest.raises(ValueError, match=r'wider\.pth does not fit'):
        _build(init_cfg=dict(type='Pretrained', checkpoint=str(wider)))

    nothing = tmp_path / 'nothing.pth'
    torch.save(dict(state_dict={'head.weight': torch.zeros(1)}), nothing)
    with pytest.raises(ValueError, match="holds no 'backbone.' weights"):
        _build(init_cfg=dict(type='Pretrained', checkpoint=str(nothing)))
