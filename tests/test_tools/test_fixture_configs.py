# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""The fixture-data configs (configs/fixtures/): the tree of real fixture
data they read, the configs and a short run of them.

* ``tools/misc/prepare_fixture_data.py`` lays out the README's data/ tree
  (again over an existing one), with the COCO-Interactive json and the
  instance json (ids from 1) generated;
* the training config is configs/psalm_joint.py's data and sampler with the
  tiny model, 256 inputs everywhere, batch 2 and a short warm-up + cosine
  schedule on ``work_dirs/fixtures/data``; each tiny test config is its
  benchmark config with the tiny model, 256 inputs and the same data root;
  every file the configs read is in the tree;
* tools/train.py trains the training config for 4 iterations (one batch of
  each task) and tools/test.py evaluates that checkpoint with the
  COCO-Interactive point config on the tree.
"""
import json
import math
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch
from config_testing import tiny_config
from mmengine.config import Config
from psalm_testing import load_tool

TRAIN = 'configs/fixtures/psalm_tiny_1xb2-1000it_fixtures.py'
TEST = 'configs/fixtures/psalm_tiny_test_{}.py'
BENCH = 'configs/benchmarks/psalm_swin-b_phi-1.5_test_{}.py'
TESTS = ('coco-panoptic', 'refcoco-val', 'coco-interactive-point')
JOINT = 'configs/psalm_joint.py'
TINY_MODEL = 'configs/_base_/models/psalm_tiny.py'
DATA = 'work_dirs/fixtures/data/'
JOINT_TASKS = ('panoptic', 'referring', 'interactive', 'vqa')


def _load(repo_root, config):
    return Config.fromfile(osp.join(repo_root, config))


@pytest.fixture(scope='module')
def tree(repo_root, tmp_path_factory):
    """The fixture tree, laid out twice in the same folder (the second run
    replaces the first)."""
    module = load_tool('tools/misc/prepare_fixture_data.py')
    out = str(tmp_path_factory.mktemp('quickstart') / 'data')
    module.prepare(out)
    return module.prepare(out)


def _leaf_datasets(dataset):
    if dataset.type == 'ConcatDataset':
        return [d for sub in dataset.datasets for d in _leaf_datasets(sub)]
    return [dataset]


def _resizes(pipeline):
    return [step for step in pipeline if step.type == 'Resize']


def _without(dataset, *keys):
    return {k: v for k, v in dataset.items() if k not in keys}


def _in_tree(path, root):
    """A config path below work_dirs/fixtures/data/ -> the tree's path."""
    assert path.startswith(DATA), path
    return osp.join(root, path[len(DATA):])


# ----------------------------------------------------------------------
# the fixture tree
# ----------------------------------------------------------------------
def test_fixture_tree(tree, data_root):
    root = tree['root']
    coco = osp.join(root, 'coco')
    for folder in ('train2017', 'val2017', 'train2014'):
        assert sorted(os.listdir(osp.join(coco, folder))) == [
            '000000142238.jpg', '000000439180.jpg'
        ]
    for name, refs in (('refcoco', 'refs(unc).p'), ('refcoco+', 'refs(unc).p'),
                       ('refcocog', 'refs(umd).p')):
        for file in ('instances.json', refs):
            assert osp.isfile(osp.join(coco, name, file)), (name, file)
    # instance jsons: the 43 thing segments, ids from 1
    with open(osp.join(data_root, 'refcoco_sample', 'instances.json')) as f:
        source = json.load(f)
    for split in ('train', 'val'):
        with open(osp.join(coco, 'annotations',
                           f'instances_{split}2017.json')) as f:
            instances = json.load(f)
        assert [a['id'] for a in instances['annotations']] == [
            a['id'] + 1 for a in source['annotations']
        ]
        assert len(instances['categories']) == 80
        # COCO-Interactive: 2 images, 47 regions with their 4 prompts
        with open(osp.join(coco, 'annotations',
                           f'coco_interactive_{split}_psalm.json')) as f:
            entries = json.load(f)
        assert [e['image'] for e in entries] == [
            '000000142238.jpg', '000000439180.jpg'
        ]
        anns = [a for e in entries for a in e['anns']]
        assert len(anns) == 47
        assert all(f'{t}_visual_prompt_mask' in a for a in anns
                   for t in ('point', 'scribble', 'box', 'mask'))
    # every LLaVA / caption record finds its image
    for folder, ann in (('llava', 'llava_v1_5_mix665k_onlyMM_filtered.json'),
                        ('cc3m', 'chat.json')):
        with open(osp.join(root, folder, ann)) as f:
            records = json.load(f)
        image_dir = osp.join(root, folder,
                             'images' if folder == 'cc3m' else '')
        assert records and all(
            osp.isfile(osp.join(image_dir, r['image'])) for r in records)


