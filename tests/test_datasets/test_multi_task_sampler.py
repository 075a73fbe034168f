# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""MultiTaskBatchSampler: single-task batches, ratios, seeds, resume, DDP."""
import bisect
import itertools
import random
import socket
from types import SimpleNamespace
from typing import List, Sequence
from unittest import mock

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
from mmengine.dataset import BaseDataset
from mmengine.dataset import ConcatDataset as EngineConcatDataset
from mmengine.dataset import InfiniteSampler, pseudo_collate
from mmengine.model import BaseModel
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from torch.utils.data import BatchSampler, DataLoader, SequentialSampler

import projects.psalm  # noqa: F401  (registers the sampler and the hook)
from mmdet.datasets import ConcatDataset as DetConcatDataset
from projects.psalm.datasets import MultiTaskBatchSampler
from projects.psalm.engine.hooks import SamplerResumeHook

TASKS = ('panoptic', 'refcoco', 'interactive', 'llava')


class TaskDataset(BaseDataset):
    """``size`` items that carry their task name; counts ``__getitem__``."""

    def __init__(self, task: str, size: int) -> None:
        self.task = task
        self.size = size
        self.loads = 0
        super().__init__(metainfo=dict(task=(task, )), serialize_data=False)

    def load_data_list(self) -> List[dict]:
        return [dict(local_idx=i) for i in range(self.size)]

    def __getitem__(self, idx: int) -> dict:
        self.loads += 1
        return dict(inputs=torch.full((4, ), float(idx)), task=self.task,
                    local_idx=idx)


def make_concat(sizes: Sequence[int], concat=DetConcatDataset):
    datasets = [TaskDataset(t, n) for t, n in zip(TASKS, sizes)]
    if concat is EngineConcatDataset:
        return concat(datasets, ignore_keys=['task'])
    return concat(datasets)


def make_sampler(dataset, batch_size=4, seed=0, rank=0, world_size=1,
                 shuffle=True, **kwargs) -> MultiTaskBatchSampler:
    with mock.patch('mmengine.dataset.sampler.get_dist_info',
                    return_value=(rank, world_size)):
        sampler = InfiniteSampler(dataset, shuffle=shuffle, seed=seed)
    return MultiTaskBatchSampler(sampler, batch_size, **kwargs)


def take(batch_sampler, n: int) -> List[List[int]]:
    return list(itertools.islice(batch_sampler, n))


def task_of(dataset, idx: int) -> int:
    return bisect.bisect_right(dataset.cumulative_sizes, idx)


def batch_tasks(dataset, batches) -> List[int]:
    """The task of each batch; fails if a batch mixes tasks."""
    tasks = []
    for batch in batches:
        owners = {task_of(dataset, i) for i in batch}
        assert len(owners) == 1, f'batch {batch} mixes tasks {owners}'
        tasks.append(owners.pop())
    return tasks


@pytest.mark.parametrize('concat', [DetConcatDataset, EngineConcatDataset])
def test_single_task_batches(concat):
    dataset = make_concat([5, 7, 3, 9], concat)
    batch_sampler = make_sampler(dataset, batch_size=4)
    batches = take(batch_sampler, 500)
    assert all(len(b) == 4 for b in batches)
    assert set(batch_tasks(dataset, batches)) == {0, 1, 2, 3}
    loader = DataLoader(dataset, batch_sampler=batch_sampler,
                        collate_fn=pseudo_collate)
    for data in itertools.islice(loader, 50):
        assert len(data['task']) == 4 and len(set(data['task'])) == 1
    assert len(batch_sampler) == 6  # ceil(24 samples / 4 per step)


@pytest.mark.parametrize('ratios', [None, [3, 1, 1, 1]])
def test_task_frequencies_follow_ratios(ratios):
    dataset = make_concat([5, 7, 3, 9])
    tasks = batch_tasks(dataset,
                        take(make_sampler(dataset, task_ratios=ratios), 4000))
    expected = np.ones(4) / 4 if ratios is None else np.array(ratios) / 6
    freqs = np.bincount(tasks, minlength=4) / len(tasks)
    # binomial std <= 0.008 at n = 4000: 0.03 is beyond 3.5 sigma
    np.testing.assert_allclose(freqs, expected, atol=0.03)
    # random, not cyclic: a task is often drawn twice in a row
    assert sum(a == b for a, b in zip(tasks, tasks[1:])) > 500


