# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Stop (or skip the step) on a non-finite loss or gradient."""
import logging
from typing import Any, List, Optional

import torch
import torch.distributed as torch_dist
from mmengine.dist import get_world_size
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.optim import AmpOptimWrapper, OptimWrapper

from mmdet.registry import HOOKS

__all__ = ['NonFiniteCheckHook', 'batch_description']

ACTIONS = ('stop', 'skip')


def batch_description(data_batch: Any, max_paths: int = 4) -> str:
    """Name the task and the first images of a PSALM batch.

    Args:
        data_batch: The batch of the dataloader (``dict`` with
            ``data_samples``, whose metainfo ``prompt['task']`` names the
            task, as in ``PSALM._batch_task``).
        max_paths (int): Image paths listed at most.

    Returns:
        str: E.g. ``"task 'referring' (images: ['a.jpg', 'b.jpg'])"``.
    """
    samples = data_batch.get('data_samples') \
        if isinstance(data_batch, dict) else None
    if not samples:
        return 'task unknown (the batch has no data samples)'
    tasks = sorted({
        str(sample.metainfo.get('prompt', {}).get('task', 'unknown'))
        for sample in samples
    })
    paths = [sample.metainfo.get('img_path') for sample in samples]
    task = repr(tasks[0]) if len(tasks) == 1 else str(tasks)
    return f'task {task} (images: {paths[:max_paths]})'


class _Guard:
    """Replaces ``backward`` and ``step`` of one ``OptimWrapper`` instance.

    Args:
        hook (NonFiniteCheckHook): The hook (action, state, names).
        optim_wrapper (OptimWrapper): The wrapper to guard.
        check_grads (bool): Check the gradients before ``step``.
    """

    def __init__(self, hook: 'NonFiniteCheckHook',
                 optim_wrapper: OptimWrapper, check_grads: bool) -> None:
        self.hook = hook
        self.optim_wrapper = optim_wrapper
        self.check_grads = check_grads
        self.original_backward = optim_wrapper.backward
        self.original_step = optim_wrapper.step
        self.bad_loss: Optional[str] = None

    def backward(self, loss: torch.Tensor, **kwargs) -> None:
        if not bool(torch.isfinite(loss.detach()).all()):
            problem = f'non-finite loss {loss.detach().flatten()[:4].tolist()}'
            if self.hook.action == 'stop':
                self.hook.fail(problem, 'before backward')
            # every rank runs backward, so DDP's gradient all-reduce does not
            # wait for a rank that left; the step is skipped in step()
            self.bad_loss = self.bad_loss or problem
        self.original_backward(loss, **kwargs)

    def _bad_grads(self) -> bool:
        """Whether a gradient holds NaN or Inf (one device sync)."""
        grads = [
            p.grad for group in self.optim_wrapper.optimizer.param_groups
            for p in group['params'] if p.grad is not None
        ]
        if not grads:
            return False
        device = grads[0].device
        finite = torch.stack(
            [torch.isfinite(g).all().to(device) for g in grads])
        return not bool(finite.all())

    def step(self, **kwargs) -> None:
        problem = self.bad_loss
        self.bad_loss = None
        if problem is None and self.check_grads and self._bad_grads():
            problem = ('non-finite gradients of '
                       f'{self.hook.non_finite_grad_names()}')
        bad = problem is not None
        if get_world_size() > 1:
            # the same decision on every rank, or the weights diverge
            flag = torch.tensor([float(bad)], device=self._device())
            torch_dist.all_reduce(flag, op=torch_dist.ReduceOp.MAX)
            if flag.item() > 0 and not bad:
                problem = 'a non-finite loss or gradient on another rank'
                bad = True
        if not bad:
            self.hook.consecutive_skips = 0
            self.original_step(**kwargs)
            return
        if self.hook.action == 'stop':
            self.hook.fail(problem, 'before the optimizer step')
        self.optim_wrapper.zero_grad()
        self.hook.skipped(problem)

    def _device(self) -> torch.device:
        for group in self.optim_wrapper.optimizer.param_groups:
            for param in group['params']:
                return param.device
        return torch.device('cpu')


