# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Save the RNG states in every checkpoint and restore them on resume."""
import logging
from typing import Any, Iterator, List, Optional

from mmengine.dist import get_rank, get_world_size
from mmengine.hooks import CheckpointHook, Hook
from mmengine.logging import print_log
from mmengine.runner import IterBasedTrainLoop

from mmdet.registry import HOOKS
from ..random_state import (gather_random_states, get_random_state,
                            set_random_state)

__all__ = ['RandomStateHook']

# between ParamSchedulerHook (LOW, 70) and CheckpointHook (VERY_LOW, 90):
# the states are gathered after every hook that may draw random numbers and
# before the checkpoint is written
_PRIORITY = 85


class _RestoreBeforeFetch:
    """Pass ``skip`` calls through, restore the RNG states, then iterate.

    ``IterBasedTrainLoop.run`` calls ``next()`` once per already trained
    iteration (the skip calls) and then once per iteration. The states are
    restored right before the first call that fetches a batch to train on,
    after everything that drew random numbers during the resume: building
    the dataloader iterators (each draws a base seed from torch's generator),
    loading the skipped batches (mmengine without
    :class:`SamplerResumeHook`), initialising the weights, ...

    Args:
        iterator (Iterator): The loop's dataloader iterator.
        skip (int): Number of calls to pass through first.
        state (dict): This rank's saved states.
    """

    def __init__(self, iterator: Iterator, skip: int, state: dict) -> None:
        self._iterator = iterator
        self._skip = skip
        self._state: Optional[dict] = state

    def __iter__(self) -> '_RestoreBeforeFetch':
        return self

    def __next__(self) -> Any:
        if self._skip > 0:
            self._skip -= 1
            return next(self._iterator)
        if self._state is not None:
            _restore(self._state)
            self._state = None
        return next(self._iterator)