def test_round_robin_order():
    dataset = make_concat([5, 7, 3, 9])
    tasks = batch_tasks(dataset,
                        take(make_sampler(dataset, mode='round_robin'), 100))
    assert tasks == [t % 4 for t in range(100)]
    sampler = make_sampler(dataset, mode='round_robin',
                           task_ratios=[2, 1, 0, 1.0])
    assert batch_tasks(dataset, take(sampler, 12)) == [0, 0, 1, 3] * 3


def test_determinism_and_seeds():
    dataset = make_concat([50, 70, 30, 90])
    ref = take(make_sampler(dataset, seed=7), 300)
    assert take(make_sampler(dataset, seed=7), 300) == ref
    other = take(make_sampler(dataset, seed=8), 300)
    assert batch_tasks(dataset, other) != batch_tasks(dataset, ref)
    assert other != ref
    # round_robin: same schedule for every seed, but other shuffles
    rr7 = take(make_sampler(dataset, seed=7, mode='round_robin'), 8)
    rr8 = take(make_sampler(dataset, seed=8, mode='round_robin'), 8)
    assert batch_tasks(dataset, rr7) == batch_tasks(dataset, rr8)
    assert rr7 != rr8
    # without shuffle each task's stream is its sub-dataset in order
    plain = take(make_sampler(dataset, shuffle=False, mode='round_robin'), 8)
    assert plain[:4] == [[0, 1, 2, 3], [50, 51, 52, 53],
                         [120, 121, 122, 123], [150, 151, 152, 153]]
    assert plain[4] == [4, 5, 6, 7]


@pytest.mark.parametrize('mode', ['random', 'round_robin'])
def test_fast_forward_equals_uninterrupted_and_loads_nothing(mode):
    dataset = make_concat([50, 70, 3, 90])
    ref = take(make_sampler(dataset, mode=mode), 1600)
    for start in (1, 137, 1023, 1024, 1500):  # blocks of 1024 steps
        resumed = make_sampler(dataset, mode=mode)
        resumed.set_start_step(start)
        assert take(resumed, 100) == ref[start:start + 100]
        assert take(resumed, 3) == ref[start:start + 3]  # re-iterable
    # fast-forwarding loads no item: only the 10 batches taken are loaded
    resumed = make_sampler(dataset, mode=mode)
    resumed.set_start_step(1500)
    loader = DataLoader(dataset, batch_sampler=resumed,
                        collate_fn=pseudo_collate)
    offsets = dict(zip(TASKS, [0] + list(dataset.cumulative_sizes[:-1])))
    got = [[offsets[d['task'][0]] + i for i in d['local_idx']]
           for d in itertools.islice(loader, 10)]
    assert got == ref[1500:1510]
    assert sum(d.loads for d in dataset.datasets) == 10 * 4
    # the seed can be replaced on resume (the hook restores the run's seed)
    reseeded = make_sampler(dataset, seed=99, mode=mode)
    reseeded.set_start_step(200, seed=0)
    assert take(reseeded, 20) == ref[200:220]


def test_two_simulated_ranks_share_tasks_and_split_indices():
    sizes = [16, 24, 8, 40]  # multiples of batch_size * world_size = 4
    dataset = make_concat(sizes)
    ranks = [
        take(make_sampler(dataset, batch_size=2, rank=r, world_size=2), 400)
        for r in range(2)
    ]
    tasks = [batch_tasks(dataset, batches) for batches in ranks]
    assert tasks[0] == tasks[1]
    for b0, b1 in zip(*ranks):
        assert not set(b0) & set(b1)
    offsets = [0] + list(dataset.cumulative_sizes[:-1])
    for task, size in enumerate(sizes):
        steps = [s for s, t in enumerate(tasks[0]) if t == task]
        per_pass = size // 4  # steps of this task that cover its data once
        assert len(steps) >= 2 * per_pass
        for p in range(2):
            seen = [i for s in steps[p * per_pass:(p + 1) * per_pass]
                    for r in range(2) for i in ranks[r][s]]
            assert sorted(seen) == list(range(offsets[task],
                                              offsets[task] + size))


def test_sub_dataset_smaller_than_a_batch_wraps_around():
    dataset = make_concat([3, 50])
    batch_sampler = make_sampler(dataset, batch_size=4, mode='round_robin',
                                 task_ratios=[1, 1])
    small = take(batch_sampler, 6)[::2]  # the task-0 batches
    stream = [i for batch in small for i in batch]
    assert len(stream) == 12
    for p in range(4):  # every pass over the 3 items is a permutation
        assert sorted(stream[3 * p:3 * p + 3]) == [0, 1, 2]


