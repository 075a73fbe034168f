# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Resume an iteration-based run without loading the skipped batches."""
from typing import Any, Optional

from mmengine.hooks import Hook
from mmengine.runner import IterBasedTrainLoop
from mmengine.runner.loops import _InfiniteDataloaderIterator
from torch.utils.data import DataLoader

from mmdet.registry import HOOKS

__all__ = ['SamplerResumeHook']


class _FastForwardIterator:
    """Answer ``skip`` calls with ``None``, then iterate the dataloader.

    ``IterBasedTrainLoop.run`` calls ``next()`` on its dataloader iterator
    once per already trained iteration and drops the results; these calls
    get ``None`` here and load nothing. The dataloader iterator is created
    here, at once (its batch sampler must already start at the resumed
    step): creating it draws a base seed from torch's generator, which must
    happen before :class:`RandomStateHook` restores the saved states right
    before the first real batch.

    Args:
        dataloader (DataLoader): The training dataloader.
        skip (int): Number of calls to answer without loading data.
    """

    def __init__(self, dataloader: DataLoader, skip: int) -> None:
        self._skip = skip
        self._iterator = _InfiniteDataloaderIterator(dataloader)

    def __iter__(self) -> '_FastForwardIterator':
        return self

    def __next__(self) -> Any:
        if self._skip > 0:
            self._skip -= 1
            return None
        return next(self._iterator)


@HOOKS.register_module()
class SamplerResumeHook(Hook):
    """Fast-forward a seekable batch sampler on resume instead of loading.

    On resume at iteration ``k``, mmengine's ``IterBasedTrainLoop`` calls
    ``next()`` ``k`` times on the dataloader, which loads (and discards)
    ``k`` batches. With a batch sampler whose batches are a pure function of
    (seed, step), such as
    :class:`~projects.psalm.datasets.MultiTaskBatchSampler`, this hook makes
    resuming free and exact:

    - ``before_save_checkpoint``: stores the batch sampler's seed in
      ``checkpoint['meta']['sampler_seed']``. (mmengine builds the sampler
      before it reads the seed of the resumed run, and with
      ``diff_rank_seed=True`` the sampler seed is not the runner's.)
    - ``after_load_checkpoint``: remembers that seed.
    - ``before_train`` (after ``Runner.resume`` has set the loop's iteration
      ``k``, before the loop skips): if ``k > 0``, calls
      ``batch_sampler.set_start_step(k, seed)`` and replaces the loop's
      ``dataloader_iterator`` by one that answers the loop's ``k`` skip calls
      with ``None`` and then iterates the dataloader anew from step ``k``
      (the new dataloader iterator is created here, so that
      :class:`RandomStateHook` restores the random states after it).

    The iterator the loop created at construction (before the resume) is
    dropped; with ``num_workers > 0`` its workers had prefetched up to
    ``prefetch_factor * num_workers`` batches of steps 0, 1, ..., which are
    discarded (persistent workers are reset, others shut down).

    Raises:
        TypeError: The train loop is not an ``IterBasedTrainLoop``, or the
            batch sampler has no ``set_start_step`` and ``seed``.
    """

    def __init__(self) -> None:
        self._resumed_seed: Optional[int] = None

    @staticmethod
    def _batch_sampler(runner) -> Any:
        """The train dataloader's batch sampler, checked to be seekable."""
        batch_sampler = runner.train_loop.dataloader.batch_sampler
        if not (hasattr(batch_sampler, 'set_start_step')
                and hasattr(batch_sampler, 'seed')):
            raise TypeError(
                'SamplerResumeHook needs a batch sampler with '
                'set_start_step() and seed, e.g. MultiTaskBatchSampler; got '
                f'{type(batch_sampler).__name__}')
        return batch_sampler

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['meta']['sampler_seed'] = self._batch_sampler(runner).seed

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._resumed_seed = checkpoint.get('meta', {}).get('sampler_seed')

    def before_train(self, runner) -> None:
        loop = runner.train_loop
        if not isinstance(loop, IterBasedTrainLoop):
            raise TypeError('SamplerResumeHook works with IterBasedTrainLoop, '
                            f'got {type(loop).__name__}')
        batch_sampler = self._batch_sampler(runner)
        step = loop.iter
        if step == 0:
            return
        batch_sampler.set_start_step(step, self._resumed_seed)
        loop.dataloader_iterator = _FastForwardIterator(loop.dataloader, step)
        runner.logger.info(
            f'SamplerResumeHook: the batch sampler starts at step {step}; the '
            f'loop\'s {step} skip steps load no data')
