# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""The Mask2Former -> PSALM initialisation converter
(tools/model_converters/mask2former_to_psalm.py).

* full size, shapes only (meta device): mmdet's Swin-B Mask2Former
  COCO-panoptic model (built from mmdet's own config) and a detectron2
  ``model_final_54b88a.pkl`` key set (derived from the official PSALM key
  list, whose Swin / pixel-decoder / predictor names are detectron2's)
  convert to exactly the keys and shapes of this project's Swin-B and mask
  generator, but the PSALM-only ones (condition MLPs, FPN conv biases);
  the classifier, the query features and the loss buffer are dropped;
* tiny, numerically: an mmdet Mask2Former (Swin + head) converted through
  the CLI loads into the project's modules and gives mmdet's masks; a
  detectron2 pickle (numpy arrays) converted through the CLI puts every
  tensor where it belongs (spot checks on Swin qkv, deformable attention,
  decoder attention, FPN convs, query truncation) and its PatchMerging
  equals detectron2's Swin merging;
* the restricted unpickler refuses non-numpy globals without running them.
"""
import os
import os.path as osp
import pickle

import numpy as np
import pytest
import torch
from mmengine.config import Config, ConfigDict
from psalm_testing import load_tool

import mmdet
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from projects.psalm.models.official_keys import mmpsalm_to_official

CONVERTER = 'tools/model_converters/mask2former_to_psalm.py'
PAPER = 'configs/_base_/models/psalm_swin-b_phi-1.5.py'
OFFICIAL = 'configs/_base_/models/psalm_official.py'
TINY = 'configs/_base_/models/psalm_tiny.py'
KEY_LIST = 'tests/data/official_keys/psalm_state_dict_keys.txt'
MMDET_SWIN_B = ('.mim/configs/mask2former/mask2former_swin-b-p4-w12-384-'
                'in21k_8xb2-lsj-50e_coco-panoptic.py')
COND_MLPS = {
    f'mask_generator.cond_mlps.{t}.{i}.{p}'
    for t in ('category', 'sentence', 'visual') for i in (0, 2)
    for p in ('weight', 'bias')
}
FPN_BIASES = {
    'mask_generator.pixel_decoder.lateral_convs.0.conv.bias',
    'mask_generator.pixel_decoder.output_convs.0.conv.bias'
}


@pytest.fixture(scope='module')
def cli(repo_root):
    import projects.psalm  # noqa: F401
    register_all_modules()
    return load_tool(CONVERTER)


def build_on_meta(cfg):
    linspace = torch.linspace
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch, 'linspace',
                   lambda *a, **k: linspace(*a, **{'device': 'cpu', **k}))
        with torch.device('meta'):
            return MODELS.build(cfg)


def shapes(state):
    return {k: tuple(v.shape) for k, v in state.items()}


def read_key_list(path):
    keys = {}
    for line in open(path):
        if line.startswith('#') or not line.strip():
            continue
        key, shape = line.split(' ', 1)
        keys[key] = tuple(int(s) for s in shape.strip('()\n ').split(',')
                          if s.strip())
    return keys


# ----------------------------------------------------------------------
# the detectron2 layout, written out from Mask2Former's modules:
# Swin = the official vision tower; the pixel decoder's FPN convs are
# detectron2 Conv2d (bias-free, ``norm`` attribute); the predictor has
# ``class_embed`` and ``query_feat`` but none of PSALM's extra tables;
# SetCriterion registers ``empty_weight`` (num_classes + 1)
# ----------------------------------------------------------------------
def official_to_detectron2_name(key):
    """Detectron2 name of an official PSALM key (None: PSALM-only)."""
    if key.startswith('model.vision_tower.'):
        return 'backbone.' + key[len('model.vision_tower.'):]
    if key.startswith('pixel_decoder.'):
        rest = key[len('pixel_decoder.'):]
        for fpn in ('adapter_1', 'layer_1'):
            if rest == f'{fpn}.0.bias':
                return None
            if rest == f'{fpn}.0.weight':
                rest = f'{fpn}.weight'
            elif rest.startswith(f'{fpn}.1.'):
                rest = f'{fpn}.norm.' + rest[len(f'{fpn}.1.'):]
        return 'sem_seg_head.pixel_decoder.' + rest
    if key.startswith('predictor.'):
        rest = key[len('predictor.'):]
        if rest.startswith(('SEG_', 'CLASS_proj', 'REGION_proj')):
            return None
        return 'sem_seg_head.predictor.' + rest
    return None


def detectron2_extras(num_classes=133, channels=256):
    return {
        'sem_seg_head.predictor.class_embed.weight':
        (num_classes + 1, channels),
        'sem_seg_head.predictor.class_embed.bias': (num_classes + 1, ),
        'criterion.empty_weight': (num_classes + 1, ),
    }


# ----------------------------------------------------------------------
# (a) full size, shapes only
# ----------------------------------------------------------------------
@pytest.fixture(scope='module')
def mmdet_swin_b_state(cli):
    cfg = Config.fromfile(osp.join(osp.dirname(mmdet.__file__),
                                   MMDET_SWIN_B))
    cfg.model.backbone.init_cfg = None
    return build_on_meta(cfg.model).state_dict()


def test_mmdet_swin_b_full_size(cli, repo_root, mmdet_swin_b_state):
    source = mmdet_swin_b_state
    assert len(source) == 649
    assert source['panoptic_head.query_embed.weight'].shape == (100, 256)
    state, report = cli.mask2former_to_mmpsalm(source, 'mmdet',
                                               num_queries=100)
    assert sorted(report['dropped']) == sorted(cli.MMDET_DROPPED_KEYS)
    assert report['unknown'] == [] and report['truncated'] is None
    assert len(state) == 649 - 3
    for config, left in ((PAPER, COND_MLPS),
                         (OFFICIAL, COND_MLPS | FPN_BIASES)):
        target = cli.build_target_shapes(osp.join(repo_root, config))
        assert set(cli.check_against_target(state, target)) == left
        assert set(target) == set(state) | left
        assert shapes(state) == {k: tuple(target[k]) for k in state}


def test_detectron2_swin_b_full_size(cli, repo_root, mmdet_swin_b_state):
    reference = read_key_list(osp.join(repo_root, KEY_LIST))
    d2 = {}
    for key, shape in reference.items():
        name = official_to_detectron2_name(key)
        if name is not None:
            d2[name] = shape
    d2.update(detectron2_extras())
    # 357 Swin + 117 pixel decoder + 175 predictor + 1 criterion buffer
    assert len(d2) == 650
    assert sum(k.startswith('backbone.') for k in d2) == 357
    assert sum(k.startswith('sem_seg_head.pixel_decoder.') for k in d2) == 117
    assert sum(k.startswith('sem_seg_head.predictor.') for k in d2) == 175
    source = {k: torch.empty(s, device='meta') for k, s in d2.items()}
    assert cli.detect_source(source) == 'detectron2'
    state, report = cli.mask2former_to_mmpsalm(source, 'detectron2',
                                               num_queries=100)
    assert sorted(report['dropped']) == sorted(cli.DETECTRON2_DROPPED_KEYS)
    assert report['unknown'] == []
    target = cli.build_target_shapes(osp.join(repo_root, OFFICIAL))
    assert set(cli.check_against_target(state, target)) == \
        COND_MLPS | FPN_BIASES
    # both releases initialise exactly the same keys with the same shapes
    mmdet_state, _ = cli.mask2former_to_mmpsalm(mmdet_swin_b_state,
                                                'mmdet')
    assert shapes(state) == shapes(mmdet_state)


# ----------------------------------------------------------------------
# tiny models
# ----------------------------------------------------------------------
def tiny_cfg(repo_root, tmp_path, conv_bias):
    cfg = Config.fromfile(osp.join(repo_root, TINY))
    cfg.model.mask_generator.pixel_decoder.conv_bias = conv_bias
    cfg.model.language_model.tokenizer = osp.join(
        repo_root, cfg.model.language_model.tokenizer)
    path = str(tmp_path / f'tiny_bias{int(conv_bias)}.py')
    cfg.dump(path)
    return cfg, path


def randomise(module, seed):
    """Distinct random values everywhere (but index buffers)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, value in module.state_dict().items():
            if value.is_floating_point():
                value.copy_(torch.randn(value.shape, generator=gen) * 0.2)
    module.eval()  # (mmdet's Swin.train returns None)
    return module


def build_psalm_modules(cfg, seed=None):
    backbone = MODELS.build(cfg.model.backbone)
    generator = MODELS.build(cfg.model.mask_generator)
    backbone.init_weights()
    generator.init_weights()
    if seed is not None:
        randomise(backbone, seed)
        randomise(generator, seed + 1)
    backbone.eval()
    generator.eval()
    return backbone, generator


def load_psalm_modules(cfg, state):
    """Fresh modules loaded from ``state``; returns the keys left out."""
    backbone, generator = build_psalm_modules(cfg, seed=7)
    with torch.no_grad():  # PSALM-only convs: zero bias as officially
        for name, value in generator.state_dict().items():
            if 'convs.0.conv.bias' in name:
                value.zero_()
    left = []
    for prefix, module in (('backbone.', backbone),
                           ('mask_generator.', generator)):
        sub = {k[len(prefix):]: v for k, v in state.items()
               if k.startswith(prefix)}
        missing, unexpected = module.load_state_dict(sub, strict=False)
        assert unexpected == []
        left += [prefix + k for k in missing]
    return backbone, generator, left


def conditions(batch_size, num_conds, channels):
    torch.manual_seed(3)
    embeds = torch.randn(batch_size, num_conds, channels)
    mask = torch.ones(batch_size, num_conds, dtype=torch.bool)
    return embeds, mask


def test_mmdet_tiny_through_cli_gives_mmdet_masks(cli, repo_root, tmp_path):
    from mmdet.models.dense_heads import Mask2FormerHead
    cfg, cfg_path = tiny_cfg(repo_root, tmp_path, conv_bias=False)
    gen_cfg = cfg.model.mask_generator
    pixel_decoder = ConfigDict(gen_cfg.pixel_decoder.to_dict())
    pixel_decoder.type = 'MSDeformAttnPixelDecoder'
    pixel_decoder.pop('conv_bias')
    num_classes = 5
    head = Mask2FormerHead(
        in_channels=gen_cfg.in_channels,
        feat_channels=gen_cfg.feat_channels,
        out_channels=gen_cfg.out_channels,
        num_things_classes=3,
        num_stuff_classes=num_classes - 3,
        num_queries=gen_cfg.num_queries,
        pixel_decoder=pixel_decoder,
        transformer_decoder=ConfigDict(gen_cfg.transformer_decoder),
        positional_encoding=gen_cfg.positional_encoding,
        loss_cls=ConfigDict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=2.0,
            reduction='mean', class_weight=[1.0] * num_classes + [0.1]))
    backbone = MODELS.build(cfg.model.backbone)
    randomise(backbone, 0)
    randomise(head, 1)
    source = {f'backbone.{k}': v for k, v in backbone.state_dict().items()}
    source.update(
        {f'panoptic_head.{k}': v for k, v in head.state_dict().items()})
    src = str(tmp_path / 'mask2former_tiny_mmdet.pth')
    torch.save({'state_dict': source, 'meta': {'epoch': 50}}, src)
    dst = str(tmp_path / 'psalm_init.pth')
    cli.main([src, dst, '--config', cfg_path])

    from projects.psalm.engine import load_weights_only
    ckpt = load_weights_only(dst, map_location='cpu')
    assert ckpt['meta']['source_format'] == 'mmdet'
    assert sorted(ckpt['meta']['dropped']) == sorted(cli.MMDET_DROPPED_KEYS)
    assert set(ckpt['meta']['not_in_source']) == COND_MLPS
    our_backbone, generator, left = load_psalm_modules(cfg,
                                                       ckpt['state_dict'])
    assert set(left) == COND_MLPS
    for key, value in source.items():
        if key not in cli.MMDET_DROPPED_KEYS:
            name = key.replace('panoptic_head.', 'mask_generator.', 1)
            assert torch.equal(ckpt['state_dict'][name], value), key

    # the documented use: Pretrained init_cfgs of the two modules
    cfg.model.backbone.convert_weights = False
    cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=dst)
    cfg.model.mask_generator.init_cfg = dict(
        type='Pretrained', checkpoint=dst, prefix='mask_generator.')
    init_backbone, init_generator = build_psalm_modules(cfg)
    for prefix, module in (('backbone.', init_backbone),
                           ('mask_generator.', init_generator)):
        for key, value in module.state_dict().items():
            if prefix + key in ckpt['state_dict']:
                assert torch.equal(value, ckpt['state_dict'][prefix + key])

    # same Swin features; with mmdet's query_feat as the query content the
    # mask generator predicts mmdet's masks at every decoder layer
    torch.manual_seed(0)
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        feats = backbone(images)
        our_feats = our_backbone(images)
        for a, b in zip(feats, our_feats):
            assert torch.equal(a, b)
        _, expected_masks = head(list(feats), [])
        queries = head.query_feat.weight.unsqueeze(0).repeat(2, 1, 1)
        embeds, mask = conditions(2, 4, gen_cfg.feat_channels)
        _, masks = generator(list(our_feats), queries, embeds, mask,
                             'category')
    assert len(masks) == len(expected_masks) == \
        gen_cfg.transformer_decoder.num_layers + 1
    for actual, expected in zip(masks, expected_masks):
        torch.testing.assert_close(actual, expected)