# ----------------------------------------------------------------------
# the configs
# ----------------------------------------------------------------------
def test_training_config(repo_root, tree):
    cfg = _load(repo_root, TRAIN)
    joint = _load(repo_root, JOINT)
    assert cfg.custom_imports.imports == ['projects.psalm']
    assert cfg.default_scope == 'mmdet'
    # the tiny model, random weights, Swin frozen as in stage 2
    assert cfg.model == _load(repo_root, TINY_MODEL).model
    assert cfg.model.data_preprocessor.fixed_size == (256, 256)
    assert cfg.model.frozen_modules == ('backbone', )
    assert cfg.load_from is None
    assert cfg.find_unused_parameters is True
    for key in ('val', 'test'):
        assert cfg.get(f'{key}_cfg') is None
        assert cfg.get(f'{key}_dataloader') is None

    # psalm_joint.py's data and sampler, 256 inputs, the tree as data root
    loader, real = cfg.train_dataloader, joint.train_dataloader
    assert loader.batch_size == 2
    assert loader.sampler == real.sampler
    assert loader.batch_sampler == real.batch_sampler
    assert _without(loader.dataset, 'datasets') == _without(
        real.dataset, 'datasets')
    leaves = _leaf_datasets(loader.dataset)
    real_leaves = _leaf_datasets(real.dataset)
    assert len(leaves) == len(real_leaves) == 6
    for dataset, real_dataset in zip(leaves, real_leaves):
        assert _without(dataset, 'data_root', 'pipeline') == _without(
            real_dataset, 'data_root', 'pipeline')
        assert dataset.data_root == DATA + real_dataset.data_root[len(
            'data/'):]
        assert [s.type for s in dataset.pipeline] == [
            s.type for s in real_dataset.pipeline
        ]
        assert _resizes(dataset.pipeline) == [
            dict(type='Resize', scale=(256, 256), keep_ratio=True)
        ]
        # every file it reads is in the tree
        root = _in_tree(dataset.data_root, tree['root'])
        assert osp.isfile(osp.join(root, dataset.ann_file)), dataset.ann_file
        if 'split_file' in dataset:
            assert osp.isfile(osp.join(root, dataset.split_file))
        for prefix in dataset.data_prefix.values():
            assert osp.exists(osp.join(root, prefix)), prefix

    # a short warm-up, then cosine to 0 at the end; logs every 20
    # iterations, one checkpoint at the end
    max_iters = cfg.train_cfg.max_iters
    assert cfg.train_cfg.type == 'IterBasedTrainLoop'
    assert 100 <= max_iters <= 2000
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'
    warm, cosine = cfg.param_scheduler
    assert warm.type == 'LinearLR' and warm.begin == 0
    assert 0 < warm.end <= max_iters // 10
    assert cosine.type == 'CosineAnnealingLR'
    assert (cosine.begin, cosine.end) == (warm.end, max_iters)
    assert cosine.eta_min == 0
    assert cfg.default_hooks.logger.interval == 20
    assert cfg.default_hooks.checkpoint.interval == max_iters
    assert [h.type for h in cfg.custom_hooks] == [
        h.type for h in joint.custom_hooks
    ]


