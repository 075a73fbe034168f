# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Distributed training with the speed settings, on 2 CPU processes (gloo).

* DDP (mmengine's ``MMDistributedDataParallel``, ``find_unused_parameters``
  as configs/psalm_joint.py) with the LLM's non-reentrant gradient
  checkpointing: no "marked ready twice" error, and every rank holds the
  same averaged gradients and, after the step, the same weights;
* the FSDP config runs training steps through mmengine's ``FlexibleRunner``
  on the real (fixture) joint data;
* the DeepSpeed ZeRO-2 config runs a step where DeepSpeed and a GPU exist,
  and is skipped with its reason elsewhere.
"""
import importlib.util
import json
import os
import os.path as osp
import socket
import sys
import traceback
from typing import Optional

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.config import Config

JOINT = 'configs/psalm_joint.py'
DEEPSPEED = ('configs/psalm_swin-b_phi-1.5_16xb4-56k_coco-panoptic-'
             'refcoco-interactive-llava_deepspeed-zero2.py')
FSDP = ('configs/psalm_swin-b_phi-1.5_16xb4-56k_coco-panoptic-'
        'refcoco-interactive-llava_fsdp.py')
CHECKPOINTING = {'model.language_model.gradient_checkpointing': True}
SENTENCES = ('the big person', 'the horse on the right of the man')


def _free_port() -> str:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return str(sock.getsockname()[1])


def _init_process(rank: int, world_size: int, port: str,
                  repo_root: str) -> None:
    """Environment of a torchrun rank and its gloo group."""
    for path in (repo_root, osp.join(repo_root, 'tests')):
        if path not in sys.path:
            sys.path.insert(0, path)
    os.environ.update(
        MASTER_ADDR='127.0.0.1', MASTER_PORT=port, RANK=str(rank),
        LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
        CUDA_VISIBLE_DEVICES='')
    torch.set_num_threads(1)
    dist.init_process_group('gloo', rank=rank, world_size=world_size)


def _spawn(fn, *args) -> None:
    """Run ``fn(rank, 2, port, *args)`` in 2 fresh processes."""
    mp.spawn(fn, args=(2, _free_port(), *args), nprocs=2, join=True)


def _all_equal(tensor: torch.Tensor) -> bool:
    """Whether ``tensor`` is bit-identical on every rank."""
    gathered = [torch.empty_like(tensor)
                for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, tensor)
    return all(torch.equal(gathered[0], t) for t in gathered[1:])


# ----------------------------------------------------------------------
# DDP + non-reentrant gradient checkpointing
# ----------------------------------------------------------------------
def _ddp_part(rank: int, repo_root: str, data_root: str) -> dict:
    """DDP steps of the tiny PSALM with gradient checkpointing on."""
    from mmengine.model import MMDistributedDataParallel
    from mmengine.optim import build_optim_wrapper
    from psalm_testing import RealSample, build_tiny_psalm
    torch.manual_seed(0)  # the same initial weights on both ranks
    model = build_tiny_psalm(repo_root, CHECKPOINTING)
    calls = []
    model.language_model.llm.model.layers[0].mlp.register_forward_pre_hook(
        lambda *_: calls.append(1))
    ddp = MMDistributedDataParallel(
        module=model, device_ids=None, broadcast_buffers=False,
        find_unused_parameters=True)
    wrapper = build_optim_wrapper(ddp, dict(
        type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-3)))
    sample = RealSample(data_root)
    record = dict(rank=rank)

    # 1) one referring batch per rank, different sentences
    batch = sample.batch('referring', 2)
    for data_sample in batch['data_samples']:
        data_sample.set_metainfo(dict(prompt=dict(
            task='referring', sentences=[SENTENCES[rank]])))
    torch.manual_seed(rank)
    ddp.train()
    data = model.data_preprocessor(batch, True)
    losses = ddp(**data, mode='loss')
    loss, _ = model.parse_losses(losses)
    loss.backward()
    record['checkpointed_runs'] = len(calls)  # forward + recompute
    grads = [p.grad.detach().flatten() for p in model.parameters()
             if p.grad is not None]
    record['num_grads'] = len(grads)
    record['grads_equal'] = _all_equal(torch.cat(grads))
    record['local_loss'] = float(loss)
    wrapper.step()
    wrapper.zero_grad()
    record['weights_equal'] = _all_equal(
        torch.cat([p.detach().flatten() for p in model.parameters()]))

    # 2) more steps through train_step, other tasks (other unused
    # parameters): the reducer and the checkpointed layers keep working
    for task in ('vqa', 'interactive'):
        log_vars = ddp.train_step(sample.batch(task, 2), wrapper)
        record.setdefault('losses', {})[task] = float(log_vars['loss'])
    record['weights_equal_after'] = _all_equal(
        torch.cat([p.detach().flatten() for p in model.parameters()]))
    return record


@pytest.mark.timeout(300)
def test_ddp_step_with_gradient_checkpointing(distributed_records):
    records = _part(distributed_records, 'ddp')
    for record in records:
        assert record['checkpointed_runs'] == 2  # checkpointing was on
        assert record['grads_equal'] and record['weights_equal']
        assert record['weights_equal_after']
        for value in record['losses'].values():
            assert torch.isfinite(torch.tensor(value))
    # different data per rank, yet one averaged gradient
    assert records[0]['local_loss'] != records[1]['local_loss']
    assert records[0]['num_grads'] == records[1]['num_grads']


# ----------------------------------------------------------------------
# FlexibleRunner strategies
# ----------------------------------------------------------------------
def _strategy_config(repo_root: str, config: str, data_tree: str,
                     work_dir: str, iters: int) -> Config:
    """The tiny model in ``config`` on the fixture data: batch 2, no
    workers, ``iters`` iterations, tasks in round robin."""
    from config_testing import tiny_config
    from psalm_testing import load_tool
    cfg = tiny_config(config, repo_root)
    fixture_data = load_tool('tools/misc/prepare_fixture_data.py')
    cfg.merge_from_dict(fixture_data.joint_data_roots(data_tree))
    loader = cfg.train_dataloader
    loader.update(batch_size=2, num_workers=0, persistent_workers=False,
                  pin_memory=False)
    loader.pop('prefetch_factor', None)  # only valid with workers
    loader.batch_sampler.mode = 'round_robin'
    cfg.train_cfg.max_iters = iters
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint.interval = iters
    cfg.load_from = None
    cfg.randomness = dict(seed=0)
    cfg.work_dir = work_dir
    return cfg


def _fsdp_part(repo_root: str, data_tree: str, work_dir: str) -> dict:
    """Two training iterations of the FSDP config (FlexibleRunner)."""
    from mmengine.runner import FlexibleRunner
    from torch.distributed.fsdp import FullyShardedDataParallel

    import projects.psalm  # noqa: F401
    from projects.psalm.engine.runtime import prepare_config
    cfg = _strategy_config(repo_root, FSDP, data_tree, work_dir, 2)
    cfg = prepare_config(cfg, FSDP, 'pytorch', None, None)
    # CPU only: mmengine's AmpOptimWrapper asserts a GPU, and FSDP takes
    # the device explicitly (mmengine passes the local rank, a CUDA index)
    cfg.optim_wrapper.type = 'OptimWrapper'
    assert cfg.optim_wrapper.use_fsdp is True
    for key in ('dtype', 'loss_scale', 'use_fsdp'):
        cfg.optim_wrapper.pop(key)
    cfg.strategy.model_wrapper.device_id = torch.device('cpu')
    # the config's full state dict, without offload_to_cpu: FSDP1 of torch
    # 2.13 segfaults offloading CPU parameters to the CPU
    assert cfg.strategy.state_dict_cfg == 'full'
    cfg.strategy.state_dict_cfg = dict(
        state_dict_type='FULL_STATE_DICT',
        state_dict_config=dict(
            type='FullStateDictConfig', offload_to_cpu=False,
            rank0_only=True),
        optim_state_dict_config=dict(
            type='FullOptimStateDictConfig', offload_to_cpu=False,
            rank0_only=True))
    runner = FlexibleRunner.from_cfg(cfg)
    runner.train()
    return dict(
        iter=runner.iter,
        fsdp=isinstance(runner.model, FullyShardedDataParallel),
        sharding=str(runner.model.sharding_strategy),
        loss=float(runner.message_hub.get_scalar('train/loss').current()))


def _worker(rank: int, world_size: int, port: str, repo_root: str,
            data_root: str, data_tree: str, out_dir: str) -> None:
    """One rank: the DDP part, then the FSDP part, in one process group
    (one start-up for both); each part's error is recorded, not raised."""
    _init_process(rank, world_size, port, repo_root)
    record = {}
    try:
        for name, part in (
                ('ddp', lambda: _ddp_part(rank, repo_root, data_root)),
                ('fsdp', lambda: _fsdp_part(repo_root, data_tree,
                                            osp.join(out_dir, 'fsdp')))):
            try:
                record[name] = part()
            except Exception:  # reported by the test of that part
                record[name] = dict(error=traceback.format_exc())
            dist.barrier()
    finally:
        with open(osp.join(out_dir, f'rank{rank}.json'), 'w') as f:
            json.dump(record, f)
        dist.destroy_process_group()