def _restore(state: dict) -> None:
    """Restore one rank's states and log what could not be restored."""
    for problem in set_random_state(state):
        print_log(f'RandomStateHook: not restored: {problem}',
                  logger='current', level=logging.WARNING)


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Make a resumed run draw the same random numbers as an uninterrupted one.

    * ``before_save_checkpoint``: stores the RNG states of every rank
      (Python ``random``, numpy's global generator, torch CPU and CUDA; see
      :mod:`projects.psalm.engine.random_state`) as plain data in
      ``checkpoint['random_states']`` (one entry per rank), so the checkpoint
      still loads with ``weights_only=True``. In a distributed run the ranks
      send their states to rank 0 right before a checkpoint hook saves
      (``after_train_iter`` / ``after_train_epoch``, with the
      ``CheckpointHook``'s own condition).
    * ``after_load_checkpoint``: keeps the states of the resumed checkpoint.
    * ``before_train`` checks them (one per rank); ``before_train_epoch``
      (after every ``before_train`` hook, e.g. :class:`SamplerResumeHook`'s)
      then, with an ``IterBasedTrainLoop``, wraps the loop's dataloader
      iterator so that the states are restored right before the first batch
      to train on is fetched (after every random draw of the resume set-up:
      iterator creation, skipped batches, weight initialisation); with an
      epoch-based loop they are restored at once (the epoch's iterator is
      created after that, as in the uninterrupted run).
    * ``before_val`` / ``after_val``: validation during training leaves the
      training states as they were, so a checkpoint saved right before a
      validation resumes like the uninterrupted run continues.

    Place it with :class:`SamplerResumeHook` (for the batch order) and
    :class:`SafeCheckpointHook`. Random numbers drawn in dataloader workers
    are not covered by these states: :class:`MultiTaskBatchSampler` reseeds
    the worker for every batch (see its ``seed_workers``). A checkpoint
    without states (older, or of another world size) resumes with a logged
    warning and the states the runner's seed gives.
    """

    priority = _PRIORITY

    def __init__(self) -> None:
        self._gathered: Optional[List[dict]] = None
        self._resumed: Optional[List[dict]] = None
        self._before_val: Optional[dict] = None
        self._pending: Optional[dict] = None

    # ------------------------------------------------------------------
    # saving
    # ------------------------------------------------------------------
    @staticmethod
    def _checkpoint_due(runner, by_epoch: bool) -> bool:
        """Whether a ``CheckpointHook`` of the runner saves now."""
        for hook in runner.hooks:
            if not isinstance(hook, CheckpointHook) or \
                    hook.by_epoch != by_epoch:
                continue
            # CheckpointHook.after_train_epoch / after_train_iter's condition
            if by_epoch:
                due = hook.every_n_epochs(runner, hook.interval,
                                          hook.save_begin) or (
                                              hook.save_last and
                                              hook.is_last_train_epoch(runner))
            else:
                due = hook.every_n_train_iters(
                    runner, hook.interval, hook.save_begin) or (
                        hook.save_last and hook.is_last_train_iter(runner))
            if due:
                return True
        return False

    def _gather_if_due(self, runner, by_epoch: bool) -> None:
        """Collect every rank's states before a distributed save."""
        self._gathered = None
        if get_world_size() > 1 and self._checkpoint_due(runner, by_epoch):
            self._gathered = gather_random_states()

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: Any = None,
                         outputs: Optional[dict] = None) -> None:
        self._gather_if_due(runner, by_epoch=False)

    def after_train_epoch(self, runner) -> None:
        self._gather_if_due(runner, by_epoch=True)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if get_world_size() == 1:
            # a best checkpoint is saved during validation: the training
            # states are the ones validation started from
            checkpoint['random_states'] = [
                self._before_val
                if self._before_val is not None else get_random_state()
            ]
        elif self._gathered is not None:
            checkpoint['random_states'] = self._gathered
        else:
            # a save outside the train loop (e.g. a best checkpoint after
            # validation): the other ranks' states are not at hand
            runner.logger.warning(
                'RandomStateHook: this checkpoint is saved outside the '
                'training iterations; it holds no random states, and a run '
                'resumed from it draws other random numbers than the '
                'uninterrupted one')

    # ------------------------------------------------------------------
    # resuming
    # ------------------------------------------------------------------
    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._resumed = checkpoint.get('random_states')

    def before_train(self, runner) -> None:
        states, self._resumed = self._resumed, None
        if runner.iter == 0 and runner.epoch == 0:
            return  # a new run (load_from loads weights, not the run state)
        if states is None:
            runner.logger.warning(
                'RandomStateHook: the resumed checkpoint holds no random '
                'states (saved without RandomStateHook?); the run continues '
                'with the states of the runner seed, so its random numbers '
                'differ from those of the uninterrupted run')
            return
        world_size, rank = get_world_size(), get_rank()
        if len(states) != world_size:
            runner.logger.warning(
                f'RandomStateHook: the checkpoint holds the random states of '
                f'{len(states)} ranks but this run has {world_size}; they '
                'are not restored')
            return
        self._pending = states[rank]

    def before_train_epoch(self, runner) -> None:
        # after every before_train hook (SamplerResumeHook replaces the
        # loop's dataloader iterator there), before the loop skips batches
        state, self._pending = self._pending, None
        if state is None:
            return
        loop = runner.train_loop
        if isinstance(loop, IterBasedTrainLoop):
            loop.dataloader_iterator = _RestoreBeforeFetch(
                loop.dataloader_iterator, loop.iter, state)
            runner.logger.info(
                'RandomStateHook: the random states of iteration '
                f'{loop.iter} are restored before the next batch is fetched')
        else:
            _restore(state)
            runner.logger.info('RandomStateHook: the random states of epoch '
                               f'{runner.epoch} are restored')

    # ------------------------------------------------------------------
    # validation inside training
    # ------------------------------------------------------------------
    def before_val(self, runner) -> None:
        self._before_val = get_random_state()

    def after_val(self, runner) -> None:
        if self._before_val is not None:
            _restore(self._before_val)
            self._before_val = None