@pytest.mark.parametrize('name', TESTS)
def test_test_configs(repo_root, tree, name):
    cfg = _load(repo_root, TEST.format(name))
    bench = _load(repo_root, BENCH.format(name))
    # the tiny model with the benchmark's task switches and thresholds
    tiny = tiny_config(BENCH.format(name), repo_root).model
    tiny.language_model.tokenizer = cfg.model.language_model.tokenizer
    assert cfg.model == tiny
    assert cfg.test_cfg == bench.test_cfg
    # the benchmark's data, protocol and batch; 256 inputs; the tree
    loader, real = cfg.test_dataloader, bench.test_dataloader
    assert _without(loader, 'dataset', 'num_workers',
                    'persistent_workers') == _without(
                        real, 'dataset', 'num_workers', 'persistent_workers')
    dataset, real_dataset = loader.dataset, real.dataset
    assert _without(dataset, 'data_root', 'pipeline') == _without(
        real_dataset, 'data_root', 'pipeline')
    assert dataset.data_root == DATA + 'coco/'
    assert real_dataset.data_root == 'data/coco/'
    resized = [
        dict(step, scale=(256, 256)) if step.type == 'Resize' else step
        for step in real_dataset.pipeline
    ]
    assert dataset.pipeline == resized
    root = _in_tree(dataset.data_root, tree['root'])
    assert osp.isfile(osp.join(root, dataset.ann_file))
    for prefix in dataset.data_prefix.values():
        assert osp.exists(osp.join(root, prefix)), prefix
    # the same metrics, on the tree's files
    evaluator = cfg.test_evaluator
    real_evaluator = bench.test_evaluator
    if name == 'coco-panoptic':
        assert len(evaluator) == len(real_evaluator) == 3
        for metric, real_metric in zip(evaluator, real_evaluator):
            assert metric.type == real_metric.type
            for key in ('ann_file', 'seg_prefix'):
                if key in real_metric:
                    assert metric[key] == real_metric[key].replace(
                        'data/', DATA, 1)
                    assert osp.exists(_in_tree(metric[key], tree['root']))
    else:
        assert evaluator == real_evaluator


# ----------------------------------------------------------------------
# a short run through tools/train.py and tools/test.py
# ----------------------------------------------------------------------
def _run(cmd, cwd):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1')
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)
    if proc.returncode != 0:
        raise AssertionError(f'{" ".join(cmd)} failed ({proc.returncode}):\n'
                             f'{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}')
    return proc.stdout + proc.stderr


@pytest.mark.timeout(300)
def test_short_run(repo_root, tree, tmp_path):
    """4 iterations of the training config (round robin: one batch of each
    task) on the tree, then its checkpoint through the COCO-Interactive
    point config."""
    module = load_tool('tools/misc/prepare_fixture_data.py')
    work_dir = str(tmp_path / 'work')
    options = [f'{k}={v}' for k, v in module.joint_data_roots(
        tree['root']).items()]
    _run([
        sys.executable, 'tools/train.py', TRAIN, '--work-dir', work_dir,
        '--cfg-options', *options, 'train_cfg.max_iters=4',
        'default_hooks.checkpoint.interval=4',
        'default_hooks.logger.interval=1',
        'train_dataloader.batch_sampler.mode=round_robin',
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False'
    ], repo_root)
    ckpt = osp.join(work_dir, 'iter_4.pth')
    state = torch.load(ckpt, weights_only=True)
    assert state['meta']['iter'] == 4
    scalars = next(
        osp.join(r, f) for r, _, fs in os.walk(work_dir) for f in fs
        if f == 'scalars.json')
    with open(scalars) as f:
        logs = [json.loads(line) for line in f]
    losses = [log for log in logs if 'loss' in log]
    assert [log['iter'] for log in losses] == [1, 2, 3, 4]
    # the mask losses of panoptic / referring / interactive and the
    # next-token loss of vqa (the 4th batch), all finite
    assert 'loss_dice' in losses[0] and 'loss_lm' in losses[3]
    assert all(
        math.isfinite(v) for log in losses for k, v in log.items()
        if k.startswith(('loss', 'd0.')))

    out = _run([
        sys.executable, 'tools/test.py',
        TEST.format('coco-interactive-point'), ckpt, '--work-dir',
        str(tmp_path / 'test'), '--cfg-options',
        f'test_dataloader.dataset.data_root={tree["coco"]}/'
    ], repo_root)
    assert 'Interactive segmentation results' in out
    line = [ln for ln in out.splitlines() if 'Iter(test)' in ln][-1]
    metrics = {k: float(v) for k, v in re.findall(r'(\S+/\S+): (\S+)', line)}
    for key in ('interactive/mIoU', 'interactive/cIoU',
                'interactive/mIoU_point', 'interactive/cIoU_point'):
        assert 0 <= metrics[key] <= 100, (key, metrics)
    assert metrics['interactive/num_regions'] == 47
    assert metrics['interactive/num_skipped'] == 0