def to_detectron2(project_state):
    """A detectron2 Mask2Former state dict (numpy) from this project's
    backbone + mask generator (the official names are detectron2's)."""
    official = mmpsalm_to_official(project_state, strict=False)
    d2 = {}
    for key, value in official.items():
        name = official_to_detectron2_name(key)
        if name is not None:
            d2[name] = value.numpy().copy()
    return d2


def test_detectron2_tiny_pickle_through_cli(cli, repo_root, tmp_path):
    cfg, cfg_path = tiny_cfg(repo_root, tmp_path, conv_bias=True)
    backbone, generator = build_psalm_modules(cfg, seed=10)
    truth = {f'backbone.{k}': v for k, v in backbone.state_dict().items()}
    truth.update(
        {f'mask_generator.{k}': v for k, v in generator.state_dict().items()})
    d2 = to_detectron2(truth)
    rng = np.random.default_rng(0)
    num_queries, channels = generator.query_embed.weight.shape
    # a checkpoint with twice the queries: the first ones are kept
    query_embed = 'sem_seg_head.predictor.query_embed.weight'
    d2[query_embed] = np.concatenate(
        [d2[query_embed],
         rng.standard_normal((num_queries, channels), dtype=np.float32)])
    d2['sem_seg_head.predictor.query_feat.weight'] = rng.standard_normal(
        (2 * num_queries, channels), dtype=np.float32)
    for key, shape in detectron2_extras(4, channels).items():
        d2[key] = rng.standard_normal(shape, dtype=np.float32)
    src = str(tmp_path / 'model_final_tiny.pkl')
    with open(src, 'wb') as f:
        pickle.dump({'model': d2, '__author__': 'Detectron2 Model Zoo'}, f)
    dst = str(tmp_path / 'psalm_init.pth')
    cli.main([src, dst, '--config', cfg_path])

    from projects.psalm.engine import load_weights_only
    ckpt = load_weights_only(dst, map_location='cpu')
    state = ckpt['state_dict']
    assert ckpt['meta']['source_format'] == 'detectron2'
    assert sorted(ckpt['meta']['dropped']) == \
        sorted(cli.DETECTRON2_DROPPED_KEYS)
    assert ckpt['meta']['truncated_query_embed'] == (2 * num_queries,
                                                     num_queries)
    _, _, left = load_psalm_modules(cfg, state)
    assert set(left) == COND_MLPS | FPN_BIASES
    # every covered tensor is the original one (Swin reductions re-ordered
    # back to mmcv's layout included)
    for key, value in truth.items():
        if key not in COND_MLPS | FPN_BIASES:
            assert torch.equal(state[key], value), key

    # spot checks against the detectron2 names
    def same(d2_key, key):
        assert torch.equal(state[key], torch.from_numpy(d2[d2_key])), key

    swin, pd, pred = ('backbone.', 'sem_seg_head.pixel_decoder.',
                      'sem_seg_head.predictor.')
    mg = 'mask_generator.'
    same(swin + 'layers.1.blocks.0.attn.qkv.weight',
         'backbone.stages.1.blocks.0.attn.w_msa.qkv.weight')
    same(swin + 'layers.3.blocks.0.attn.relative_position_bias_table',
         'backbone.stages.3.blocks.0.attn.w_msa.relative_position_bias_table')
    same(swin + 'layers.0.blocks.0.mlp.fc2.weight',
         'backbone.stages.0.blocks.0.ffn.layers.1.weight')
    same(swin + 'patch_embed.proj.weight',
         'backbone.patch_embed.projection.weight')
    for part in ('sampling_offsets', 'attention_weights', 'value_proj',
                 'output_proj'):
        same(pd + f'transformer.encoder.layers.0.self_attn.{part}.weight',
             mg + f'pixel_decoder.encoder.layers.0.self_attn.{part}.weight')
    same(pd + 'transformer.encoder.layers.0.linear1.bias',
         mg + 'pixel_decoder.encoder.layers.0.ffn.layers.0.0.bias')
    same(pd + 'transformer.level_embed', mg + 'pixel_decoder.level_encoding.'
         'weight')
    same(pd + 'input_proj.2.1.weight', mg + 'pixel_decoder.input_convs.2.gn.'
         'weight')
    same(pd + 'adapter_1.weight', mg + 'pixel_decoder.lateral_convs.0.conv.'
         'weight')
    same(pd + 'adapter_1.norm.bias', mg + 'pixel_decoder.lateral_convs.0.gn.'
         'bias')
    same(pd + 'layer_1.weight', mg + 'pixel_decoder.output_convs.0.conv.'
         'weight')
    same(pd + 'mask_features.weight', mg + 'pixel_decoder.mask_feature.weight')
    same(pred + 'transformer_cross_attention_layers.2.multihead_attn.'
         'in_proj_weight',
         mg + 'transformer_decoder.layers.2.cross_attn.attn.in_proj_weight')
    same(pred + 'transformer_self_attention_layers.1.self_attn.out_proj.'
         'weight',
         mg + 'transformer_decoder.layers.1.self_attn.attn.out_proj.weight')
    same(pred + 'transformer_self_attention_layers.1.norm.weight',
         mg + 'transformer_decoder.layers.1.norms.1.weight')
    same(pred + 'transformer_ffn_layers.0.norm.bias',
         mg + 'transformer_decoder.layers.0.norms.2.bias')
    same(pred + 'decoder_norm.weight',
         mg + 'transformer_decoder.post_norm.weight')
    same(pred + 'mask_embed.layers.2.weight', mg + 'mask_embed.4.weight')
    same(pred + 'level_embed.weight', mg + 'level_embed.weight')
    assert torch.equal(state[mg + 'query_embed.weight'],
                       torch.from_numpy(d2[query_embed][:num_queries]))

    # PatchMerging: detectron2's Swin concatenates the 2x2 neighbours as
    # (0,0), (1,0), (0,1), (1,1), then LayerNorm(4C) and Linear(4C, 2C)
    merging = backbone.stages[0].downsample
    merging.load_state_dict({
        k[len('backbone.stages.0.downsample.'):]: v
        for k, v in state.items()
        if k.startswith('backbone.stages.0.downsample.')
    })
    c = merging.in_channels
    h, w = 4, 6
    torch.manual_seed(1)
    x = torch.randn(2, h * w, c)
    grid = x.view(2, h, w, c)
    cat = torch.cat([grid[:, 0::2, 0::2], grid[:, 1::2, 0::2],
                     grid[:, 0::2, 1::2], grid[:, 1::2, 1::2]], -1)
    cat = torch.nn.functional.layer_norm(
        cat.view(2, -1, 4 * c), (4 * c, ),
        torch.from_numpy(d2[swin + 'layers.0.downsample.norm.weight']),
        torch.from_numpy(d2[swin + 'layers.0.downsample.norm.bias']))
    expected = cat @ torch.from_numpy(
        d2[swin + 'layers.0.downsample.reduction.weight']).T
    with torch.no_grad():
        out, _ = merging(x, (h, w))
    torch.testing.assert_close(out, expected)


