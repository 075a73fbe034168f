# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Checkpoints that load weights-only, and a clear error for foreign ones."""
import re
from typing import Any

import numpy as np
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer

from mmdet.registry import HOOKS

__all__ = [
    'SafeCheckpointHook', 'check_state_dict_match', 'to_plain', 'from_plain'
]

_BUFFER_TAG = '__history_buffer__'


def to_plain(obj: Any) -> Any:
    """Recursively replace numpy values and ``HistoryBuffer`` objects.

    numpy scalars become Python numbers, arrays become lists and a
    ``HistoryBuffer`` becomes a tagged dict that :func:`from_plain` restores.
    Tensors and plain containers are kept (containers are rebuilt as their own
    type, so ``OrderedDict`` stays ``OrderedDict``).
    """
    if isinstance(obj, HistoryBuffer):
        return {
            _BUFFER_TAG: True,
            'max_length': obj.max_length,
            'log': obj._log_history.tolist(),
            'count': obj._count_history.tolist(),
        }
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, dict):
        return type(obj)((k, to_plain(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_plain(v) for v in obj)
    return obj


def from_plain(obj: Any) -> Any:
    """Inverse of :func:`to_plain` for ``HistoryBuffer`` objects."""
    if isinstance(obj, dict):
        if obj.get(_BUFFER_TAG) is True:
            return HistoryBuffer(obj['log'], obj['count'], obj['max_length'])
        return type(obj)((k, from_plain(v)) for k, v in obj.items())
    if isinstance(obj, list):
        return [from_plain(v) for v in obj]
    return obj


@HOOKS.register_module()
class SafeCheckpointHook(Hook):
    """Write checkpoints that hold only tensors and plain Python.

    Together with the weights-only loader of
    :mod:`projects.psalm.engine.checkpoint`, this lets ``--resume`` work
    without ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``: before a save, the message
    hub's ``HistoryBuffer`` objects and numpy values are converted; after a
    load, the buffers are restored before the runner reads them.

    mmengine loads ``load_from`` non-strictly and only logs what did not
    match, so a checkpoint of another model "loads" silently. This hook raises
    instead when less than ``min_match`` of the model's state-dict entries are
    found in the checkpoint with the same shape.

    Args:
        min_match (float): Smallest accepted fraction of the model's entries
            that the checkpoint provides. Defaults to 0.5.
    """

    priority = 'VERY_LOW'  # after every hook that adds state to the checkpoint

    def __init__(self, min_match: float = 0.5) -> None:
        if not 0.0 <= min_match <= 1.0:
            raise ValueError(f'min_match must be in [0, 1], got {min_match}')
        self.min_match = min_match

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        for key in list(checkpoint):
            if key != 'state_dict':  # tensors only, nothing to convert
                checkpoint[key] = to_plain(checkpoint[key])

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if 'message_hub' in checkpoint:
            checkpoint['message_hub'] = from_plain(checkpoint['message_hub'])
        model = runner.model.module if hasattr(runner.model, 'module') \
            else runner.model
        check_state_dict_match(model.state_dict(), checkpoint,
                               self.min_match)


def check_state_dict_match(model_state: dict, checkpoint: Any,
                           min_match: float) -> None:
    """Raise when ``checkpoint`` does not look like weights of the model.

    Args:
        model_state (dict): The model's ``state_dict()``.
        checkpoint: The loaded checkpoint (a dict with ``state_dict`` or a
            bare state dict).
        min_match (float): Smallest accepted fraction of matching entries.

    Raises:
        ValueError: Too few entries match by name and shape.
    """
    if not isinstance(checkpoint, dict):
        raise ValueError('the checkpoint is not a dict of weights but a '
                         f'{type(checkpoint).__name__}')
    state = checkpoint.get('state_dict', checkpoint)
    state = {re.sub(r'^module\.', '', k): v for k, v in state.items()}
    matched = [
        k for k, v in model_state.items()
        if k in state and getattr(state[k], 'shape', None) == v.shape
    ]
    if len(matched) < min_match * len(model_state):
        missing = [k for k in model_state if k not in matched][:5]
        raise ValueError(
            f'The checkpoint does not fit this model: only {len(matched)} of '
            f'{len(model_state)} entries match by name and shape (needed: '
            f'{min_match:.0%}); e.g. missing or mis-shaped: {missing}. Is it '
            'a checkpoint of another model or config?')
