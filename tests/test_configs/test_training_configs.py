# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""The training configs: stage 1 (alignment, paper Tab. 15), stage 2 (joint
training, Tab. 16) and its 9k ablation schedule; the joint training of the
tiny model on the real fixtures, in one process and with 2 CPU processes
through tools/dist_train.sh.

The real configs are only redirected, never rewritten: the fixtures are laid
out under a temporary folder with the file names the configs expect (see
:func:`data_tree`), and only the ``data_root`` of every sub-dataset changes,
the override the README documents.
"""
import importlib.util
import json
import os
import os.path as osp
import socket
import subprocess
import sys
from collections import Counter

import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import InfiniteSampler
from mmengine.runner import Runner

import projects.psalm  # noqa: F401
from config_testing import save_random_checkpoint, tiny_config
from psalm_testing import load_tool
from mmdet.registry import DATA_SAMPLERS, DATASETS, MODELS
from mmdet.utils import register_all_modules


# the fixture tree with the configs' file names (tools/misc)
fixture_data = load_tool('tools/misc/prepare_fixture_data.py')

STAGE1 = 'configs/psalm_swin-b_phi-1.5_16xb8-4650it_cc3m-align.py'
STAGE2 = ('configs/psalm_swin-b_phi-1.5_16xb4-56k_'
          'coco-panoptic-refcoco-interactive-llava.py')
STAGE2_9K = ('configs/psalm_swin-b_phi-1.5_16xb4-9k_'
             'coco-panoptic-refcoco-interactive-llava.py')
ALIASES = {'configs/psalm_align.py': STAGE1, 'configs/psalm_joint.py': STAGE2}
DATASET_BASES = [
    f'configs/_base_/datasets/{name}.py'
    for name in ('coco_panoptic', 'refcoco', 'coco_interactive',
                 'llava_instruct', 'cc3m_caption', 'psalm_joint')
]
SCHEDULE1 = 'configs/_base_/schedules/adamw-cosine_4650it_stage1.py'
# sub-dataset order of psalm_joint.py and the task of each
JOINT_TASKS = ('panoptic', 'referring', 'interactive', 'vqa')
ITERS = 8

# A hook that records the task(s) and losses of every training batch, logs
# them and writes them per rank; a file so that tools/train.py subprocesses
# can import it (custom_imports).
PROBE = '''
import json
import os.path as osp

from mmengine.hooks import Hook

from mmdet.registry import HOOKS


@HOOKS.register_module(force=True)
class TaskProbeHook(Hook):
    """Record the tasks and losses of every training batch."""

    def __init__(self):
        self.records = []

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        samples = data_batch['data_samples']
        tasks = sorted({s.metainfo['prompt']['task'] for s in samples})
        losses = {k: float(getattr(v, 'detach', lambda: v)())
                  for k, v in outputs.items()}
        self.records.append(
            dict(iter=runner.iter, tasks=tasks, batch=len(samples),
                 losses=losses))
        runner.logger.info(f'task probe: iter {runner.iter} tasks {tasks}')

    def after_train(self, runner):
        with open(osp.join(runner.work_dir,
                           f'task_probe_rank{runner.rank}.json'), 'w') as f:
            json.dump(self.records, f)
'''


# ----------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------
def load(repo_root, config):
    return Config.fromfile(osp.join(repo_root, config))


@pytest.fixture(scope='module')
def data_tree(tmp_path_factory):
    """The README's data/ tree made of the test fixtures (symlinks) and a
    COCO-Interactive json built by the converter from the real COCO sample,
    by tools/misc/prepare_fixture_data.py.

    Returns the root of the tree (the ``data/`` of the README).
    """
    return fixture_data.prepare(str(tmp_path_factory.mktemp('data')))['root']


def joint_data_roots(root):
    """The README's --cfg-options that move the joint data to ``root``."""
    return fixture_data.joint_data_roots(root)