@pytest.fixture(scope='module')
def data_tree(repo_root, tmp_path_factory):
    """The README's data/ tree made of the test fixtures."""
    from psalm_testing import load_tool
    fixture_data = load_tool('tools/misc/prepare_fixture_data.py')
    return fixture_data.prepare(str(tmp_path_factory.mktemp('data')))['root']


@pytest.fixture(scope='module')
def distributed_records(repo_root, data_root, data_tree, tmp_path_factory):
    """The records of both ranks of one 2-process gloo run."""
    out_dir = str(tmp_path_factory.mktemp('distributed'))
    os.makedirs(osp.join(out_dir, 'fsdp'))
    _spawn(_worker, repo_root, data_root, data_tree, out_dir)
    records = []
    for rank in range(2):
        with open(osp.join(out_dir, f'rank{rank}.json')) as f:
            records.append(dict(json.load(f), out_dir=out_dir))
    return records


def _part(records: list, name: str) -> list:
    """One part's records; its traceback fails the test."""
    for record in records:
        if 'error' in record[name]:
            pytest.fail(f'{name} failed on rank {records.index(record)}:\n'
                        f'{record[name]["error"]}')
    return [record[name] for record in records]


def test_strategy_configs_inherit_the_joint_config(repo_root):
    joint = Config.fromfile(osp.join(repo_root, JOINT))
    for config, strategy, wrapper in (
            (DEEPSPEED, 'DeepSpeedStrategy', 'DeepSpeedOptimWrapper'),
            (FSDP, 'FSDPStrategy', 'AmpOptimWrapper')):
        cfg = Config.fromfile(osp.join(repo_root, config))
        assert cfg.runner_type == 'FlexibleRunner'
        assert cfg.strategy.type == strategy
        assert cfg.optim_wrapper.type == wrapper
        # the schedule, model and data of the joint config
        assert cfg.optim_wrapper.optimizer == joint.optim_wrapper.optimizer
        for key in ('model', 'param_scheduler', 'train_cfg', 'load_from',
                    'custom_hooks'):
            assert cfg[key] == joint[key], (config, key)
        assert cfg.train_dataloader.dataset == joint.train_dataloader.dataset
        assert cfg.train_dataloader.pin_memory
        assert cfg.train_dataloader.num_workers >= \
            joint.train_dataloader.num_workers
    deepspeed = Config.fromfile(osp.join(repo_root, DEEPSPEED))
    assert deepspeed.strategy.zero_optimization.stage == 2
    assert deepspeed.strategy.config.torch_autocast == dict(
        enabled=True, dtype='bfloat16')
    assert deepspeed.default_hooks.non_finite is None
    fsdp = Config.fromfile(osp.join(repo_root, FSDP))
    assert fsdp.strategy.model_wrapper.sharding_strategy == 'SHARD_GRAD_OP'
    assert fsdp.strategy.model_wrapper.use_orig_params  # frozen Swin
    assert fsdp.optim_wrapper.dtype == 'bfloat16'


