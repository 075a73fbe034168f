# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Random-number-generator states as weights-only-loadable plain data.

A checkpoint resumed with ``weights_only=True`` may hold tensors and plain
Python only, so the states of Python's ``random``, numpy's global generator
and torch's CPU (and CUDA) generators are stored as lists, ints, floats and
``torch.uint8`` tensors:

.. code-block:: python

    dict(python=dict(version=3, internal=[625 ints], gauss_next=None),
         numpy=dict(bit_generator='MT19937', key=[624 ints], pos=624,
                    has_gauss=0, cached_gaussian=0.0),
         torch=<uint8 tensor>,
         cuda=[<uint8 tensor> per device])   # only when CUDA is in use
"""
import random
from typing import Any, Dict, List

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_world_size

__all__ = ['get_random_state', 'set_random_state', 'gather_random_states']

_KEYS = ('python', 'numpy', 'torch')


def get_random_state() -> Dict[str, Any]:
    """The current RNG states of this process as plain data.

    Returns:
        dict: ``python``, ``numpy``, ``torch`` and, when CUDA has been
        initialised, ``cuda`` (one state per visible device).
    """
    version, internal, gauss_next = random.getstate()
    name, key, pos, has_gauss, cached = np.random.get_state()
    state = dict(
        python=dict(
            version=version, internal=list(internal), gauss_next=gauss_next),
        numpy=dict(
            bit_generator=str(name),
            key=[int(k) for k in key],
            pos=int(pos),
            has_gauss=int(has_gauss),
            cached_gaussian=float(cached)),
        torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = [s.cpu() for s in torch.cuda.get_rng_state_all()]
    return state


def set_random_state(state: Dict[str, Any]) -> List[str]:
    """Restore states saved by :func:`get_random_state`.

    Args:
        state (dict): The saved states.

    Returns:
        list[str]: What was not restored and why (empty when everything
        was): the CUDA states when this process has no CUDA or another
        number of devices. The caller logs them.

    Raises:
        ValueError: ``state`` lacks one of the python / numpy / torch
            entries (e.g. it was not written by :func:`get_random_state`).
    """
    missing = [key for key in _KEYS if key not in state]
    if missing:
        raise ValueError(f'the saved random state lacks {missing}; it has '
                         f'{sorted(state)}')
    py = state['python']
    random.setstate((py['version'], tuple(py['internal']), py['gauss_next']))
    npy = state['numpy']
    np.random.set_state(
        (npy['bit_generator'], np.asarray(npy['key'], dtype=np.uint32),
         npy['pos'], npy['has_gauss'], npy['cached_gaussian']))
    torch.set_rng_state(state['torch'])
    not_restored = []
    cuda = state.get('cuda')
    if cuda is not None:
        if not torch.cuda.is_available():
            not_restored.append('the CUDA generators (this process has no '
                                'CUDA)')
        elif torch.cuda.device_count() != len(cuda):
            not_restored.append(
                f'the CUDA generators ({len(cuda)} saved, '
                f'{torch.cuda.device_count()} devices here)')
        else:
            torch.cuda.set_rng_state_all(cuda)
    return not_restored


def gather_random_states() -> List[Dict[str, Any]]:
    """The states of every rank, in rank order (a collective call).

    Returns:
        list[dict]: One :func:`get_random_state` per rank (one entry when
        not distributed).
    """
    state = get_random_state()
    if get_world_size() == 1:
        return [state]
    return all_gather_object(state)