def tiny_joint_config(repo_root, work_dir, root=None):
    """tiny_config of configs/psalm_joint.py, data in ``root`` (default: the
    config's data/), batch 2, 8 iterations, tasks in round robin (every
    task twice)."""
    cfg = tiny_config('configs/psalm_joint.py', repo_root)
    if root is not None:
        cfg.merge_from_dict(joint_data_roots(root))
    cfg.train_dataloader.update(
        batch_size=2, num_workers=0, persistent_workers=False)
    cfg.train_dataloader.batch_sampler.mode = 'round_robin'
    cfg.train_cfg.max_iters = ITERS
    cfg.default_hooks.logger.interval = 1
    cfg.load_from = None  # the tiny model starts from random weights
    cfg.randomness = dict(seed=0)
    cfg.work_dir = work_dir
    return cfg


def trainable(model):
    return {name for name, p in model.named_parameters() if p.requires_grad}


def build_tiny_model(cfg):
    register_all_modules()
    torch.manual_seed(0)
    return MODELS.build(cfg.model)


def check_schedule(cfg, lr, max_iters, warmup, batch_size):
    assert cfg.optim_wrapper.type == 'OptimWrapper'
    optimizer = cfg.optim_wrapper.optimizer
    assert optimizer.type == 'AdamW'
    assert optimizer.lr == lr and optimizer.weight_decay == 0.0
    assert tuple(optimizer.betas) == (0.9, 0.999)
    assert cfg.train_cfg.type == 'IterBasedTrainLoop'
    assert cfg.train_cfg.max_iters == max_iters
    warm, cosine = cfg.param_scheduler
    assert warm.type == 'LinearLR' and not warm.by_epoch
    assert (warm.begin, warm.end) == (0, warmup)
    assert cosine.type == 'CosineAnnealingLR' and not cosine.by_epoch
    assert (cosine.begin, cosine.end) == (warmup, max_iters)
    assert cosine.eta_min == 0.0
    assert cfg.train_dataloader.batch_size == batch_size
    assert cfg.auto_scale_lr.base_batch_size == 16 * batch_size
    # training only: a ValLoop without a val dataloader stops the Runner
    for key in ('val', 'test'):
        assert cfg.get(f'{key}_cfg') is None
        assert cfg.get(f'{key}_dataloader') is None


def check_losses(losses):
    assert losses
    for name, value in losses.items():
        assert torch.isfinite(torch.tensor(value)), name


def check_task_records(records):
    """One task per batch, the round-robin order, finite losses."""
    assert [r['iter'] for r in records] == list(range(ITERS))
    expected = [JOINT_TASKS[i % 4] for i in range(ITERS)]
    assert [r['tasks'] for r in records] == [[t] for t in expected]
    assert all(r['batch'] == 2 for r in records)
    for record in records:
        check_losses(record['losses'])
        # conversation batches train the LM only, the others the masks
        if record['tasks'] == ['vqa']:
            assert 'loss_lm' in record['losses']
        else:
            assert any('mask' in k for k in record['losses'])


# ----------------------------------------------------------------------
# parsing and hyper-parameters
# ----------------------------------------------------------------------
def test_every_config_parses(repo_root):
    for config in (SCHEDULE1, *DATASET_BASES):
        load(repo_root, config)
    for config in (STAGE1, STAGE2, STAGE2_9K, *ALIASES):
        cfg = load(repo_root, config)
        # from default_runtime.py: the PSALM registry and mmdet's scope
        assert cfg.custom_imports.imports == ['projects.psalm']
        assert cfg.default_scope == 'mmdet'
        assert cfg.model.type == 'PSALM'
    # the aliases are their long configs
    for alias, config in ALIASES.items():
        assert load(repo_root, alias).to_dict() == load(repo_root,
                                                        config).to_dict()


