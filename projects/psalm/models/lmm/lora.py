# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""LoRA adapters on PSALM's language model, through Hugging Face ``peft``.

:func:`apply_lora` injects ``peft`` LoRA layers into the linear layers of a
Hugging Face model *in place* (``peft.inject_adapter_in_model``: the module
tree keeps its names, so ``llm.model`` and the prefix-cache API of
:class:`~projects.psalm.models.lmm.PhiLanguageModel` work unchanged) and
freezes every other weight of that model. A wrapped linear ``X`` stores its
frozen weight as ``X.base_layer.weight`` and its adapter as
``X.lora_A.default.weight`` (``[r, in]``) and ``X.lora_B.default.weight``
(``[out, r]``, zero-initialised, so a fresh adapter changes nothing); its
output is ``base(x) + scaling * B(A(dropout(x)))`` with ``scaling =
alpha / r`` (``alpha / sqrt(r)`` with ``use_rslora``).

The adapters are ordinary entries of the model's state dict, so runner
checkpoints hold them (weights-only loadable). :func:`merge_lora_state_dict`
folds them into plain weights, ``W + scaling * B @ A``, giving the state dict
of the same model built without LoRA.
"""
import math
import re
from typing import Dict, Sequence, Tuple

import torch
from torch import Tensor, nn

__all__ = [
    'ADAPTER', 'PHI_LORA_TARGETS', 'SCALING_KEY', 'LORA_KEY',
    'build_lora_config', 'apply_lora', 'lora_layer_names',
    'merge_lora_state_dict'
]

ADAPTER = 'default'  # peft's name of the (only) adapter
# every linear layer of a Phi decoder layer: attention q/k/v and output
# (``dense``), MLP ``fc1``/``fc2``; lm_head and embeddings are not adapted
PHI_LORA_TARGETS = ('q_proj', 'k_proj', 'v_proj', 'dense', 'fc1', 'fc2')
# name of the scaling buffer of a LoRA language model (relative to it)
SCALING_KEY = 'lora_scaling'
# ``<layer>.lora_A.default.weight`` / ``<layer>.lora_B.default.weight``
LORA_KEY = re.compile(r'^(?P<layer>.+)\.lora_(?P<ab>[AB])\.' + ADAPTER +
                      r'\.weight$')
_ALLOWED_KEYS = ('r', 'alpha', 'dropout', 'target_modules', 'use_rslora')


def _require_peft():
    try:
        import peft
    except ImportError as err:
        raise ImportError(
            'language_model.lora needs the `peft` package: pip install -r '
            'requirements/optional.txt (or `pip install peft`)') from err
    return peft


def build_lora_config(cfg: dict):
    """The ``peft.LoraConfig`` of a ``language_model.lora`` dict.

    Args:
        cfg (dict): ``r`` (rank, > 0), ``alpha`` (defaults to ``r``, i.e.
            scaling 1), ``dropout`` (defaults to 0), ``target_modules``
            (names of the linear layers to adapt; defaults to
            :data:`PHI_LORA_TARGETS`), ``use_rslora`` (scaling ``alpha /
            sqrt(r)``; defaults to False).

    Returns:
        peft.LoraConfig: The adapter config (no bias adapted).

    Raises:
        ValueError: For an unknown key or an invalid value.
    """
    unknown = set(cfg) - set(_ALLOWED_KEYS)
    if unknown:
        raise ValueError(f'language_model.lora: unknown keys '
                         f'{sorted(unknown)}; allowed: {_ALLOWED_KEYS}')
    rank = cfg.get('r')
    if not isinstance(rank, int) or rank < 1:
        raise ValueError(f'language_model.lora.r must be a positive int, got '
                         f'{rank!r}')
    alpha = cfg.get('alpha', rank)
    if not isinstance(alpha, (int, float)) or alpha <= 0:
        raise ValueError(f'language_model.lora.alpha must be positive, got '
                         f'{alpha!r}')
    dropout = cfg.get('dropout', 0.0)
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f'language_model.lora.dropout must be in [0, 1), '
                         f'got {dropout!r}')
    targets = list(cfg.get('target_modules', PHI_LORA_TARGETS))
    if not targets or not all(isinstance(t, str) for t in targets):
        raise ValueError('language_model.lora.target_modules must be a '
                         f'non-empty list of layer names, got {targets!r}')
    peft = _require_peft()
    return peft.LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=targets,
        use_rslora=bool(cfg.get('use_rslora', False)),
        bias='none')


def apply_lora(model: nn.Module, cfg: dict) -> float:
    """Inject LoRA adapters into ``model`` in place and freeze the rest.

    Args:
        model (nn.Module): A Hugging Face model (e.g. ``PhiForCausalLM``).
        cfg (dict): See :func:`build_lora_config`.

    Returns:
        float: The scaling of the adapters' output.

    Raises:
        ValueError: If no layer of ``model`` matches ``target_modules``.
    """
    peft = _require_peft()
    config = build_lora_config(cfg)
    try:
        peft.inject_adapter_in_model(config, model, adapter_name=ADAPTER)
    except ValueError as err:
        names = sorted({
            name.rsplit('.', 1)[-1]
            for name, module in model.named_modules()
            if isinstance(module, nn.Linear)
        })
        targets = sorted(config.target_modules)
        raise ValueError(
            f'language_model.lora.target_modules={targets} match no linear '
            f'layer of {type(model).__name__} (its linear layer names: '
            f'{names})') from err
    if config.use_rslora:
        return config.lora_alpha / math.sqrt(config.r)
    return config.lora_alpha / config.r


def lora_layer_names(model: nn.Module) -> Sequence[str]:
    """Names (in ``model``) of the layers that carry a LoRA adapter."""
    peft = _require_peft()
    return [
        name for name, module in model.named_modules()
        if isinstance(module, peft.tuners.lora.LoraLayer)
    ]


def _scaling_of(key: str, scalings: Dict[str, Tensor]) -> float:
    """The scaling of the language model owning ``key``."""
    owners = [prefix for prefix in scalings if key.startswith(prefix)]
    if not owners:
        raise ValueError(
            f'state dict: LoRA weight {key!r} has no {SCALING_KEY!r} entry '
            'of its language model (a checkpoint of this repository always '
            'has one); cannot merge it')
    return float(scalings[max(owners, key=len)])


@torch.no_grad()
def merge_lora_state_dict(
        state_dict: Dict[str, Tensor]) -> Tuple[Dict[str, Tensor], int]:
    """Fold the LoRA adapters of a state dict into plain weights.

    Every ``<layer>.lora_A.default.weight`` / ``lora_B`` pair and its
    ``<layer>.base_layer.weight`` become ``<layer>.weight = W + scaling * B @
    A`` (computed in fp32, stored in ``W``'s dtype); ``base_layer.bias``
    becomes ``<layer>.bias``; the ``lora_scaling`` entries are dropped. The
    result loads into the same model built without ``language_model.lora``.

    Args:
        state_dict (dict[str, Tensor]): A (whole-model) state dict.

    Returns:
        tuple[dict[str, Tensor], int]: The merged state dict (same key order
        otherwise) and the number of merged layers (0: nothing to merge, the
        state dict is returned unchanged).

    Raises:
        ValueError: An adapter without its pair, base weight or scaling, or
            with shapes that do not multiply to the base weight's.
    """
    scalings = {
        key[:-len(SCALING_KEY)]: value
        for key, value in state_dict.items() if key.endswith(SCALING_KEY)
    }
    layers = {}
    for key in state_dict:
        match = LORA_KEY.match(key)
        if match:
            layers.setdefault(match['layer'], set()).add(match['ab'])
    if not layers:
        return dict(state_dict), 0
    merged_weights = {}
    for layer, parts in layers.items():
        if parts != {'A', 'B'}:
            raise ValueError(f'state dict: layer {layer!r} has lora_'
                             f'{parts.pop()} without its pair')
        base_key = f'{layer}.base_layer.weight'
        if base_key not in state_dict:
            raise ValueError(f'state dict: layer {layer!r} has a LoRA adapter'
                             f' but no {base_key!r}')
        scaling = _scaling_of(layer, scalings)
        weight = state_dict[base_key]
        lora_a = state_dict[f'{layer}.lora_A.{ADAPTER}.weight'].float()
        lora_b = state_dict[f'{layer}.lora_B.{ADAPTER}.weight'].float()
        if (lora_b.shape[0], lora_a.shape[1]) != tuple(weight.shape) or \
                lora_b.shape[1] != lora_a.shape[0]:
            raise ValueError(
                f'state dict: layer {layer!r}: lora_B {tuple(lora_b.shape)} @ '
                f'lora_A {tuple(lora_a.shape)} does not give the base weight '
                f'shape {tuple(weight.shape)}')
        merged_weights[layer] = (weight.float() + scaling *
                                 (lora_b @ lora_a)).to(weight.dtype)
    merged = {}
    for key, value in state_dict.items():
        if key.endswith(SCALING_KEY) or LORA_KEY.match(key):
            continue
        if '.base_layer.' in key:
            layer, param = key.rsplit('.base_layer.', 1)
            if layer in layers:
                merged[f'{layer}.{param}'] = (merged_weights[layer]
                                              if param == 'weight' else value)
                continue
        merged[key] = value
    return merged, len(layers)