def test_bad_input_raises():
    dataset = make_concat([5, 7, 3, 9])
    with pytest.raises(TypeError, match='ConcatDataset'):
        make_sampler(TaskDataset('panoptic', 5))
    with pytest.raises(TypeError, match='seed'):
        MultiTaskBatchSampler(SequentialSampler(dataset), 4)
    with pytest.raises(ValueError, match='3 entries'):
        make_sampler(dataset, task_ratios=[1, 1, 1])
    with pytest.raises(ValueError, match='empty'):
        make_sampler(make_concat([5, 0, 3, 9]))
    for ratios in ([1, -1, 1, 1], [0, 0, 0, 0], [1, float('nan'), 1, 1]):
        with pytest.raises(ValueError, match='non-negative'):
            make_sampler(dataset, task_ratios=ratios)
    with pytest.raises(ValueError, match='integer'):
        make_sampler(dataset, task_ratios=[1.5, 1, 1, 1], mode='round_robin')
    with pytest.raises(ValueError, match='mode'):
        make_sampler(dataset, mode='shuffle')
    with pytest.raises(ValueError, match='batch_size'):
        make_sampler(dataset, batch_size=0)
    with pytest.raises(ValueError, match='non-negative'):
        make_sampler(dataset).set_start_step(-1)
    hook = SamplerResumeHook()
    plain = BatchSampler(SequentialSampler(dataset), 4, drop_last=True)
    runner = SimpleNamespace(train_loop=SimpleNamespace(
        dataloader=SimpleNamespace(batch_sampler=plain)))
    with pytest.raises(TypeError, match='set_start_step'):
        hook.before_save_checkpoint(runner, dict(meta={}))
    with pytest.raises(TypeError, match='IterBasedTrainLoop'):
        hook.before_train(runner)


class DrawingDataset(TaskDataset):
    """Every fetch draws from python, numpy and torch (like RefCOCO's random
    expression or COCO-Interactive's random prompt type)."""

    def __getitem__(self, idx: int) -> dict:
        return dict(task=self.task, local_idx=idx,
                    draws=(random.random(), float(np.random.rand()),
                           float(torch.rand(()))))


def loader_draws(num_workers: int, start: int = 0, steps: int = 12,
                 **kwargs) -> list:
    """The random draws of ``steps`` batches from step ``start``."""
    dataset = DetConcatDataset(
        [DrawingDataset(t, n) for t, n in zip(TASKS, [5, 7, 3, 9])])
    batch_sampler = make_sampler(dataset, batch_size=2, **kwargs)
    batch_sampler.set_start_step(start)
    loader = DataLoader(dataset, batch_sampler=batch_sampler,
                        num_workers=num_workers, collate_fn=pseudo_collate,
                        multiprocessing_context='fork'
                        if num_workers else None)
    return [(data['local_idx'], data['draws'])
            for data in itertools.islice(loader, steps)]


def test_workers_are_reseeded_per_batch():
    """The draws of a batch depend on (seed, step, rank) only: the same with
    1 or 2 workers, and when the loader starts at a later step (a resumed
    run's fresh workers)."""
    ref = loader_draws(num_workers=1)
    assert loader_draws(num_workers=2) == ref
    assert loader_draws(num_workers=1, start=5, steps=7) == ref[5:]
    # every step draws other numbers; another seed or rank draws others
    # (pseudo_collate gives, per step, 3 draws x 2 samples)
    assert len({d for _, draws in ref for d in draws}) == len(ref) * 3
    assert loader_draws(num_workers=1, seed=1)[0][1] != ref[0][1]
    assert make_sampler(make_concat([5, 7, 3, 9]), rank=1,
                        world_size=2).worker_seed(0) != make_sampler(
                            make_concat([5, 7, 3, 9]), rank=0,
                            world_size=2).worker_seed(0)
    # control: without seed_workers a fresh worker repeats its first draws
    plain = loader_draws(num_workers=1, seed_workers=False)
    assert loader_draws(num_workers=1, start=5, steps=7,
                        seed_workers=False) != plain[5:]
    # in the main process (num_workers=0) nothing is reseeded
    batch = next(iter(make_sampler(make_concat([5, 7, 3, 9]))))
    state = random.getstate()
    list(batch)
    assert random.getstate() == state


