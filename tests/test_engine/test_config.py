# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Config inheritance, --cfg-options overrides and the CPU launcher fallback."""
import glob
import os.path as osp

import pytest
from mmengine.config import Config, DictAction

from projects.psalm.engine import prepare_config

SMOKE = 'configs/smoke/mask2former_swin-tiny_1xb2-60it_coco-sample.py'


@pytest.fixture
def smoke_cfg(repo_root):
    return Config.fromfile(osp.join(repo_root, SMOKE))


def test_inherits_default_runtime(smoke_cfg):
    # from _base_/default_runtime.py
    assert smoke_cfg.default_scope == 'mmdet'
    assert smoke_cfg.custom_imports.imports == ['projects.psalm']
    assert dict(type='SafeCheckpointHook') in smoke_cfg.custom_hooks
    # a child key merged into a base dict keeps the other base keys
    assert smoke_cfg.default_hooks.logger.interval == 10
    assert smoke_cfg.default_hooks.logger.type == 'LoggerHook'
    assert smoke_cfg.default_hooks.timer.type == 'IterTimerHook'


def test_cfg_options_override(smoke_cfg, tmp_path):
    action = DictAction(option_strings=['--cfg-options'], dest='o')
    parsed = {}
    for item in ['train_dataloader.batch_size=1', 'optim_wrapper.optimizer.lr=0.5',
                 'model.backbone.depths=[2,2,2,2]']:
        key, value = item.split('=', 1)
        parsed[key] = action._parse_iterable(value)
    cfg = prepare_config(smoke_cfg, SMOKE, 'none', parsed, str(tmp_path))
    assert cfg.train_dataloader.batch_size == 1
    assert cfg.optim_wrapper.optimizer.lr == 0.5
    assert cfg.model.backbone.depths == [2, 2, 2, 2]
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'  # untouched sibling
    assert cfg.work_dir == str(tmp_path)


def test_default_work_dir_and_cpu_backend(smoke_cfg):
    cfg = prepare_config(smoke_cfg, SMOKE, 'pytorch', None, None)
    assert cfg.work_dir == osp.join('./work_dirs',
                                    'mask2former_swin-tiny_1xb2-60it_coco-sample')
    # no CUDA here: distributed runs must use gloo
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'


def test_every_config_parses(repo_root):
    paths = [p for p in glob.glob(osp.join(repo_root, 'configs', '**', '*.py'),
                                  recursive=True) if '_base_' not in p]
    assert paths
    for path in paths:
        cfg = Config.fromfile(path)
        assert cfg.default_scope == 'mmdet', path
        assert 'projects.psalm' in cfg.custom_imports.imports, path


@pytest.mark.parametrize('dtype,scale', [('float16', 'dynamic'),
                                         ('bfloat16', 1.0)])
def test_amp_switch(smoke_cfg, dtype, scale):
    from projects.psalm.engine import apply_amp
    apply_amp(smoke_cfg, dtype)
    assert smoke_cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert smoke_cfg.optim_wrapper.dtype == dtype
    assert smoke_cfg.optim_wrapper.loss_scale == scale
    assert smoke_cfg.optim_wrapper.clip_grad.max_norm == 1.0  # kept
    smoke_cfg.optim_wrapper.type = 'MyWrapper'
    with pytest.raises(ValueError, match='MyWrapper'):
        apply_amp(smoke_cfg, dtype)


def test_reliability_hooks_are_inherited_and_can_be_turned_off(smoke_cfg):
    hooks = smoke_cfg.default_hooks
    assert hooks.checkpoint.type == 'AtomicCheckpointHook'
    assert hooks.random_state.type == 'RandomStateHook'
    assert hooks.non_finite == dict(type='NonFiniteCheckHook', action='stop')
    cfg = prepare_config(
        smoke_cfg, SMOKE, 'none',
        dict(**{'default_hooks.non_finite': None,
                'default_hooks.timer': None}), None)
    # mmengine removes its own default hooks set to None, not other ones
    assert 'non_finite' not in cfg.default_hooks
    assert cfg.default_hooks.timer is None
    assert cfg.default_hooks.random_state.type == 'RandomStateHook'