def test_stage1_alignment(repo_root):
    cfg = load(repo_root, STAGE1)
    check_schedule(cfg, lr=2e-3, max_iters=4650, warmup=140, batch_size=8)
    loader = cfg.train_dataloader
    assert loader.sampler.type == 'InfiniteSampler'
    assert loader.dataset.type == 'LLaVACaptionDataset'
    assert osp.join(loader.dataset.data_root,
                    loader.dataset.ann_file) == 'data/cc3m/chat.json'
    model = cfg.model
    assert model.language_model.pretrained == 'checkpoints/phi-1_5'
    # Swin-B and the mask generator from mmdet's Mask2Former checkpoint
    mask2former = model.backbone.init_cfg.checkpoint
    assert mask2former.startswith('checkpoints/mask2former_swin-b')
    assert model.backbone.init_cfg.type == 'Pretrained'
    assert model.backbone.convert_weights is False
    assert model.mask_generator.init_cfg == dict(
        type='Pretrained', checkpoint=mask2former, prefix='panoptic_head.')
    assert cfg.load_from is None

    # only the projector is trainable
    tiny = build_tiny_model(tiny_config(STAGE1, repo_root))
    names = trainable(tiny)
    assert names and all(n.startswith('projector.') for n in names)
    assert names == {n for n, _ in tiny.named_parameters()
                     if n.startswith('projector.')}
    tiny.train()
    assert tiny.projector.training and not tiny.language_model.training
    assert not tiny.backbone.training and not tiny.mask_generator.training


def test_stage1_initialises_from_mask2former(repo_root, tmp_path):
    """The stage-1 init_cfgs load an mmdet Mask2Former checkpoint (made
    here from a tiny model of the same layout): every Swin weight and every
    mask-generator weight that Mask2FormerHead has."""
    cfg = tiny_config(STAGE1, repo_root)
    real = load(repo_root, STAGE1).model
    source = build_tiny_model(cfg)
    source.init_weights()
    state = {f'backbone.{k}': v for k, v in
             source.backbone.state_dict().items()}
    head = {k: v for k, v in source.mask_generator.state_dict().items()
            if not k.startswith('cond_mlps.')}
    state.update({f'panoptic_head.{k}': v for k, v in head.items()})
    state['panoptic_head.cls_embed.weight'] = torch.zeros(134, 32)
    ckpt = str(tmp_path / 'mask2former.pth')
    torch.save({'state_dict': state, 'meta': {}}, ckpt)

    cfg.model.backbone.convert_weights = real.backbone.convert_weights
    cfg.model.backbone.init_cfg = dict(real.backbone.init_cfg,
                                       checkpoint=ckpt)
    cfg.model.mask_generator.init_cfg = dict(real.mask_generator.init_cfg,
                                             checkpoint=ckpt)
    torch.manual_seed(1)  # other random weights than the source
    model = MODELS.build(cfg.model)
    model.init_weights()
    for prefix, part, keys in (('backbone.', model.backbone, None),
                               ('panoptic_head.', model.mask_generator,
                                head)):
        loaded = part.state_dict()
        for key in keys or loaded:
            assert torch.equal(loaded[key], state[prefix + key]), key


def test_stage2_joint_training(repo_root):
    cfg = load(repo_root, STAGE2)
    check_schedule(cfg, lr=4e-5, max_iters=56000, warmup=1680, batch_size=4)
    assert cfg.model.frozen_modules == ('backbone', )
    assert cfg.find_unused_parameters is True
    assert cfg.load_from == 'work_dirs/psalm_align/iter_4650.pth'
    assert [h.type for h in cfg.custom_hooks] == [
        'SamplerResumeHook', 'SafeCheckpointHook'
    ]
    assert cfg.default_hooks.checkpoint.interval == 5000

    loader = cfg.train_dataloader
    assert loader.num_workers == 4 and loader.persistent_workers
    assert loader.sampler.type == 'InfiniteSampler'
    assert loader.batch_sampler == dict(
        type='MultiTaskBatchSampler', task_ratios=[1, 1, 1, 1],
        mode='random')
    panoptic, refcoco, interactive, llava = loader.dataset.datasets
    assert loader.dataset.type == 'ConcatDataset'
    assert (panoptic.type, panoptic.task) == ('PSALMCocoPanopticDataset',
                                              'panoptic')
    assert refcoco.type == 'ConcatDataset'
    assert [(d.type, d.split, d.split_file) for d in refcoco.datasets] == [
        ('PSALMRefCocoDataset', 'train', 'refcoco/refs(unc).p'),
        ('PSALMRefCocoDataset', 'train', 'refcoco+/refs(unc).p'),
        ('PSALMRefCocoDataset', 'train', 'refcocog/refs(umd).p'),
    ]
    assert interactive.type == 'COCOInteractiveDataset'
    assert interactive.prompt_type is None
    assert llava.type == 'LLaVAInstructDataset'
    for dataset in (panoptic, *refcoco.datasets, interactive, llava):
        resize = [t for t in dataset.pipeline if t.type == 'Resize']
        assert resize == [dict(type='Resize', scale=(1024, 1024),
                               keep_ratio=True)]
        assert dataset.pipeline[-1].type == 'PackPSALMInputs'
    preprocessor = cfg.model.data_preprocessor
    assert preprocessor.fixed_size == (1024, 1024)
    assert preprocessor.img_pad_value == 128

    tiny = build_tiny_model(tiny_config(STAGE2, repo_root))
    names = trainable(tiny)
    assert not any(n.startswith('backbone.') for n in names)
    parts = {n.split('.')[0] for n in names}
    assert parts == {'projector', 'language_model', 'condition_encoder',
                     'mask_generator', 'mask_tokens'}


