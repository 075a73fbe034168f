# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""The released-weights evaluation configs (configs/psalm_official/).

* one ``psalm_official_swin-b_phi-1.5_test_<suffix>.py`` per benchmark of
  configs/benchmarks/ (same suffixes), and no other;
* each is its benchmark with the official-architecture model of
  ``configs/_base_/models/psalm_official.py``: the model equals that base
  but for the protocol switches (merged sentences for the ``-merged`` and
  gRefCOCO configs, the GRES threshold), everything else (data, pipeline,
  evaluators, loops, runtime) equals the benchmark's except the official
  gRefCOCO protocol (one sample per gRef, all its expressions);
* every type (model, dataset, transforms, metrics, loop) is registered;
* the distinct models build on the meta device and export exactly the
  official key layout (tests/data/official_keys) but the two unused tables;
* the official RefCOCO (merged) and gRefCOCO protocols run end to end with
  a tiny random model on the refer-toolkit fixture: one sample per
  referent, and (top-1 fallback) no empty "no target" answer.
"""
import copy
import os
import os.path as osp

import pytest
import torch
from config_testing import BENCH, save_random_checkpoint, tiny_config
from mmengine.config import Config

import projects.psalm  # noqa: F401
from mmdet.registry import DATASETS, LOOPS, METRICS, MODELS, TRANSFORMS
from mmdet.utils import register_all_modules
from projects.psalm.models.official_keys import (OFFICIAL_UNUSED_KEYS,
                                                 mmpsalm_to_official)

OFFICIAL = 'configs/psalm_official/psalm_official_swin-b_phi-1.5_test_{}.py'
OFFICIAL_MODEL = 'configs/_base_/models/psalm_official.py'
KEY_LIST = 'tests/data/official_keys/psalm_state_dict_keys.txt'
PREFIX = 'psalm_swin-b_phi-1.5_test_'


def benchmark_names(repo_root):
    folder = osp.join(repo_root, 'configs', 'benchmarks')
    return sorted(f[len(PREFIX):-len('.py')] for f in os.listdir(folder)
                  if f.startswith(PREFIX) and f.endswith('.py'))


NAMES = benchmark_names(
    osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))


def is_merged(name):
    """The official protocol: all expressions of a referent in one prompt
    (RefCOCO ``-merged``; every gRefCOCO config, as eval_grefcoco.py)."""
    return name.endswith('-merged') or name.startswith('grefcoco')


def load(repo_root, name):
    return (Config.fromfile(osp.join(repo_root, OFFICIAL.format(name))),
            Config.fromfile(osp.join(repo_root, BENCH.format(name))))


def test_one_official_config_per_benchmark(repo_root):
    folder = osp.join(repo_root, 'configs', 'psalm_official')
    prefix = 'psalm_official_swin-b_phi-1.5_test_'
    official = sorted(f[len(prefix):-len('.py')] for f in os.listdir(folder)
                      if f.endswith('.py'))
    assert official == NAMES
    assert len(NAMES) == 32


@pytest.mark.parametrize('name', NAMES)
def test_official_config_is_its_benchmark_with_the_official_model(
        repo_root, name):
    register_all_modules()
    cfg, bench = load(repo_root, name)
    # the model: the official-architecture base + the protocol switches
    expected = Config.fromfile(osp.join(repo_root, OFFICIAL_MODEL)).model
    expected = copy.deepcopy(expected.to_dict())
    expected['input_schema']['merge_sentences'] = is_merged(name)
    expected['test_cfg']['gres_threshold'] = bench.model.test_cfg[
        'gres_threshold']
    assert cfg.model.to_dict() == expected
    model = cfg.model
    assert model.projector.type == 'ResNetSwinProjector'
    assert model.language_model.pretrained is None
    assert tuple(model.language_model.added_tokens) == ('[PAD]', '[SEG]')
    assert model.input_schema.prompt_style == 'official'
    assert model.input_schema.category_terminator == '[SEG]'
    assert model.input_schema.sentence_terminator == '[SEG]'
    assert model.condition_encoder.sentence_pooling == 'mean'
    assert model.condition_encoder.visual_pooling == 'sampled_points'
    assert model.mask_generator.pixel_decoder.conv_bias is True
    assert model.test_cfg.gres_fallback_top1 is True

    # everything else is the benchmark's
    assert set(cfg.keys()) == set(bench.keys())
    for key in bench.keys():
        if key not in ('model', 'test_dataloader'):
            assert cfg[key] == bench[key], key
    loader = copy.deepcopy(bench.test_dataloader.to_dict())
    if name.startswith('grefcoco'):
        assert loader['dataset']['protocol'] == 'per_expression'
        loader['dataset']['protocol'] = 'merged'
    assert cfg.test_dataloader.to_dict() == loader
    if 'protocol' in loader['dataset']:
        assert (loader['dataset']['protocol'] == 'merged') == is_merged(name)

    # every type resolves in the registries
    assert MODELS.get(model.type) is not None
    dataset = cfg.test_dataloader.dataset
    assert DATASETS.get(dataset.type) is not None, dataset.type
    for step in dataset.get('pipeline', cfg.get('test_pipeline', [])):
        assert TRANSFORMS.get(step['type']) is not None, step['type']
    evaluators = cfg.test_evaluator
    if isinstance(evaluators, dict):
        evaluators = [evaluators]
    for evaluator in evaluators:
        assert METRICS.get(evaluator['type']) is not None, evaluator['type']
    assert LOOPS.get(cfg.test_cfg.type) is not None


def read_key_list(path):
    keys = {}
    for line in open(path):
        if line.startswith('#') or not line.strip():
            continue
        key, shape = line.split(' ', 1)
        keys[key] = tuple(int(s) for s in shape.strip('()\n ').split(',')
                          if s.strip())
    return keys


def test_official_models_have_the_released_key_layout(repo_root):
    register_all_modules()
    models = {}
    for name in NAMES:
        model = Config.fromfile(osp.join(repo_root,
                                         OFFICIAL.format(name))).model
        models.setdefault(repr(model.to_dict()), (name, model))
    # per-expression and merged-sentence prompts (gRefCOCO's settings are
    # the base's: threshold 0.6, top-1 fallback)
    assert len(models) == 2
    reference = read_key_list(osp.join(repo_root, KEY_LIST))
    expected = {k: s for k, s in reference.items()
                if k not in OFFICIAL_UNUSED_KEYS}
    linspace = torch.linspace
    for name, model_cfg in models.values():
        model_cfg.language_model.tokenizer = osp.join(
            repo_root, model_cfg.language_model.tokenizer)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(torch, 'linspace',
                       lambda *a, **k: linspace(*a, **{'device': 'cpu', **k}))
            with torch.device('meta'):
                model = MODELS.build(model_cfg)
        exported = mmpsalm_to_official(model.state_dict())
        assert {k: tuple(v.shape) for k, v in exported.items()} == \
            expected, name


# ----------------------------------------------------------------------
# the official referring protocols, end to end on the fixture
# ----------------------------------------------------------------------
def _on_refer_fixture(cfg, data_root, refs_file):
    dataset = cfg.test_dataloader.dataset
    dataset.data_root = osp.join(data_root, 'refcoco_sample') + '/'
    dataset.ann_file = 'instances.json'
    dataset.split_file = refs_file
    dataset.data_prefix = dict(img_path=osp.join(
        data_root, 'coco_panoptic_sample', 'input_images') + '/')
    cfg.test_dataloader.num_workers = 0
    cfg.test_dataloader.persistent_workers = False
    return cfg


@pytest.mark.parametrize('name,refs_file', [('refcoco-val-merged',
                                              'refs(unc).p'),
                                             ('grefcoco-val',
                                              'grefs(unc).json')])
def test_official_referring_protocols_run(repo_root, data_root, tmp_path,
                                          name, refs_file):
    from mmengine.runner import Runner

    from projects.psalm.engine.runtime import prepare_config
    path = osp.join(repo_root, OFFICIAL.format(name))
    cfg = _on_refer_fixture(tiny_config(path, repo_root), data_root,
                            refs_file)
    checkpoint = str(tmp_path / 'tiny.pth')
    save_random_checkpoint(cfg, checkpoint)
    cfg = prepare_config(cfg, path, 'none', None, str(tmp_path / 'work'))
    cfg.load_from = checkpoint
    runner = Runner.from_cfg(cfg)
    dataset = runner.test_dataloader.dataset
    # one sample per referent, its expressions merged in the prompt
    assert dataset.protocol == 'merged'
    assert len(dataset) == 3
    assert any(len(dataset[i]['data_samples'].prompt['sentences']) > 1
               for i in range(len(dataset)))
    metrics = runner.test()
    if name == 'grefcoco-val':
        assert metrics['gres/num_samples'] == 3
        # never an empty answer: every no-target sample counts as wrong
        assert metrics['gres/num_no_target'] >= 1
        assert metrics['gres/N-acc'] == 0
    else:
        assert metrics['refseg/num_samples'] == 3