@HOOKS.register_module()
class NonFiniteCheckHook(Hook):
    """Catch a NaN / Inf loss or gradient before it reaches the weights.

    At ``before_train`` the hook guards the runner's ``OptimWrapper``:

    * before ``backward``, the loss (the sum of the loss terms) must be
      finite;
    * before the optimizer ``step``, every gradient must be finite (not
      checked for ``AmpOptimWrapper``, whose gradient scaler already skips
      steps with Inf/NaN gradients and lowers its scale).

    On a violation, ``action='stop'`` raises a ``FloatingPointError`` that
    names the iteration, the batch's task and images, and the problem (the
    loss value, or the first parameters with non-finite gradients), before
    any weight or optimizer state has changed. ``action='skip'`` logs the
    same as a warning and drops the step: the gradients are zeroed and the
    optimizer does not step, so the weights and the optimizer state (e.g.
    AdamW's moments and step count) stay as they were; the learning-rate
    schedule continues. After ``max_consecutive_skips`` skipped steps in a
    row the run stops as with ``'stop'``, since the run is then diverging.
    In a distributed run the ranks agree on skipping (one all-reduce per
    step), so their weights stay equal.

    Args:
        action (str): ``'stop'`` or ``'skip'``. Defaults to ``'stop'``.
        max_consecutive_skips (int): Skipped steps in a row that stop the
            run (``'skip'`` only). Defaults to 10.
        check_grads (bool): Check the gradients before the step. Defaults
            to True.

    Raises:
        ValueError: Bad ``action`` or ``max_consecutive_skips``.
    """

    priority = 'VERY_HIGH'

    def __init__(self,
                 action: str = 'stop',
                 max_consecutive_skips: int = 10,
                 check_grads: bool = True) -> None:
        if action not in ACTIONS:
            raise ValueError(f'action must be one of {ACTIONS}, got '
                             f'{action!r}')
        if max_consecutive_skips < 1:
            raise ValueError('max_consecutive_skips must be positive, got '
                             f'{max_consecutive_skips}')
        self.action = action
        self.max_consecutive_skips = max_consecutive_skips
        self.check_grads = check_grads
        self.consecutive_skips = 0
        self.total_skips = 0
        self._runner = None
        self._batch = 'task unknown (no batch yet)'
        self._guard: Optional[_Guard] = None

    def before_train(self, runner) -> None:
        wrapper = runner.optim_wrapper
        if not isinstance(wrapper, OptimWrapper):
            raise TypeError(
                'NonFiniteCheckHook guards an OptimWrapper (or '
                f'AmpOptimWrapper), got {type(wrapper).__name__}; turn it '
                'off with default_hooks.non_finite=None (e.g. DeepSpeed, '
                'which handles overflows itself)')
        self._runner = runner
        self._guard = _Guard(
            self, wrapper, self.check_grads
            and not isinstance(wrapper, AmpOptimWrapper))
        # instance attributes shadow the class methods that update_params()
        # calls; after_train removes them again
        wrapper.backward = self._guard.backward
        wrapper.step = self._guard.step

    def after_train(self, runner) -> None:
        if self._guard is not None:
            del self._guard.optim_wrapper.backward
            del self._guard.optim_wrapper.step
            self._guard = None
        if self.total_skips:
            runner.logger.warning(
                f'NonFiniteCheckHook: {self.total_skips} optimizer steps '
                'were skipped in this run (non-finite loss or gradients)')

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch: Any = None) -> None:
        self._batch = batch_description(data_batch)

    def _where(self) -> str:
        return (f'iteration {self._runner.iter + 1}, '
                f'{self._batch}')

    def non_finite_grad_names(self, limit: int = 5) -> List[str]:
        """The first ``limit`` parameters whose gradient is not finite."""
        model = self._runner.model
        if is_model_wrapper(model):
            model = model.module
        names = [
            name for name, param in model.named_parameters()
            if param.grad is not None
            and not bool(torch.isfinite(param.grad).all())
        ]
        if len(names) > limit:
            return names[:limit] + [f'... {len(names) - limit} more']
        return names

    def fail(self, problem: str, when: str) -> None:
        """Stop the run: raise with the iteration, task and problem."""
        raise FloatingPointError(
            f'NonFiniteCheckHook: {problem} at {self._where()}, detected '
            f'{when}; the weights and optimizer state are those of the '
            'previous iteration. Lower the learning rate, check the data '
            'of this batch, or use NonFiniteCheckHook(action="skip") to '
            'drop such steps.')

    def skipped(self, problem: str) -> None:
        """Count and log a skipped step; stop after too many in a row."""
        self.consecutive_skips += 1
        self.total_skips += 1
        if self.consecutive_skips >= self.max_consecutive_skips:
            self.fail(
                f'{problem} ({self.consecutive_skips} skipped steps in a '
                'row)', 'before the optimizer step')
        print_log(
            f'NonFiniteCheckHook: skipped the optimizer step of '
            f'{self._where()}: {problem} (skipped steps: {self.total_skips} '
            f'in total, {self.consecutive_skips} in a row)',
            logger='current',
            level=logging.WARNING)