def test_stage2_9k_ablation(repo_root):
    cfg = load(repo_root, STAGE2_9K)
    check_schedule(cfg, lr=4e-5, max_iters=9000, warmup=270, batch_size=4)
    full = load(repo_root, STAGE2)
    for key in ('model', 'train_dataloader', 'load_from', 'custom_hooks',
                'find_unused_parameters'):
        assert cfg[key] == full[key], key


# ----------------------------------------------------------------------
# the real dataset configs build on the fixture tree
# ----------------------------------------------------------------------
def test_stage1_caption_data_builds(repo_root, data_tree):
    cfg = tiny_config(STAGE1, repo_root)
    cfg.merge_from_dict(
        {'train_dataloader.dataset.data_root':
         osp.join(data_tree, 'cc3m') + '/'})
    register_all_modules()
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    assert len(dataset) == 8
    sample = dataset[0]['data_samples']
    assert sample.metainfo['prompt']['task'] == 'caption'
    assert max(sample.metainfo['img_shape']) == 256


@pytest.mark.timeout(300)
def test_stage1_trains_only_the_projector(repo_root, data_tree, tmp_path):
    """Two stage-1 iterations of the tiny model on the caption fixture: the
    projector moves, every other weight stays as loaded."""
    cfg = tiny_config(STAGE1, repo_root)
    cfg.merge_from_dict({
        'train_dataloader.dataset.data_root':
        osp.join(data_tree, 'cc3m') + '/',
        'train_dataloader.batch_size': 2,
        'train_dataloader.num_workers': 0,
        'train_dataloader.persistent_workers': False,
        'train_cfg.max_iters': 2,
    })
    start = str(tmp_path / 'start.pth')
    save_random_checkpoint(cfg, start)
    cfg.load_from = start
    cfg.work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(cfg)
    runner.train()
    before = torch.load(start, weights_only=True)['state_dict']
    moved = {
        name
        for name, param in runner.model.named_parameters()
        if not torch.equal(param.detach(), before[name])
    }
    assert moved == {n for n, _ in runner.model.named_parameters()
                     if n.startswith('projector.')}


def test_joint_data_builds(repo_root, data_tree):
    cfg = tiny_joint_config(repo_root, None, data_tree)
    register_all_modules()
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    # 2 panoptic images, 3 x 5 train refs, 2 interactive images, 5 records
    assert [len(d) for d in dataset.datasets] == [2, 15, 2, 5]
    # mmdet's ConcatDataset looks up every metainfo key (but ignore_keys) of
    # every sub-dataset in the first one's, in set order: all must be there
    first = set(dataset.datasets[0].metainfo)
    ignored = set(cfg.train_dataloader.dataset.ignore_keys)
    for sub in dataset.datasets[1:]:
        assert set(sub.metainfo) - ignored <= first
    for i, task in enumerate(JOINT_TASKS):
        start = dataset.cumulative_sizes[i - 1] if i else 0
        sample = dataset[start]['data_samples']
        assert sample.metainfo['prompt']['task'] == task
        assert max(sample.metainfo['img_shape']) == 256

    # the config's own (random) schedule: single-task batches, all four
    # tasks in 1:1:1:1
    sampler = DATA_SAMPLERS.build(
        dict(load(repo_root, STAGE2).train_dataloader.batch_sampler),
        default_args=dict(
            sampler=InfiniteSampler(dataset, shuffle=True, seed=0),
            batch_size=2))
    counts = Counter()
    for _, batch in zip(range(400), sampler):
        sources = {dataset._get_ori_dataset_idx(i)[0] for i in batch}
        assert len(sources) == 1
        counts[sources.pop()] += 1
    assert sorted(counts) == [0, 1, 2, 3]
    assert all(70 <= n <= 130 for n in counts.values()), counts


