# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Weights-only checkpoint loading for every local checkpoint mmengine opens.

mmengine 0.10.7 calls ``torch.load`` without ``weights_only``; on torch >= 2.6
that means weights-only loading, which fails on the runner's own checkpoints
(they pickle ``HistoryBuffer`` objects and numpy values), and on torch < 2.6 it
means full unpickling, which runs whatever code a crafted file carries.

This module registers, for local paths, a loader that always passes
``weights_only=True`` and turns a refusal into an error that names the file and
the globals it asked for. PSALM's runner checkpoints contain only tensors and
plain Python (see :class:`~projects.psalm.engine.hooks.SafeCheckpointHook`), so
``load_from``, ``--resume`` and ``Pretrained`` initialisation all load without
disabling ``weights_only`` anywhere.
"""
import os.path as osp
import pickle
import zipfile
from typing import Any, Optional

import torch
from mmengine.runner.checkpoint import CheckpointLoader

__all__ = ['UnsafeCheckpointError', 'load_weights_only']


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint needs arbitrary unpickling, or is not a checkpoint."""


def load_weights_only(filename: str,
                      map_location: Optional[Any] = None) -> Any:
    """Load a local ``.pth`` with ``torch.load(weights_only=True)``.

    ``.safetensors`` files are read with :mod:`safetensors` (no pickle).

    Args:
        filename (str): Local path.
        map_location: As in :func:`torch.load`.

    Returns:
        The deserialised object (tensors and plain Python containers only).

    Raises:
        FileNotFoundError: The file does not exist.
        UnsafeCheckpointError: The file needs globals outside the weights-only
            allow-list (it may execute code), or is truncated/corrupt.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint file "{filename}" does not exist')
    if filename.endswith('.safetensors'):
        return _load_safetensors(filename, map_location)
    try:
        return torch.load(filename, map_location=map_location,
                          weights_only=True)
    except pickle.UnpicklingError as err:
        if zipfile.is_zipfile(filename):  # torch.save's format: scannable
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(
                filename)
            hint = f'It needs these globals: {unsafe}. ' if unsafe else ''
        else:
            hint = 'It is a raw pickle, not a torch.save archive. '
        raise UnsafeCheckpointError(
            f'Refusing to load checkpoint "{filename}": it cannot be loaded '
            f'with weights_only=True. {hint}Files that need arbitrary '
            'unpickling can execute code; re-save the weights you trust as '
            'plain tensors (e.g. torch.save({"state_dict": sd}, path)).'
        ) from err
    except (RuntimeError, EOFError, OSError) as err:
        raise UnsafeCheckpointError(
            f'Checkpoint "{filename}" is not a readable torch checkpoint '
            f'(truncated or corrupt?): {err}') from err


def _load_safetensors(filename: str, map_location: Optional[Any]) -> dict:
    """A ``.safetensors`` file as a state dict (no pickle involved)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    device = map_location if isinstance(map_location, str) else 'cpu'
    try:
        return load_file(filename, device=device)
    except SafetensorError as err:
        raise UnsafeCheckpointError(
            f'Checkpoint "{filename}" is not a readable safetensors file '
            f'(truncated or corrupt?): {err}') from err


@CheckpointLoader.register_scheme(prefixes='', force=True)
def _load_from_local(filename: str, map_location: Optional[Any] = None) -> Any:
    """mmengine's loader for local paths, made weights-only."""
    return load_weights_only(filename, map_location)