@pytest.mark.timeout(300)
def test_fsdp_config_runs_steps_on_cpu(repo_root, distributed_records):
    for record in _part(distributed_records, 'fsdp'):
        assert record['iter'] == 2
        assert record['fsdp']
        assert record['sharding'].endswith('SHARD_GRAD_OP')
        assert torch.isfinite(torch.tensor(record['loss']))
    # rank 0 wrote one full state dict that loads without FSDP
    from config_testing import tiny_config

    import projects.psalm  # noqa: F401
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    work_dir = osp.join(distributed_records[0]['out_dir'], 'fsdp')
    state = torch.load(osp.join(work_dir, 'iter_2.pth'), weights_only=True)
    assert state['meta']['iter'] == 2
    model = MODELS.build(tiny_config(FSDP, repo_root).model)
    model.load_state_dict(state['state_dict'], strict=True)


def _deepspeed_skip_reason() -> Optional[str]:
    if importlib.util.find_spec('deepspeed') is None:
        return ('deepspeed is not installed (pip install deepspeed; it is '
                'not part of requirements/)')
    if not torch.cuda.is_available():
        return ('DeepSpeed ZeRO needs a CUDA device here (its CPU '
                'accelerator needs Intel oneCCL bindings)')
    return None


@pytest.mark.timeout(600)
@pytest.mark.skipif(
    _deepspeed_skip_reason() is not None,
    reason=str(_deepspeed_skip_reason()))
def test_deepspeed_zero2_config_runs_a_step(repo_root, data_tree, tmp_path):
    """One GPU process: the config's strategy and one training step."""
    from mmengine.runner import FlexibleRunner

    import projects.psalm  # noqa: F401
    from projects.psalm.engine.runtime import prepare_config
    work_dir = str(tmp_path / 'deepspeed')
    cfg = _strategy_config(repo_root, DEEPSPEED, data_tree, work_dir, 1)
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=_free_port(),
                      RANK='0', LOCAL_RANK='0', WORLD_SIZE='1')
    cfg = prepare_config(cfg, DEEPSPEED, 'pytorch', None, None)
    cfg.env_cfg.dist_cfg.backend = 'nccl'
    runner = FlexibleRunner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 1
    loss = runner.message_hub.get_scalar('train/loss').current()
    assert torch.isfinite(torch.tensor(loss))