# ----------------------------------------------------------------------
# joint training of the tiny model
# ----------------------------------------------------------------------
def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return str(sock.getsockname()[1])


def probe_module(folder):
    path = osp.join(folder, 'psalm_task_probe.py')
    with open(path, 'w') as f:
        f.write(PROBE)
    return path


@pytest.mark.timeout(300)
def test_joint_training_one_process(repo_root, data_tree, tmp_path):
    spec = importlib.util.spec_from_file_location(
        'psalm_task_probe', probe_module(str(tmp_path)))
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    work_dir = str(tmp_path / 'work')
    cfg = tiny_joint_config(repo_root, work_dir, data_tree)
    cfg.custom_hooks = cfg.custom_hooks + [dict(type='TaskProbeHook')]
    runner = Runner.from_cfg(cfg)
    runner.train()
    with open(osp.join(work_dir, 'task_probe_rank0.json')) as f:
        check_task_records(json.load(f))
    # the last checkpoint holds the sampler seed of SamplerResumeHook
    state = torch.load(osp.join(work_dir, f'iter_{ITERS}.pth'),
                       weights_only=True)
    assert state['meta']['iter'] == ITERS
    assert isinstance(state['meta']['sampler_seed'], int)


@pytest.mark.timeout(600)
def test_joint_training_two_processes(repo_root, data_tree, tmp_path):
    probe_module(str(tmp_path))
    work_dir = str(tmp_path / 'dist')
    # the config as it ships (real data paths), tiny and short; the data
    # roots are moved on the command line as the README says
    cfg = tiny_joint_config(repo_root, work_dir)
    cfg.custom_imports.imports = ['projects.psalm', 'psalm_task_probe']
    cfg.custom_hooks = cfg.custom_hooks + [dict(type='TaskProbeHook')]
    config = str(tmp_path / 'tiny_psalm_joint.py')
    cfg.dump(config)
    options = [f'{k}={v}' for k, v in joint_data_roots(data_tree).items()]
    env = dict(os.environ, PYTHON=sys.executable, PORT=free_port(),
               CUDA_VISIBLE_DEVICES='', PYTHONPATH=str(tmp_path))
    proc = subprocess.run(
        ['bash', 'tools/dist_train.sh', config, '2', '--work-dir', work_dir,
         '--cfg-options', *options],
        cwd=repo_root, env=env, capture_output=True, text=True, timeout=540)
    if proc.returncode != 0:
        raise AssertionError(f'tools/dist_train.sh failed ({proc.returncode})'
                             f':\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}')
    log_file = next(osp.join(r, f) for r, _, fs in os.walk(work_dir)
                    for f in fs if f.endswith('.log'))
    log = open(log_file).read()
    assert 'Distributed training: True' in log
    assert 'GPU number: 2' in log  # mmengine's name for the world size
    for task in JOINT_TASKS:
        assert f"tasks ['{task}']" in log, task
    # both ranks trained the same task at every step
    records = []
    for rank in range(2):
        with open(osp.join(work_dir, f'task_probe_rank{rank}.json')) as f:
            records.append(json.load(f))
        check_task_records(records[rank])
    assert [r['tasks'] for r in records[0]] == [r['tasks'] for r in
                                                records[1]]
    assert osp.isfile(osp.join(work_dir, f'iter_{ITERS}.pth'))