# ----------------------------------------------------------------------
# loading and errors
# ----------------------------------------------------------------------
class _RunsCode:

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


def test_restricted_unpickler_refuses_code(cli, tmp_path):
    marker = tmp_path / 'executed'
    path = str(tmp_path / 'evil.pkl')
    with open(path, 'wb') as f:
        pickle.dump({'model': {'backbone.x': _RunsCode(str(marker))}}, f)
    with pytest.raises(cli.DisallowedPickleGlobal, match=r'evil\.pkl.*'
                       r'global (posix|os)\.system'):
        cli.load_detectron2_pickle(path)
    assert not marker.exists()
    # numpy arrays, OrderedDict and both pickle protocols are fine
    from collections import OrderedDict
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        with open(path, 'wb') as f:
            pickle.dump({'model': OrderedDict(a=np.arange(6.).reshape(2, 3))},
                        f, protocol=protocol)
        state = cli.load_detectron2_pickle(path)
        assert torch.equal(state['a'],
                           torch.arange(6.).reshape(2, 3).double())
    # non-array values are refused too
    with open(path, 'wb') as f:
        pickle.dump({'model': {'a': [1, 2]}}, f)
    with pytest.raises(TypeError, match="'a' is a list"):
        cli.load_detectron2_pickle(path)


