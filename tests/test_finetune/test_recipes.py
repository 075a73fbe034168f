# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""The fine-tuning recipes of configs/finetune/.

* every recipe inherits configs/psalm_joint.py (its model, sampler, hooks)
  and reads the custom-data layout of docs/finetune.md; what differs is
  only what makes the tier (frozen parts, LoRA, ZeRO-1, bf16);
* the official-weights LoRA recipe keeps psalm_official.py's model;
* each recipe (full, frozen LLM, LoRA) fine-tunes the tiny model, loaded
  from a "pretrained" checkpoint, with ``tools/train.py`` on the custom data
  made from tests/data (renamed categories, several/no-target expressions,
  built interactive prompts): the loss falls, the frozen weights stay put,
  the checkpoint is weights-only and ``tools/test.py`` evaluates it (the
  LoRA one after ``merge_lora.py``) with the custom panoptic test config,
  printing PQ / mask AP / mIoU (the frozen-LLM run prompts with the names
  of a class-name file, as docs/finetune.md shows);
* the ZeRO-1 recipe trains with 2 CPU processes;
* the gres and interactive custom test configs read the converted val files.
"""
import math
import os
import os.path as osp
import socket
import subprocess
import sys
import time

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from psalm_testing import load_tool
from recipe_testing import (OFFICIAL_LORA, RECIPES, REPO_ROOT, TEST_GRES,
                            TEST_INTERACTIVE, parse_metrics, run, tiny_recipe,
                            tiny_test_config, train_losses)

from mmdet.registry import DATASETS

JOINT = 'configs/psalm_joint.py'
ITERS = 30
CYCLE = 6  # two round-robin cycles of the 3 tasks


def _load(path):
    return Config.fromfile(osp.join(REPO_ROOT, path))


@pytest.mark.parametrize('name', sorted(RECIPES))
def test_recipe_inherits_the_joint_config(name):
    cfg, joint = _load(RECIPES[name]), _load(JOINT)
    # the joint model but for the tier's switches
    model, joint_model = cfg.model.to_dict(), joint.model.to_dict()
    lora = model['language_model'].pop('lora', None)
    frozen = model.pop('frozen_modules')
    joint_model.pop('frozen_modules')
    assert model == joint_model
    assert cfg.model.language_model.gradient_checkpointing is True
    assert (lora is not None) == (name == 'lora')
    assert frozen == (('backbone', 'language_model')
                      if name == 'frozen-llm' else ('backbone', ))
    assert cfg.custom_hooks == joint.custom_hooks
    assert cfg.find_unused_parameters is True
    # three task datasets on the custom layout, one task per batch
    loader = cfg.train_dataloader
    assert loader.batch_sampler.type == 'MultiTaskBatchSampler'
    assert loader.batch_sampler.task_ratios == [1, 1, 1]
    datasets = loader.dataset.datasets
    assert [d.type for d in datasets] == [
        'PSALMCocoPanopticDataset', 'PSALMGRefCocoDataset',
        'COCOInteractiveDataset']
    assert [d.ann_file for d in datasets] == [
        'annotations/panoptic_train.json', 'annotations/refs_train.json',
        'annotations/interactive_train.json']
    assert all(d.data_root == 'data/custom/' for d in datasets)
    # bf16 autocast, or ZeRO-1's sharded AdamW
    wrapper = cfg.optim_wrapper
    assert (wrapper.type, wrapper.dtype) == ('AmpOptimWrapper', 'bfloat16')
    if name == 'full-zero1':
        assert wrapper.optimizer.type == 'ZeroRedundancyOptimizer'
        assert wrapper.optimizer.optimizer_type == 'AdamW'
        assert cfg.default_hooks.checkpoint.save_optimizer is False
    else:
        assert wrapper.optimizer.type == 'AdamW'
    if name == 'lora':
        assert set(lora['target_modules']) == {
            'q_proj', 'k_proj', 'v_proj', 'dense', 'fc1', 'fc2'}
        assert '.lora_' in wrapper.paramwise_cfg.custom_keys
    assert cfg.param_scheduler[-1].end == cfg.train_cfg.max_iters


def test_official_lora_recipe_keeps_the_official_model():
    cfg = _load(OFFICIAL_LORA)
    official = _load('configs/_base_/models/psalm_official.py').model
    model = cfg.model.to_dict()
    assert model['language_model'].pop('lora') == _load(
        RECIPES['lora']).model.language_model.lora
    assert model == official.to_dict()
    assert cfg.load_from == 'checkpoints/psalm_official.pth'


def _state(path):
    return torch.load(path, weights_only=True)['state_dict']


def _changed(before, after, prefix):
    keys = [k for k in before if k.startswith(prefix)]
    assert keys, prefix
    return any(not torch.equal(before[k], after[k]) for k in keys)


@pytest.mark.timeout(900)
@pytest.mark.parametrize('name', ['full', 'frozen-llm', 'lora'])
def test_finetune_recipe_end_to_end(name, custom_data, tiny_checkpoint,
                                    tmp_path):
    start = time.time()
    config = tiny_recipe(name, custom_data['root'], tiny_checkpoint,
                         str(tmp_path), max_iters=ITERS)
    work_dir = str(tmp_path / 'work')
    run(['tools/train.py', config, '--work-dir', work_dir])
    train_time = time.time() - start

    losses = train_losses(work_dir)
    assert sorted(losses) == list(range(1, ITERS + 1))
    values = [losses[i] for i in range(1, ITERS + 1)]
    assert all(math.isfinite(v) for v in values)
    first = sum(values[:CYCLE]) / CYCLE
    last = sum(values[-CYCLE:]) / CYCLE
    assert last < first, values

    ckpt = osp.join(work_dir, f'iter_{ITERS}.pth')
    after = _state(ckpt)  # weights-only loadable
    before = _state(tiny_checkpoint)
    assert not _changed(before, after, 'backbone.')
    assert _changed(before, after, 'mask_generator.')
    assert _changed(before, after, 'projector.')
    if name == 'full':
        assert _changed(before, after, 'language_model.')
    elif name == 'frozen-llm':
        assert not _changed(before, after, 'language_model.')
    else:  # the base weights stay, the adapters train
        base = {k.replace('.base_layer.', '.'): v for k, v in after.items()}
        assert not _changed(before, base, 'language_model.')
        adapters = [k for k in after if '.lora_B.' in k]
        assert adapters and all(after[k].abs().sum() > 0 for k in adapters)
        merged = str(tmp_path / 'merged.pth')
        assert load_tool('tools/model_converters/merge_lora.py').main(
            [ckpt, merged]) == 12
        ckpt = merged

    test_config = tiny_test_config(custom_data['root'], str(tmp_path))
    options = []
    if name == 'frozen-llm':  # prompts from a class-name file (docs)
        options = [
            '--cfg-options',
            'test_dataloader.dataset.type=PSALMOVPanopticDataset',
            f'test_dataloader.dataset.class_names={custom_data["class_names"]}'
        ]
    start = time.time()
    output = run(['tools/test.py', test_config, ckpt, '--work-dir',
                  str(tmp_path / 'test'), *options])
    metrics = parse_metrics(output)
    for key in ('coco_panoptic/PQ', 'coco/segm_mAP', 'sem_seg/mIoU'):
        assert key in metrics and math.isfinite(metrics[key]), metrics
    print(f'\n[{name}] loss {values[0]:.2f} -> {values[-1]:.2f} (mean of '
          f'the first / last {CYCLE}: {first:.2f} -> {last:.2f}); train '
          f'{train_time:.0f} s, test {time.time() - start:.0f} s; '
          f'PQ {metrics["coco_panoptic/PQ"]}')


def _free_port() -> str:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return str(sock.getsockname()[1])


@pytest.mark.timeout(900)
def test_zero1_recipe_two_processes(custom_data, tiny_checkpoint, tmp_path):
    config = tiny_recipe('full-zero1', custom_data['root'], tiny_checkpoint,
                         str(tmp_path), max_iters=3)
    work_dir = str(tmp_path / 'work')
    env = dict(os.environ, PYTHON=sys.executable, PORT=_free_port(),
               CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1')
    proc = subprocess.run(
        ['bash', 'tools/dist_train.sh', config, '2', '--work-dir', work_dir],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    checkpoint = torch.load(osp.join(work_dir, 'iter_3.pth'),
                            weights_only=True)
    assert 'optimizer' not in checkpoint  # sharded states are not saved
    assert 'GPU number: 2' in proc.stdout + proc.stderr
    losses = train_losses(work_dir)
    assert sorted(losses) == [1, 2, 3]


@pytest.mark.parametrize('config,num', [(TEST_GRES, 4),
                                        (TEST_INTERACTIVE, 47)])
def test_other_custom_test_configs_read_the_val_files(custom_data, tmp_path,
                                                      config, num):
    """The gres (one sample per val expression) and interactive (one per
    non-crowd object) test configs read the converted val files."""
    cfg = Config.fromfile(tiny_test_config(custom_data['root'],
                                           str(tmp_path), config))
    init_default_scope('mmdet')
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    sample = dataset[0]['data_samples']
    assert sample.metainfo['prompt']['task'] in ('gres', 'interactive')
    if config == TEST_GRES:
        assert len(dataset) == num
    else:  # regions of the two images
        assert sum(len(dataset[i]['data_samples'].metainfo['gt_masks'])
                   for i in range(len(dataset))) == num
