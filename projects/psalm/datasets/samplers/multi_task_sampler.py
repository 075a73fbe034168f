# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Single-task batches for PSALM's joint multi-task training.

PSALM trains one task per iteration: the paper (appendix 7) draws the task of
each iteration at random with equal probability, the official code
(``UnifyDatasetSingleDatasetForBatch``) cycles through the tasks (1:1:1:1 by
batch). :class:`MultiTaskBatchSampler` does both, for a ``ConcatDataset`` that
holds one sub-dataset per task.
"""
import math
import random
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch.utils.data import (BatchSampler, ConcatDataset, Sampler,
                              get_worker_info)

from mmdet.registry import DATA_SAMPLERS

__all__ = ['MultiTaskBatchSampler', 'SeededBatch']

# Steps whose tasks are drawn from one random stream in ``random`` mode.
_RANDOM_BLOCK = 1024
# SeedSequence keys that separate the task schedule, the index streams and
# the worker seeds.
_SCHEDULE_KEY, _PERMUTATION_KEY, _WORKER_KEY = 0, 1, 2


class SeededBatch(list):
    """The indices of one batch, with the seed of the batch's random draws.

    A dataloader worker fetches a batch by iterating its indices; when a
    ``SeededBatch`` is iterated inside a worker, it first seeds the worker's
    Python ``random``, numpy global and torch generators with :attr:`seed`.
    The random draws of the dataset while it loads the batch (RefCOCO's
    expression, COCO-Interactive's prompt type, random transforms) then
    depend only on the batch, not on what the worker loaded before, so a
    resumed run (whose workers start afresh) loads the same samples as the
    uninterrupted one. Outside a worker (``num_workers=0``) iterating it
    seeds nothing: the main process's generators are restored on resume by
    :class:`~projects.psalm.engine.hooks.RandomStateHook`.

    Args:
        indices (Iterable[int]): The dataset indices.
        seed (int): Seed in ``[0, 2**32)``.
    """

    def __init__(self, indices: Iterable[int], seed: int) -> None:
        super().__init__(indices)
        self.seed = int(seed)

    def __iter__(self) -> Iterator[int]:
        if get_worker_info() is not None:
            random.seed(self.seed)
            np.random.seed(self.seed)
            torch.manual_seed(self.seed)
        return super().__iter__()


@DATA_SAMPLERS.register_module()
class MultiTaskBatchSampler(BatchSampler):
    """Infinite batches of one task each, the same task on every rank.

    The dataset must be a ``ConcatDataset`` (mmdet's, mmengine's or torch's)
    with one sub-dataset per task. At every step the task is chosen from
    ``task_ratios``, with a schedule that depends only on the seed and the
    step, so all ranks train the same task (and hence the same heads) at the
    same step. Each task has its own infinite index stream: the concatenation
    of seeded shuffles of its sub-dataset, sharded by rank like mmengine's
    ``InfiniteSampler`` (rank ``r`` of ``W`` takes stream positions ``r``,
    ``r + W``, ...). The ranks therefore get disjoint indices within a step and
    within a pass over a sub-dataset, and a sub-dataset smaller than a batch
    simply wraps around. Every batch is full.

    The batch at step ``t`` is a pure function of ``(seed, t)``:
    :meth:`set_start_step` makes the next iteration start at any step at
    the cost of counting the tasks of the earlier steps, without touching the
    data. :class:`~projects.psalm.engine.hooks.SamplerResumeHook` uses it on
    ``--resume``.

    The ``sampler`` (built by mmengine from the ``sampler=`` config) only
    provides the dataset, the seed, ``shuffle`` and the rank and world size;
    its own iteration is not used. mmengine's ``InfiniteSampler`` (or
    ``DefaultSampler``) fits: its seed is the runner's seed, or one synced
    across ranks.

    Example:
        >>> train_dataloader = dict(
        ...     batch_size=4, num_workers=4, persistent_workers=True,
        ...     sampler=dict(type='InfiniteSampler', shuffle=True),
        ...     batch_sampler=dict(type='MultiTaskBatchSampler',
        ...                        task_ratios=[1, 1, 1, 1], mode='random'),
        ...     dataset=dict(type='ConcatDataset',
        ...                  datasets=[panoptic, refcoco, interactive, llava]))

    With ``seed_workers`` (default) each batch is a :class:`SeededBatch`:
    a dataloader worker reseeds its generators from ``(seed, step, rank)``
    before loading it, so the random draws of data loading are also a pure
    function of the step, on every rank and after a resume, whatever the
    number of workers.

    Args:
        sampler (Sampler): A sampler with the attributes ``dataset``,
            ``seed``, ``shuffle``, ``rank`` and ``world_size``, e.g. mmengine's
            ``InfiniteSampler``.
        batch_size (int): Batch size per rank (mmengine passes the
            dataloader's ``batch_size``).
        task_ratios (Sequence[float], optional): Relative frequency of each
            sub-dataset's batches; non-negative, not all zero, integers in
            ``round_robin`` mode. Defaults to None (equal ratios).
        mode (str): ``'random'``: each step draws its task with probabilities
            proportional to ``task_ratios`` (the paper). ``'round_robin'``:
            the steps cycle through the tasks, task ``i`` taking
            ``task_ratios[i]`` consecutive steps per cycle (the official
            code). Defaults to ``'random'``.
        seed_workers (bool): Yield :class:`SeededBatch` batches that reseed
            the dataloader worker loading them. Defaults to True.

    Raises:
        TypeError: The sampler lacks one of the attributes above or has a
            seed that is not an int, or the dataset is not a
            ``ConcatDataset``.
        ValueError: Bad ``task_ratios`` or ``mode``, or an empty sub-dataset.
    """

    def __init__(self,
                 sampler: Sampler,
                 batch_size: int,
                 task_ratios: Optional[Sequence[float]] = None,
                 mode: str = 'random',
                 seed_workers: bool = True) -> None:
        super().__init__(sampler, batch_size, drop_last=True)
        missing = [
            name
            for name in ('dataset', 'seed', 'shuffle', 'rank', 'world_size')
            if not hasattr(sampler, name)
        ]
        if missing:
            raise TypeError(
                f'MultiTaskBatchSampler needs a sampler with the attributes '
                f'{missing}, e.g. dict(type="InfiniteSampler"); got '
                f'{type(sampler).__name__}')
        dataset = sampler.dataset
        if not isinstance(dataset, ConcatDataset):
            raise TypeError(
                'MultiTaskBatchSampler needs a ConcatDataset with one '
                f'sub-dataset per task, got {type(dataset).__name__}')
        self.sizes = [len(sub) for sub in dataset.datasets]
        for i, (sub, size) in enumerate(zip(dataset.datasets, self.sizes)):
            if size == 0:
                raise ValueError(f'sub-dataset {i} ({type(sub).__name__}) of '
                                 'the ConcatDataset is empty')
        self.offsets = np.cumsum([0] + self.sizes[:-1])
        self.shuffle = bool(sampler.shuffle)
        self.rank = sampler.rank
        self.world_size = sampler.world_size

        if mode not in ('random', 'round_robin'):
            raise ValueError(
                f"mode must be 'random' or 'round_robin', got {mode!r}")
        self.mode = mode
        num_tasks = len(self.sizes)
        ratios = np.ones(num_tasks) if task_ratios is None else np.asarray(
            task_ratios, dtype=float)
        if ratios.shape != (num_tasks, ):
            raise ValueError(f'task_ratios has {ratios.size} entries but the '
                             f'ConcatDataset has {num_tasks} sub-datasets')
        if (ratios < 0).any() or not np.isfinite(ratios).all() \
                or ratios.sum() == 0:
            raise ValueError('task_ratios must be finite, non-negative and '
                             f'not all zero, got {list(task_ratios)}')
        if mode == 'round_robin' and (ratios != np.round(ratios)).any():
            raise ValueError('round_robin mode needs integer task_ratios, '
                             f'got {list(task_ratios)}')
        self.task_probs = ratios / ratios.sum()
        # round_robin's cycle, in the official order: task 0 ratios[0] times,
        # then task 1, ...
        self._cycle = np.repeat(np.arange(num_tasks), ratios.astype(int))

        if not isinstance(sampler.seed, (int, np.integer)):
            raise TypeError(f'the sampler seed must be an int, got '
                            f'{sampler.seed!r}')
        self.seed = int(sampler.seed)
        self.seed_workers = seed_workers
        self.start_step = 0

    def set_start_step(self, step: int, seed: Optional[int] = None) -> None:
        """Make the next iteration start at ``step``.

        The batches then equal those that an iteration from step 0 yields from
        ``step`` on; no data is loaded for the skipped steps.

        Args:
            step (int): The first step of the next iteration.
            seed (int, optional): Also replace the seed (e.g. with the one of
                the run being resumed). Defaults to None (keep it).

        Raises:
            ValueError: ``step`` is negative.
        """
        if step < 0:
            raise ValueError(f'step must be non-negative, got {step}')
        self.start_step = int(step)
        if seed is not None:
            self.seed = int(seed)

    def __iter__(self) -> Iterator[List[int]]:
        """Yield the batches of the steps ``start_step, start_step + 1, ...``.

        Yields:
            list[int]: ``batch_size`` ConcatDataset indices of one task.
        """
        step = self.start_step
        period = self._schedule_period()
        block, tasks = -1, np.empty(0, dtype=int)
        uses = self._task_counts(step)
        permutations: Dict[int, Tuple[int, np.ndarray]] = {}
        while True:
            if step // period != block:
                block = step // period
                tasks = self._schedule_block(block)
            task = int(tasks[step % period])
            batch = self._batch(task, int(uses[task]), permutations)
            yield SeededBatch(batch, self.worker_seed(step)) \
                if self.seed_workers else batch
            uses[task] += 1
            step += 1

    def __len__(self) -> int:
        """Steps of a nominal epoch: all samples once over all ranks.

        Iteration is infinite; like the official unified dataset, whose length
        is the sum of the sub-dataset lengths, an epoch is counted as
        ``ceil(sum(sizes) / (batch_size * world_size))`` steps.
        """
        return math.ceil(sum(self.sizes) / (self.batch_size * self.world_size))

    def worker_seed(self, step: int) -> int:
        """The seed of this rank's batch at ``step`` (see SeededBatch).

        Args:
            step (int): The step.

        Returns:
            int: A seed in ``[0, 2**32)``, different for every step and rank.
        """
        return int(
            np.random.SeedSequence(
                [self.seed % (1 << 64), _WORKER_KEY, step,
                 self.rank]).generate_state(1)[0])

    def _rng(self, *keys: int) -> np.random.Generator:
        """A generator for ``keys``, the same on every rank."""
        # SeedSequence needs non-negative entropy.
        return np.random.default_rng([self.seed % (1 << 64), *keys])

    def _schedule_period(self) -> int:
        """Number of steps in one :meth:`_schedule_block`."""
        return len(self._cycle) if self.mode == 'round_robin' \
            else _RANDOM_BLOCK

    def _schedule_block(self, block: int) -> np.ndarray:
        """Task ids of the steps ``[block * period, (block + 1) * period)``."""
        if self.mode == 'round_robin':
            return self._cycle
        return self._rng(_SCHEDULE_KEY, block).choice(len(self.sizes),
                                                      size=_RANDOM_BLOCK,
                                                      p=self.task_probs)

    def _task_counts(self, step: int) -> np.ndarray:
        """Number of batches of each task in the steps ``[0, step)``."""
        period = self._schedule_period()
        num_tasks = len(self.sizes)
        full, rest = divmod(step, period)
        counts = np.zeros(num_tasks, dtype=np.int64)
        if self.mode == 'round_robin':
            counts += full * np.bincount(self._cycle, minlength=num_tasks)
        else:
            for block in range(full):
                counts += np.bincount(self._schedule_block(block),
                                      minlength=num_tasks)
        counts += np.bincount(self._schedule_block(full)[:rest],
                              minlength=num_tasks)
        return counts

    def _batch(self, task: int, use: int,
               permutations: Dict[int, Tuple[int, np.ndarray]]) -> List[int]:
        """ConcatDataset indices of this rank's ``use``-th batch of ``task``.

        Args:
            task (int): Sub-dataset index.
            use (int): How many batches of ``task`` came before.
            permutations (dict): Cache ``task -> (pass, permutation)``,
                updated in place.
        """
        size = self.sizes[task]
        positions = (use * self.batch_size + np.arange(self.batch_size)) \
            * self.world_size + self.rank
        passes, offsets = np.divmod(positions, size)
        local = np.empty(self.batch_size, dtype=np.int64)
        for pass_idx in np.unique(passes):
            if task not in permutations or permutations[task][0] != pass_idx:
                order = (self._rng(_PERMUTATION_KEY, task,
                                   int(pass_idx)).permutation(size)
                         if self.shuffle else np.arange(size))
                permutations[task] = (pass_idx, order)
            in_pass = passes == pass_idx
            local[in_pass] = permutations[task][1][offsets[in_pass]]
        return (local + self.offsets[task]).tolist()
