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
  ``load_weights_only`` (tools/test.py's loader) reads and the model loads;
* a synthetic checkpoint with exactly the reference key names and shapes
  converts into a state dict the paper-size model loads strictly (no
  missing, no unexpected key; only the two unused tables dropped);
* the fused-QKV split, numerically: attention (and whole-stack) outputs of
  a transformers-4.36-layout Phi (fused ``query_key_value`` viewed as
  ``(heads, 3, head_dim)``, written out in the test) equal those of the
  transformers ``PhiForCausalLM`` the project runs, loaded with the split
  weights; a naive ``(3, heads, head_dim)`` split does not;
* the stage-1 projector (``mm_projector.bin`` of EnmingZhang/PSALM_stage1,
  ``model.mm_projector.*`` only) converts to ``projector.*``: full-size
  shapes, and a tiny ``.bin`` through the CLI.
"""
import math
import os.path as osp

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from psalm_testing import RealSample, load_tool

from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from projects.psalm.models.official_keys import (
    OFFICIAL_PROJECTOR_PREFIX, OFFICIAL_UNUSED_KEYS, mmpsalm_to_official,
    official_projector_to_mmpsalm, official_to_mmpsalm, split_qkv)

OFFICIAL_CONFIG = 'configs/_base_/models/psalm_official.py'
KEY_LIST = 'tests/data/official_keys/psalm_state_dict_keys.txt'
TINY_HEADS = 4
CONVERTER = 'tools/model_converters/psalm_official_to_mmpsalm.py'


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
    cli = load_tool(CONVERTER)
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


@pytest.fixture(scope='module')
def official_meta(repo_root):
    """The paper-size official-architecture model on the meta device."""
    import projects.psalm  # noqa: F401
    register_all_modules()
    cfg = Config.fromfile(osp.join(repo_root, OFFICIAL_CONFIG))
    cfg.model.language_model.tokenizer = osp.join(
        repo_root, cfg.model.language_model.tokenizer)
    return build_meta(cfg)


# ----------------------------------------------------------------------
# (f) a synthetic checkpoint with exactly the reference keys and shapes
# ----------------------------------------------------------------------
def test_reference_key_list_converts_and_loads_strictly(
        repo_root, official_meta):
    reference = read_key_list(osp.join(repo_root, KEY_LIST))
    official = {k: torch.empty(shape, device='meta')
                for k, shape in reference.items()}
    state, report = official_to_mmpsalm(official, return_report=True)
    # every reference key is converted, but the two unused tables
    assert report == dict(dropped=list(OFFICIAL_UNUSED_KEYS), unexpected=[],
                          missing=[])
    # 935 - 2 unused; the 24 fused QKV (weight + bias) become 3 tensors each
    assert len(state) == 935 - 2 + 24 * 2 * 2
    incompatible = official_meta.load_state_dict(state, strict=True)
    assert not incompatible.missing_keys
    assert not incompatible.unexpected_keys
    # and the CLI's key-by-key, shape-by-shape check passes
    load_tool(CONVERTER).check_against_model(state, official_meta, True)


# ----------------------------------------------------------------------
# (g) fused QKV vs the transformers-4.36 Phi layout, numerically
# ----------------------------------------------------------------------
PHI = dict(vocab_size=97, hidden_size=64, intermediate_size=128,
           num_hidden_layers=2, num_attention_heads=4,
           partial_rotary_factor=0.5, rope_theta=10000.0,
           layer_norm_eps=1e-5, hidden_act='gelu_new',
           max_position_embeddings=64, resid_pdrop=0.0, embd_pdrop=0.0,
           attention_dropout=0.0, qk_layernorm=False,
           tie_word_embeddings=False)


def official_phi_weights(seed):
    """Random weights under the transformers-4.36 (released) Phi names."""
    gen = torch.Generator().manual_seed(seed)
    c, f = PHI['hidden_size'], PHI['intermediate_size']

    def rand(*shape, scale=0.2):
        return torch.randn(*shape, generator=gen) * scale

    weights = {'model.embed_tokens.weight': rand(PHI['vocab_size'], c),
               'model.final_layernorm.weight': 1 + rand(c),
               'model.final_layernorm.bias': rand(c),
               'lm_head.weight': rand(PHI['vocab_size'], c)}
    for layer in range(PHI['num_hidden_layers']):
        p = f'model.layers.{layer}.'
        weights.update({
            p + 'self_attn.query_key_value.weight': rand(3 * c, c),
            p + 'self_attn.query_key_value.bias': rand(3 * c),
            p + 'self_attn.dense.weight': rand(c, c),
            p + 'self_attn.dense.bias': rand(c),
            p + 'mlp.fc1.weight': rand(f, c),
            p + 'mlp.fc1.bias': rand(f),
            p + 'mlp.fc2.weight': rand(c, f),
            p + 'mlp.fc2.bias': rand(c),
            p + 'input_layernorm.weight': 1 + rand(c),
            p + 'input_layernorm.bias': rand(c)
        })
    return weights


def attention_4_36(x, weights, prefix):
    """PhiAttention of transformers 4.36: one fused projection whose output
    is viewed as ``[B, L, heads, 3, head_dim]`` (q, k, v = index 0, 1, 2),
    RoPE (rotate-half) on the first ``partial_rotary_factor`` of each head,
    causal softmax attention in fp32, then ``dense``."""
    b, n, c = x.shape
    heads = PHI['num_attention_heads']
    d = c // heads
    rot = int(PHI['partial_rotary_factor'] * d)
    fused = F.linear(x, weights[prefix + 'query_key_value.weight'],
                     weights[prefix + 'query_key_value.bias'])
    fused = fused.view(b, n, heads, 3, d)
    q, k, v = (fused[..., j, :].transpose(1, 2) for j in range(3))
    inv_freq = 1.0 / PHI['rope_theta']**(
        torch.arange(0, rot, 2, dtype=torch.float32) / rot)
    angles = torch.outer(torch.arange(n, dtype=torch.float32), inv_freq)
    cos = torch.cat([angles, angles], -1).cos()
    sin = torch.cat([angles, angles], -1).sin()

    def rope(t):
        t_rot, t_pass = t[..., :rot], t[..., rot:]
        half = torch.cat([-t_rot[..., rot // 2:], t_rot[..., :rot // 2]], -1)
        return torch.cat([t_rot * cos + half * sin, t_pass], -1)

    q, k = rope(q), rope(k)
    scores = q @ k.transpose(-1, -2) / math.sqrt(d)
    scores = scores.masked_fill(
        torch.ones(n, n, dtype=torch.bool).triu(1), float('-inf'))
    out = scores.softmax(-1, dtype=torch.float32) @ v
    out = out.transpose(1, 2).reshape(b, n, c)
    return F.linear(out, weights[prefix + 'dense.weight'],
                    weights[prefix + 'dense.bias'])


def phi_4_36(ids, weights):
    """The 4.36 Phi stack: parallel attention + MLP on one LayerNorm."""
    c = PHI['hidden_size']
    x = F.embedding(ids, weights['model.embed_tokens.weight'])
    attn_outs = []
    for layer in range(PHI['num_hidden_layers']):
        p = f'model.layers.{layer}.'
        h = F.layer_norm(x, (c, ), weights[p + 'input_layernorm.weight'],
                         weights[p + 'input_layernorm.bias'],
                         PHI['layer_norm_eps'])
        attn = attention_4_36(h, weights, p + 'self_attn.')
        mlp = F.linear(
            F.gelu(F.linear(h, weights[p + 'mlp.fc1.weight'],
                            weights[p + 'mlp.fc1.bias']),
                   approximate='tanh'), weights[p + 'mlp.fc2.weight'],
            weights[p + 'mlp.fc2.bias'])
        attn_outs.append((h, attn))
        x = attn + mlp + x
    x = F.layer_norm(x, (c, ), weights['model.final_layernorm.weight'],
                     weights['model.final_layernorm.bias'],
                     PHI['layer_norm_eps'])
    return x, attn_outs


def project_phi(converted, attn_implementation):
    """transformers' PhiForCausalLM as the project builds it (bias-free
    lm_head), loaded strictly with the converted weights."""
    from transformers import PhiConfig, PhiForCausalLM
    llm = PhiForCausalLM(
        PhiConfig(**PHI, attn_implementation=attn_implementation)).float()
    llm.lm_head.register_parameter('bias', None)
    prefix = 'language_model.llm.'
    llm.load_state_dict({k[len(prefix):]: v for k, v in converted.items()},
                        strict=True)
    return llm.eval()


@pytest.mark.parametrize('attn_implementation', ['eager', 'sdpa'])
def test_fused_qkv_split_matches_transformers_4_36_attention(
        attn_implementation):
    weights = official_phi_weights(0)
    converted = official_to_mmpsalm(
        weights, num_heads=PHI['num_attention_heads'], strict=False)
    assert {k for k in converted if 'self_attn.' in k and '_proj' in k} == {
        f'language_model.llm.model.layers.{i}.self_attn.{x}_proj.{p}'
        for i in range(2) for x in 'qkv' for p in ('weight', 'bias')}
    llm = project_phi(converted, attn_implementation)
    torch.manual_seed(0)
    ids = torch.randint(0, PHI['vocab_size'], (2, 11))
    captured = []

    def hook(module, args, kwargs, output):
        captured.append((kwargs['hidden_states'], output[0]))

    handles = [layer.self_attn.register_forward_hook(hook, with_kwargs=True)
               for layer in llm.model.layers]
    with torch.no_grad():
        hidden = llm.model(input_ids=ids,
                           attention_mask=torch.ones_like(ids)
                           ).last_hidden_state
        expected_hidden, expected_attn = phi_4_36(ids, weights)
        assert len(captured) == len(expected_attn) == 2
        # layer by layer on the same input: the attention outputs agree
        for layer, ((h, out), (h_ref, _)) in enumerate(
                zip(captured, expected_attn)):
            torch.testing.assert_close(h, h_ref)
            torch.testing.assert_close(
                out,
                attention_4_36(h, weights, f'model.layers.{layer}.self_attn.'))
    for handle in handles:
        handle.remove()
    torch.testing.assert_close(hidden, expected_hidden)

    # the test is sensitive to the row order: a (3, heads, head_dim) split
    # (plain chunk into q, k, v) changes the outputs
    naive = dict(converted)
    for layer in range(PHI['num_hidden_layers']):
        for p in ('weight', 'bias'):
            fused = weights[
                f'model.layers.{layer}.self_attn.query_key_value.{p}']
            for x, part in zip('qkv', fused.chunk(3)):
                naive[f'language_model.llm.model.layers.{layer}.self_attn.'
                      f'{x}_proj.{p}'] = part
    with torch.no_grad():
        wrong = project_phi(naive, attn_implementation).model(
            input_ids=ids).last_hidden_state
    assert not torch.allclose(wrong, expected_hidden, atol=1e-3)


# ----------------------------------------------------------------------
# (h) the stage-1 projector (EnmingZhang/PSALM_stage1 mm_projector.bin)
# ----------------------------------------------------------------------
def test_stage1_projector_full_size_shapes(repo_root, official_meta):
    reference = read_key_list(osp.join(repo_root, KEY_LIST))
    projector = {k: torch.empty(s, device='meta')
                 for k, s in reference.items()
                 if k.startswith(OFFICIAL_PROJECTOR_PREFIX)}
    assert len(projector) == 20
    state = official_projector_to_mmpsalm(projector)
    ours = {k: tuple(v.shape) for k, v in official_meta.state_dict().items()
            if k.startswith('projector.')}
    assert {k: tuple(v.shape) for k, v in state.items()} == ours
    # other modules' keys or a missing projector key are named
    gone = OFFICIAL_PROJECTOR_PREFIX + 'layer1.0.bn2.running_var'
    broken = {k: v for k, v in projector.items() if k != gone}
    broken['seg_query'] = torch.empty(100, 2048, device='meta')
    with pytest.raises(KeyError, match=r'bn2\.running_var.*seg_query'):
        official_projector_to_mmpsalm(broken)
    out, report = official_projector_to_mmpsalm(broken, strict=False,
                                                return_report=True)
    assert report == dict(unexpected=['seg_query'], missing=[gone])
    assert len(out) == 19


def test_stage1_projector_bin_through_cli(tiny_pair, repo_root, tmp_path,
                                          capsys):
    cfg, source, target = tiny_pair
    projector = {OFFICIAL_PROJECTOR_PREFIX + k: v.clone()
                 for k, v in source.projector.state_dict().items()}
    src = str(tmp_path / 'mm_projector.bin')
    torch.save(projector, src)  # what the LLaVA stage-1 trainer writes
    config = str(tmp_path / 'tiny_official.py')
    cfg.dump(config)
    dst = str(tmp_path / 'stage1_projector.pth')
    load_tool(CONVERTER).main([src, dst, '--config', config])
    assert 'stage-1 projector' in capsys.readouterr().out
    from projects.psalm.engine import load_weights_only
    state = load_weights_only(dst, map_location='cpu')['state_dict']
    assert set(state) == {f'projector.{k}'
                          for k in source.projector.state_dict()}
    target.projector.load_state_dict(
        {k[len('projector.'):]: v for k, v in state.items()}, strict=True)
    for key, value in source.projector.state_dict().items():
        assert torch.equal(target.projector.state_dict()[key], value), key
