# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""The released-weights converter (projects/psalm/models/official_keys.py and
tools/model_converters/psalm_official_to_mmpsalm.py).

* the paper-size official-architecture model (meta device) exports exactly
  the official key list with its shapes (tests/data/official_keys), but the
  two unused tables, and converting back restores its keys and shapes;
* a tiny official-architecture model survives export -> convert -> load
  into a fresh model bit-exactly (segmentation outputs and LLM states);
* the fused Phi QKV split equals a hand computation; Swin's PatchMerging
  re-ordering makes mmcv's PatchMerging equal the official one;
* missing / unexpected keys raise errors naming them;
* the CLI converts a safetensors file into a weights-only .pth that
  ``load_weights_only`` (tools/test.py's loader) reads and the model loads.
"""
import importlib.util
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from psalm_testing import RealSample

from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from projects.psalm.models.official_keys import (OFFICIAL_UNUSED_KEYS,
                                                 mmpsalm_to_official,
                                                 official_to_mmpsalm,
                                                 split_qkv)

OFFICIAL_CONFIG = 'configs/_base_/models/psalm_official.py'
KEY_LIST = 'tests/data/official_keys/psalm_state_dict_keys.txt'
TINY_HEADS = 4


def read_key_list(path):
    keys = {}
    for line in open(path):
        if line.startswith('#') or not line.strip():
            continue
        key, shape = line.split(' ', 1)
        keys[key] = tuple(int(s) for s in shape.strip('()\n ').split(',')
                          if s.strip())
    return keys


def build_meta(cfg):
    linspace = torch.linspace
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch, 'linspace',
                   lambda *a, **k: linspace(*a, **{'device': 'cpu', **k}))
        with torch.device('meta'):
            return MODELS.build(cfg.model)


def tiny_official_cfg(repo_root):
    """psalm_tiny.py with the official switches of psalm_official.py."""
    import projects.psalm  # noqa: F401
    register_all_modules()
    cfg = Config.fromfile(
        osp.join(repo_root, 'configs/_base_/models/psalm_tiny.py'))
    official = Config.fromfile(osp.join(repo_root, OFFICIAL_CONFIG)).model
    lm = cfg.model.language_model
    lm.tokenizer = osp.join(repo_root, lm.tokenizer)
    lm.added_tokens = official.language_model.added_tokens
    cfg.model.projector = dict(type='ResNetSwinProjector', in_channels=128,
                               hidden_channels=64, out_channels=64, stride=2)
    cfg.model.input_schema.update(
        {k: official.input_schema[k] for k in
         ('prompt_style', 'category_terminator', 'sentence_terminator')})
    cfg.model.condition_encoder.update(
        {k: official.condition_encoder[k] for k in
         ('sentence_pooling', 'visual_pooling')})
    cfg.model.mask_generator.pixel_decoder.conv_bias = True
    return cfg


def build_tiny(cfg, seed):
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    model.init_weights()
    # non-trivial BN statistics (the projector runs in eval mode)
    for name, buf in model.named_buffers():
        if name.endswith(('running_mean', 'running_var')):
            buf.copy_(torch.rand_like(buf) + 0.5)
    return model.eval()


# ----------------------------------------------------------------------
# (a) the full official key list
# ----------------------------------------------------------------------
def test_full_key_round_trip(repo_root):
    import projects.psalm  # noqa: F401
    register_all_modules()
    cfg = Config.fromfile(osp.join(repo_root, OFFICIAL_CONFIG))
    assert cfg.model.projector.type == 'ResNetSwinProjector'
    assert cfg.model.language_model.added_tokens == ('[PAD]', '[SEG]')
    cfg.model.language_model.tokenizer = osp.join(
        repo_root, cfg.model.language_model.tokenizer)
    model = build_meta(cfg)
    ours = model.state_dict()
    reference = read_key_list(osp.join(repo_root, KEY_LIST))
    assert len(reference) == 935
    exported = mmpsalm_to_official(ours)
    # the project holds every official buffer (BN statistics, Swin
    # relative_position_index); only the two unused tables are absent
    assert set(reference) - set(exported) == set(OFFICIAL_UNUSED_KEYS)
    assert set(exported) <= set(reference)
    assert {k: tuple(v.shape) for k, v in exported.items()} == {
        k: s for k, s in reference.items() if k not in OFFICIAL_UNUSED_KEYS}
    # fill_unused writes the two tables with their official shapes
    filled = mmpsalm_to_official(ours, fill_unused=True)
    assert {k: tuple(v.shape) for k, v in filled.items()} == reference
    # and back: same keys and shapes; the unused tables are reported
    back, report = official_to_mmpsalm(filled, return_report=True)
    assert report['dropped'] == list(OFFICIAL_UNUSED_KEYS)
    assert {k: v.shape for k, v in back.items()} == {
        k: v.shape for k, v in ours.items()}


# ----------------------------------------------------------------------
# (b) numeric round trip on a tiny official-architecture model
# ----------------------------------------------------------------------
@pytest.fixture(scope='module')
def tiny_pair(repo_root):
    cfg = tiny_official_cfg(repo_root)
    return cfg, build_tiny(cfg, 0), build_tiny(cfg, 1)


def test_tiny_numeric_round_trip(tiny_pair, data_root):
    cfg, source, target = tiny_pair
    official = mmpsalm_to_official(source.state_dict(), num_heads=TINY_HEADS)
    assert any('query_key_value' in k for k in official)
    converted = official_to_mmpsalm(official, num_heads=TINY_HEADS)
    target.load_state_dict(converted, strict=True)
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key
    sample = RealSample(data_root)
    with torch.no_grad():
        for task in ('referring', 'panoptic'):
            data = source.data_preprocessor(sample.batch(task), False)
            cls_a, masks_a = source(**data, mode='tensor')
            cls_b, masks_b = target(**data, mode='tensor')
            for a, b in zip(list(cls_a) + list(masks_a),
                            list(cls_b) + list(masks_b)):
                assert torch.equal(a, b), task
        data = source.data_preprocessor(sample.batch('vqa'), False)
        hidden_a = source(**data, mode='tensor')
        hidden_b = target(**data, mode='tensor')
    assert hidden_a.ndim == 3 and torch.equal(hidden_a, hidden_b)


# ----------------------------------------------------------------------
# (c) tensor transforms against hand computations
# ----------------------------------------------------------------------
def test_fused_qkv_split_by_hand():
    heads, head_dim, width = 3, 64, 5
    fused = torch.randn(3 * heads * head_dim, width)
    bias = torch.randn(3 * heads * head_dim)
    q, k, v = split_qkv(fused, heads)
    qb, kb, vb = split_qkv(bias, heads)
    step = 3 * head_dim  # 192 rows per head: [q | k | v]
    for h in range(heads):
        rows = slice(h * head_dim, (h + 1) * head_dim)
        base = h * step
        assert torch.equal(q[rows], fused[base:base + head_dim])
        assert torch.equal(k[rows], fused[base + 64:base + 128])
        assert torch.equal(v[rows], fused[base + 128:base + 192])
        assert torch.equal(qb[rows], bias[base:base + 64])
        assert torch.equal(vb[rows], bias[base + 128:base + 192])
    # through the key converter, with the exact inverse
    key = 'model.layers.0.self_attn.query_key_value.weight'
    out = official_to_mmpsalm({key: fused}, num_heads=heads, strict=False)
    prefix = 'language_model.llm.model.layers.0.self_attn.'
    assert torch.equal(out[prefix + 'k_proj.weight'], k)
    assert torch.equal(
        mmpsalm_to_official(out, num_heads=heads, strict=False)[key], fused)


def test_patch_merging_reorder_matches_official_merging():
    """Official merging: cat(x[0::2,0::2], x[1::2,0::2], x[0::2,1::2],
    x[1::2,1::2]) -> LayerNorm(4C) -> Linear(4C, 2C); mmcv: nn.Unfold."""
    from mmcv.cnn.bricks.transformer import PatchMerging
    torch.manual_seed(0)
    c, h, w = 8, 4, 6
    x = torch.randn(2, h * w, c)
    norm = torch.nn.LayerNorm(4 * c)
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    reduction = torch.nn.Linear(4 * c, 2 * c, bias=False)
    grid = x.view(2, h, w, c)
    cat = torch.cat([grid[:, 0::2, 0::2], grid[:, 1::2, 0::2],
                     grid[:, 0::2, 1::2], grid[:, 1::2, 1::2]], -1)
    expected = reduction(norm(cat.view(2, -1, 4 * c)))
    official = {
        'model.vision_tower.layers.0.downsample.reduction.weight':
        reduction.weight.detach(),
        'model.vision_tower.layers.0.downsample.norm.weight':
        norm.weight.detach(),
        'model.vision_tower.layers.0.downsample.norm.bias': norm.bias.detach()
    }
    ours = official_to_mmpsalm(official, strict=False)
    merging = PatchMerging(c, 2 * c)
    merging.load_state_dict({k.split('downsample.')[1]: v
                             for k, v in ours.items()})
    out, _ = merging(x, (h, w))
    torch.testing.assert_close(out, expected)
    assert all(torch.equal(mmpsalm_to_official(ours, strict=False)[k], v)
               for k, v in official.items())


# ----------------------------------------------------------------------
# (d) errors
# ----------------------------------------------------------------------
def test_missing_and_unexpected_keys_are_named(tiny_pair):
    _, source, _ = tiny_pair
    official = mmpsalm_to_official(source.state_dict(), num_heads=TINY_HEADS)
    gone = 'predictor.transformer_ffn_layers.1.linear2.bias'
    broken = {k: v for k, v in official.items() if k != gone}
    broken['model.vision_tower.extra.weight'] = torch.zeros(1)
    with pytest.raises(KeyError) as err:
        official_to_mmpsalm(broken, num_heads=TINY_HEADS)
    assert gone in str(err.value)
    assert 'model.vision_tower.extra.weight' in str(err.value)
    # a whole missing layer is a gap
    no_layer = {k: v for k, v in official.items()
                if not k.startswith('model.layers.0.')}
    with pytest.raises(KeyError, match='phi_layer index'):
        official_to_mmpsalm(no_layer, num_heads=TINY_HEADS)
    # not strict: the known keys are converted, the rest reported
    out, report = official_to_mmpsalm(broken, num_heads=TINY_HEADS,
                                      strict=False, return_report=True)
    assert report['unexpected'] == ['model.vision_tower.extra.weight']
    assert gone in report['missing']
    assert len(out) == len(source.state_dict()) - 1
    # the inverse direction names keys too
    ours = dict(source.state_dict())
    ours.pop('mask_tokens')
    ours['foo.bar'] = torch.zeros(1)
    with pytest.raises(KeyError, match=r"mask_tokens.*foo\.bar"):
        mmpsalm_to_official(ours, num_heads=TINY_HEADS)


# ----------------------------------------------------------------------
# (e) the command line tool
# ----------------------------------------------------------------------
def test_cli_converts_safetensors(tiny_pair, repo_root, tmp_path, capsys):
    from safetensors.torch import save_file

    from projects.psalm.engine import load_weights_only
    cfg, source, target = tiny_pair
    official = mmpsalm_to_official(source.state_dict(), num_heads=TINY_HEADS,
                                   fill_unused=True)
    src = str(tmp_path / 'psalm_tiny_official.safetensors')
    save_file({k: v.clone().contiguous() for k, v in official.items()}, src)
    config = str(tmp_path / 'tiny_official.py')
    cfg.dump(config)
    spec = importlib.util.spec_from_file_location(
        'psalm_official_to_mmpsalm',
        osp.join(repo_root,
                 'tools/model_converters/psalm_official_to_mmpsalm.py'))
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    dst = str(tmp_path / 'converted.pth')
    cli.main([src, dst, '--config', config])
    printed = capsys.readouterr().out
    assert f'converted {len(source.state_dict())} keys' in printed
    assert 'dropped 2 unused' in printed
    ckpt = load_weights_only(dst, map_location='cpu')
    assert set(ckpt) == {'state_dict', 'meta'}
    target.load_state_dict(ckpt['state_dict'], strict=True)
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key
    # a shape mismatch names the key
    official['predictor.query_embed.weight'] = torch.zeros(3, 32)
    save_file({k: v.clone().contiguous() for k, v in official.items()}, src)
    with pytest.raises(ValueError, match='mask_generator.query_embed.weight'):
        cli.main([src, str(tmp_path / 'bad.pth'), '--config', config])