class RecordingModel(BaseModel):
    """Records the (task, local indices) of every training batch."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 1)
        self.seen = []

    def forward(self, inputs, task=None, local_idx=None, mode='tensor'):
        self.seen.append((tuple(task), tuple(local_idx)))
        out = self.fc(torch.stack(inputs))
        if mode == 'loss':
            return dict(loss=out.pow(2).mean())
        return out


def make_runner(work_dir, seed, num_workers=0, resume_from=None, hooks=True):
    return Runner(
        model=RecordingModel(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            batch_size=2,
            num_workers=num_workers,
            persistent_workers=num_workers > 0,
            sampler=dict(type='InfiniteSampler', shuffle=True),
            batch_sampler=dict(type='MultiTaskBatchSampler',
                               task_ratios=[1, 1, 1, 1]),
            dataset=make_concat([5, 7, 3, 9])),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=dict(by_epoch=False, max_iters=8),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=4,
                            by_epoch=False),
            logger=dict(type='LoggerHook', interval=100)),
        custom_hooks=([dict(type='SamplerResumeHook')] if hooks else []) +
        [dict(type='SafeCheckpointHook')],
        load_from=resume_from,
        resume=resume_from is not None,
        default_scope='mmdet',
        randomness=dict(seed=seed))


def train(runner: Runner) -> None:
    runner.train()
    if runner.train_dataloader.persistent_workers:
        # Stop the workers now: a runner is freed by the cyclic GC, which at
        # pytest's exit waits 5 s per worker for the dying queues.
        runner.train_dataloader._iterator._shutdown_workers()


@pytest.mark.parametrize('num_workers', [0, 2])
def test_runner_trains_and_resumes_without_loading(tmp_path, num_workers):
    first = make_runner(tmp_path / 'first', seed=1, num_workers=num_workers)
    train(first)
    seen = first.model.seen
    assert len(seen) == 8
    assert all(len(set(tasks)) == 1 for tasks, _ in seen)
    ckpt = str(tmp_path / 'first' / 'iter_4.pth')
    # another runner seed: the hook restores the sampler seed of the run
    resumed = make_runner(tmp_path / 'resumed', seed=2,
                          num_workers=num_workers, resume_from=ckpt)
    train(resumed)
    assert resumed.model.seen == seen[4:]
    if num_workers == 0:  # items are counted in this process
        loads = sum(d.loads for d in resumed.train_dataloader.dataset.datasets)
        assert loads == 4 * 2  # steps 4..7 only
        # control: plain mmengine reloads the 4 skipped batches, and its
        # sampler keeps the new runner's seed
        plain = make_runner(tmp_path / 'plain', seed=2, resume_from=ckpt,
                            hooks=False)
        train(plain)
        assert sum(d.loads
                   for d in plain.train_dataloader.dataset.datasets) == 8 * 2
        assert plain.model.seen != seen[4:]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def _gloo_worker(rank: int, port: int, world_size: int) -> None:
    """One rank: build the dataloader like the Runner, gather, compare."""
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}',
                            rank=rank, world_size=world_size)
    try:
        init_default_scope('mmdet')
        sizes = [16, 24, 8, 40]
        loader = Runner.build_dataloader(
            dict(batch_size=2, num_workers=0,
                 sampler=dict(type='InfiniteSampler', shuffle=True),
                 batch_sampler=dict(type='MultiTaskBatchSampler'),
                 dataset=make_concat(sizes)))  # seed None: synced by rank 0
        batches = [(data['task'], data['local_idx'])
                   for data in itertools.islice(loader, 120)]
        worker_seeds = [
            batch.seed for batch in itertools.islice(loader.batch_sampler,
                                                     120)
        ]
        gathered = [None] * world_size
        dist.all_gather_object(
            gathered, (loader.batch_sampler.seed, batches, worker_seeds))
        assert gathered[0][0] == gathered[1][0], 'sampler seeds differ'
        (_, ranks0, seeds0), (_, ranks1, seeds1) = gathered
        # each rank's workers draw their own random numbers at every step
        assert all(s0 != s1 for s0, s1 in zip(seeds0, seeds1))
        for (t0, i0), (t1, i1) in zip(ranks0, ranks1):
            assert len(set(t0 + t1)) == 1, f'tasks differ: {t0} {t1}'
            assert not set(i0) & set(i1), f'ranks overlap: {i0} {i1}'
        for task, size in zip(TASKS, sizes):
            steps = [s for s, (t, _) in enumerate(ranks0) if t[0] == task]
            seen = [i for s in steps[:size // 4]
                    for i in ranks0[s][1] + ranks1[s][1]]
            assert sorted(seen) == list(range(size)), (task, seen)
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_share_tasks_and_split_indices():
    # The slowest test (each spawned child imports mmdet: ~6 s on 2 idle
    # cores); mp.start_processes(..., start_method='fork') takes 0.2 s.
    mp.spawn(_gloo_worker, args=(_free_port(), 2), nprocs=2)