def test_unknown_keys_and_formats_are_named(cli, repo_root,
                                            mmdet_swin_b_state):
    source = dict(mmdet_swin_b_state)
    source['neck.conv.weight'] = torch.zeros(1)
    with pytest.raises(KeyError, match=r'neck\.conv\.weight'):
        cli.mask2former_to_mmpsalm(source, 'mmdet')
    state, report = cli.mask2former_to_mmpsalm(source, 'mmdet', strict=False)
    assert report['unknown'] == ['neck.conv.weight']
    # a renamed key that the model does not have is named by the check
    target = cli.build_target_shapes(osp.join(repo_root, PAPER))
    state['mask_generator.extra.weight'] = torch.zeros(1)
    with pytest.raises(KeyError, match=r'mask_generator\.extra\.weight'):
        cli.check_against_target(state, target)
    state.pop('mask_generator.extra.weight')
    gone = 'backbone.stages.2.blocks.17.norm2.bias'
    state.pop(gone)
    with pytest.raises(KeyError, match=gone.replace('.', r'\.')):
        cli.check_against_target(state, target)
    with pytest.raises(ValueError, match='pass --source'):
        cli.detect_source({'backbone.x': torch.zeros(1)})
    with pytest.raises(ValueError, match='the model needs 100'):
        cli.mask2former_to_mmpsalm(
            {'panoptic_head.query_embed.weight': torch.zeros(50, 256)},
            'mmdet', num_queries=100)
