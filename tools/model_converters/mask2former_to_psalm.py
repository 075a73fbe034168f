# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Initialise PSALM's Swin-B and mask generator from a Mask2Former checkpoint.

PSALM starts its vision encoder, pixel decoder and masked-attention decoder
from Mask2Former Swin-B (IN-21k, 384) trained on COCO panoptic. Two releases
of that model are accepted:

* ``--source mmdet``: mmdet 3.x's
  ``mask2former_swin-b-p4-w12-384-in21k_8xb2-lsj-50e_coco-panoptic_20220329_230021-05ec7315.pth``
  (``backbone.*``, ``panoptic_head.*``), read with
  ``torch.load(weights_only=True)``;
* ``--source detectron2``: Mask2Former's ``model_final_54b88a.pkl`` (the file
  the official PSALM code loads; a pickle of ``{'model': {name: ndarray}}``
  with detectron2 names ``backbone.*``, ``sem_seg_head.pixel_decoder.*``,
  ``sem_seg_head.predictor.*``), read with a restricted unpickler that only
  rebuilds numpy arrays and refuses any other global. A detectron2 ``.pth``
  (``{'model': state_dict}``) is read weights-only.

Without ``--source`` the format is detected from the keys.

The result, ``{'state_dict': {backbone.*, mask_generator.*}, 'meta': ...}``
(plain tensors; ``.pth`` or ``.safetensors``), has this project's key names
and is checked key by key and shape by shape against ``backbone`` and
``mask_generator`` of ``--config`` built on the meta device (default: the
paper model ``configs/_base_/models/psalm_swin-b_phi-1.5.py``). Mapping:

* mmdet: ``backbone.*`` unchanged (mmdet Swin), ``panoptic_head.*`` ->
  ``mask_generator.*`` (:class:`MaskGenerator` keeps the attribute names of
  mmdet's ``Mask2FormerHead``);
* detectron2: the detectron2 names are the names of the official PSALM
  checkpoint for these modules (``backbone.`` <-> ``model.vision_tower.``,
  ``sem_seg_head.pixel_decoder.`` <-> ``pixel_decoder.`` with detectron2's
  ``adapter_1.{weight,norm.*}`` / ``layer_1.{weight,norm.*}`` for the
  official ``adapter_1.{0,1}`` / ``layer_1.{0,1}``, ``sem_seg_head.predictor.``
  <-> ``predictor.``), so :mod:`projects.psalm.models.official_keys` converts
  them, including the Swin PatchMerging re-ordering (mmcv's ``nn.Unfold``
  order).

Dropped on purpose (listed in ``meta['dropped']``):

* the 133-class classifier (mmdet ``panoptic_head.cls_embed.*``,
  detectron2 ``sem_seg_head.predictor.class_embed.*``): PSALM classifies
  by dot products with condition embeddings (``mask_generator.cond_mlps``);
* the learned query features (``query_feat``): PSALM's query contents are
  the LLM outputs at the mask tokens (the official code loads and never
  uses them);
* detectron2's ``criterion.empty_weight`` (a loss buffer).

Left at their initialisation (not in Mask2Former; ``meta['not_in_source']``):
``mask_generator.cond_mlps.*`` and, with ``pixel_decoder.conv_bias=True``
(official architecture), the biases of the lateral/output FPN convs (zero,
as in the official code). A source ``query_embed`` with more rows than the
model's ``num_queries`` keeps the first rows (as the official code does).

Examples::

    python tools/model_converters/mask2former_to_psalm.py \\
        checkpoints/mask2former_swin-b-p4-w12-384-in21k_8xb2-lsj-50e_coco-panoptic_20220329_230021-05ec7315.pth \\
        checkpoints/mask2former_swin-b_psalm-init.pth
    python tools/model_converters/mask2former_to_psalm.py \\
        checkpoints/model_final_54b88a.pkl \\
        checkpoints/mask2former_swin-b_psalm-init.pth --source detectron2

Use the result in a training config as::

    model = dict(
        # mmdet's Swin strips ``backbone.``; the keys are already mmdet's
        backbone=dict(convert_weights=False,
                      init_cfg=dict(type='Pretrained', checkpoint=DST)),
        mask_generator=dict(init_cfg=dict(
            type='Pretrained', checkpoint=DST, prefix='mask_generator.')))
"""  # noqa: E501
import argparse
import io
import os
import os.path as osp
import pickle
import re
import sys
from collections import OrderedDict
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import Tensor

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

__all__ = [
    'SOURCES', 'MMDET_DROPPED_KEYS', 'DETECTRON2_DROPPED_KEYS',
    'PSALM_ONLY_PATTERNS', 'DisallowedPickleGlobal', 'load_detectron2_pickle',
    'load_source', 'detect_source', 'detectron2_to_official',
    'mask2former_to_mmpsalm', 'build_target_shapes', 'check_against_target',
    'main'
]

SOURCES = ('mmdet', 'detectron2')
DEFAULT_CONFIG = osp.join(ROOT, 'configs', '_base_', 'models',
                          'psalm_swin-b_phi-1.5.py')

#: mmdet Mask2Former keys PSALM does not use (classifier, query contents)
MMDET_DROPPED_KEYS = ('panoptic_head.cls_embed.weight',
                      'panoptic_head.cls_embed.bias',
                      'panoptic_head.query_feat.weight')
#: detectron2 Mask2Former keys PSALM does not use
DETECTRON2_DROPPED_KEYS = ('sem_seg_head.predictor.class_embed.weight',
                           'sem_seg_head.predictor.class_embed.bias',
                           'sem_seg_head.predictor.query_feat.weight',
                           'criterion.empty_weight')
#: keys of the covered modules that no Mask2Former checkpoint holds
PSALM_ONLY_PATTERNS = (
    r'mask_generator\.cond_mlps\..*',
    r'mask_generator\.pixel_decoder\.(lateral|output)_convs\.\d+\.conv\.bias',
)
#: this project's modules a Mask2Former checkpoint initialises
TARGET_MODULES = ('backbone', 'mask_generator')
QUERY_EMBED = 'mask_generator.query_embed.weight'

# detectron2 Mask2Former name -> official PSALM name (prefixes; the FPN
# convs of detectron2 are ``Conv2d`` with a ``norm`` attribute, the official
# ones ``Sequential(conv, norm)``)
_D2_PREFIXES = (('backbone.', 'model.vision_tower.'),
                ('sem_seg_head.pixel_decoder.', 'pixel_decoder.'),
                ('sem_seg_head.predictor.', 'predictor.'))
_D2_FPN = re.compile(r'(pixel_decoder\.(?:adapter|layer)_\d+)\.'
                     r'(weight|bias|norm\.weight|norm\.bias)\Z')

# numpy globals a pickled ndarray needs (numpy 1.x and 2.x module names)
_NUMPY_GLOBALS = {
    ('numpy.core.multiarray', '_reconstruct'),
    ('numpy._core.multiarray', '_reconstruct'),
    ('numpy.core.multiarray', 'scalar'),
    ('numpy._core.multiarray', 'scalar'),
    # protocol 5 pickles of numpy >= 1.16
    ('numpy.core.numeric', '_frombuffer'),
    ('numpy._core.numeric', '_frombuffer'),
    ('numpy', 'ndarray'),
    ('numpy', 'dtype'),
    ('collections', 'OrderedDict'),
    # protocol <= 2 pickles bytes (the array buffers) as
    # _codecs.encode(str, 'latin1'), as torch's weights-only unpickler allows
    ('_codecs', 'encode'),
}
_NUMPY_DTYPE_MODULES = ('numpy', 'numpy.dtypes')


class DisallowedPickleGlobal(pickle.UnpicklingError):
    """A pickle asked for a global outside the numpy-array allow-list."""


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that rebuilds numpy arrays and plain containers only."""

    def __init__(self, file: io.BufferedIOBase, source: str) -> None:
        super().__init__(file, encoding='latin1')
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        allowed = (module, name) in _NUMPY_GLOBALS or (
            module in _NUMPY_DTYPE_MODULES and name.endswith('DType'))
        if not allowed:
            raise DisallowedPickleGlobal(
                f'Refusing to unpickle "{self.source}": it asks for the '
                f'global {module}.{name}, but a detectron2 weight file may '
                'only hold numpy arrays (allowed: numpy array '
                'reconstruction, dtypes, OrderedDict, bytes). Loading '
                'anything else could execute code.')
        return super().find_class(module, name)

    def persistent_load(self, pid: Any) -> Any:
        raise DisallowedPickleGlobal(
            f'Refusing to unpickle "{self.source}": it holds persistent '
            f'objects ({pid!r}), e.g. torch tensors; save torch files as '
            '.pth (read weights-only) instead.')


def load_detectron2_pickle(path: str) -> Dict[str, Tensor]:
    """Read a detectron2 model-zoo ``.pkl`` (``{'model': {name: ndarray}}``
    or a bare ``{name: ndarray}``) with the restricted unpickler.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        DisallowedPickleGlobal: The pickle needs a non-numpy global.
        TypeError: The content is not a mapping of names to arrays.
    """
    import numpy as np
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path} does not exist')
    with open(path, 'rb') as f:
        data = _NumpyOnlyUnpickler(f, path).load()
    if isinstance(data, dict) and isinstance(data.get('model'), dict):
        data = data['model']
    if not isinstance(data, dict):
        raise TypeError(f'{path}: expected a dict of arrays (or '
                        f"{{'model': ...}}), got {type(data).__name__}")
    state = OrderedDict()
    for key, value in data.items():
        if not isinstance(value, np.ndarray):
            raise TypeError(f'{path}: {key!r} is a {type(value).__name__}, '
                            'not a numpy array')
        state[key] = torch.from_numpy(np.ascontiguousarray(value))
    return state


def _load_pth(path: str) -> Dict[str, Tensor]:
    from projects.psalm.engine import load_weights_only
    ckpt = load_weights_only(path, map_location='cpu')
    for key in ('state_dict', 'model'):
        if isinstance(ckpt, dict) and isinstance(ckpt.get(key), dict):
            return ckpt[key]
    return ckpt


def load_source(path: str) -> Dict[str, Tensor]:
    """Read a Mask2Former checkpoint: ``.pkl`` with the restricted numpy
    unpickler, ``.safetensors`` with safetensors, anything else with
    ``torch.load(weights_only=True)`` (``state_dict`` / ``model`` entry)."""
    if path.endswith('.pkl'):
        return load_detectron2_pickle(path)
    if path.endswith('.safetensors'):
        from safetensors.torch import load_file
        return load_file(path)
    return _load_pth(path)


def detect_source(state_dict: Dict[str, Tensor]) -> str:
    """``'mmdet'`` (``panoptic_head.*``) or ``'detectron2'``
    (``sem_seg_head.*``).

    Raises:
        ValueError: Neither or both kinds of key are present.
    """
    mmdet = any(k.startswith('panoptic_head.') for k in state_dict)
    d2 = any(k.startswith('sem_seg_head.') for k in state_dict)
    if mmdet == d2:
        raise ValueError('cannot tell the checkpoint format: expected '
                         'panoptic_head.* (mmdet) or sem_seg_head.* '
                         '(detectron2) keys; pass --source')
    return 'mmdet' if mmdet else 'detectron2'


def _pattern_match(key: str) -> bool:
    return any(re.fullmatch(p, key) for p in PSALM_ONLY_PATTERNS)


def detectron2_to_official(
        state_dict: Dict[str, Tensor]
) -> Tuple[Dict[str, Tensor], Dict[str, str], List[str], List[str]]:
    """Rename detectron2 Mask2Former keys to the official PSALM names.

    Returns:
        tuple: ``(official state dict, {official name: detectron2 name},
        dropped detectron2 keys, unknown detectron2 keys)``.
    """
    out, origin, dropped, unknown = OrderedDict(), {}, [], []
    for key, value in state_dict.items():
        if key in DETECTRON2_DROPPED_KEYS:
            dropped.append(key)
            continue
        for d2_prefix, official_prefix in _D2_PREFIXES:
            if key.startswith(d2_prefix):
                name = official_prefix + key[len(d2_prefix):]
                break
        else:
            unknown.append(key)
            continue
        fpn = _D2_FPN.match(name)
        if fpn:
            module, param = fpn.groups()
            name = (f'{module}.1.{param[5:]}' if param.startswith('norm.')
                    else f'{module}.0.{param}')
        out[name] = value
        origin[name] = key
    return out, origin, dropped, unknown


def mask2former_to_mmpsalm(state_dict: Dict[str, Tensor],
                           source: str,
                           num_queries: Optional[int] = None,
                           strict: bool = True) -> Tuple[OrderedDict, dict]:
    """Rename (and re-order) Mask2Former weights to this project's
    ``backbone.*`` / ``mask_generator.*`` keys.

    Args:
        state_dict (dict): The Mask2Former state dict.
        source (str): ``'mmdet'`` or ``'detectron2'``.
        num_queries (int, optional): Keep the first ``num_queries`` rows of
            ``query_embed`` (the model's number of mask tokens).
        strict (bool): Raise a ``KeyError`` naming source keys that are
            neither mapped nor known to be unused. Otherwise skip them.

    Returns:
        tuple: ``(state dict, report)`` with report keys ``dropped`` (unused
        source keys), ``unknown`` (skipped source keys, empty when strict)
        and ``truncated`` (``query_embed`` rows ``(source, kept)`` or None).
    """
    from projects.psalm.models.official_keys import official_to_mmpsalm
    if source not in SOURCES:
        raise ValueError(f'source must be one of {SOURCES}, got {source!r}')
    dropped, unknown = [], []
    if source == 'mmdet':
        out = OrderedDict()
        for key, value in state_dict.items():
            if key in MMDET_DROPPED_KEYS:
                dropped.append(key)
            elif key.startswith('backbone.'):
                out[key] = value
            elif key.startswith('panoptic_head.'):
                out['mask_generator.' + key[len('panoptic_head.'):]] = value
            else:
                unknown.append(key)
    else:
        official, origin, dropped, unknown = detectron2_to_official(
            state_dict)
        # only the Swin / pixel decoder / predictor keys exist: the other
        # modules are "missing" by design (completeness of the covered
        # modules is checked against the model, check_against_target)
        out, report = official_to_mmpsalm(
            official, strict=False, return_report=True)
        unknown += [origin[k] for k in report['unexpected']]
    if unknown and strict:
        hint = (' (mmdet 2.x names such as "attentions.0"? convert them '
                'with mmdet 3.x first)' if any('.attentions.' in k
                                               for k in unknown) else '')
        raise KeyError(f'unknown {source} Mask2Former keys ({len(unknown)}): '
                       f'{unknown}{hint} (pass strict=False / --no-strict to '
                       'skip them)')
    truncated = None
    if num_queries is not None and QUERY_EMBED in out:
        rows = out[QUERY_EMBED].shape[0]
        if rows < num_queries:
            raise ValueError(f'{QUERY_EMBED}: the source has {rows} queries, '
                             f'the model needs {num_queries}')
        if rows > num_queries:
            out[QUERY_EMBED] = out[QUERY_EMBED][:num_queries]
            truncated = (rows, num_queries)
    return out, dict(dropped=dropped, unknown=unknown, truncated=truncated)


def build_target_shapes(config: str) -> Dict[str, torch.Size]:
    """Keys and shapes of ``backbone`` and ``mask_generator`` of
    ``config``'s model, built on the meta device (no LLM, no weights)."""
    from mmengine.config import Config

    import projects.psalm  # noqa: F401
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(config)
    shapes = OrderedDict()
    # mmdet's Swin calls .item() on its drop-path linspace
    linspace = torch.linspace
    torch.linspace = lambda *a, **k: linspace(*a, **{'device': 'cpu', **k})
    try:
        for name in TARGET_MODULES:
            module_cfg = cfg.model[name].copy()
            module_cfg.pop('init_cfg', None)
            with torch.device('meta'):
                module = MODELS.build(module_cfg)
            for key, value in module.state_dict().items():
                shapes[f'{name}.{key}'] = value.shape
    finally:
        torch.linspace = linspace
    return shapes


def check_against_target(state: Dict[str, Tensor],
                         target: Dict[str, torch.Size]) -> List[str]:
    """Check converted keys and shapes against the target modules.

    Returns:
        list[str]: Target keys left at their initialisation (only the
        PSALM-only keys of :data:`PSALM_ONLY_PATTERNS`).

    Raises:
        ValueError: A shape differs.
        KeyError: A converted key is not in the target, or a target key
            other than the PSALM-only ones is missing.
    """
    mismatched = [f'{k}: converted {tuple(v.shape)} vs model '
                  f'{tuple(target[k])}' for k, v in state.items()
                  if k in target and tuple(v.shape) != tuple(target[k])]
    if mismatched:
        raise ValueError('shape mismatch: ' + '; '.join(mismatched))
    unexpected = [k for k in state if k not in target]
    not_in_source = [k for k in target if k not in state]
    missing = [k for k in not_in_source if not _pattern_match(k)]
    if unexpected or missing:
        raise KeyError(f'converted keys do not match the model: missing '
                       f'{missing}, unexpected {unexpected}')
    return not_in_source


def save(state: Dict[str, Tensor], dst: str, meta: dict) -> None:
    """Write ``{'state_dict', 'meta'}`` (.pth) or a .safetensors file."""
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    state = OrderedDict((k, v.contiguous()) for k, v in state.items())
    if dst.endswith('.safetensors'):
        from safetensors.torch import save_file
        save_file(state, dst, metadata={k: str(v) for k, v in meta.items()})
    else:
        torch.save(dict(state_dict=state, meta=meta), dst)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Initialise PSALM-OpenMMLab Swin-B + mask generator '
        'from a Mask2Former checkpoint')
    parser.add_argument('src', help='mmdet .pth or detectron2 .pkl/.pth')
    parser.add_argument('dst', help='output .pth or .safetensors')
    parser.add_argument('--source', choices=SOURCES,
                        help='checkpoint format (default: from the keys)')
    parser.add_argument('--config', default=DEFAULT_CONFIG,
                        help='PSALM config whose backbone and '
                        'mask_generator the result must match')
    parser.add_argument('--no-strict', action='store_true',
                        help='skip unknown source keys instead of failing')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> Dict[str, Tensor]:
    args = parse_args(argv)
    source_state = load_source(args.src)
    source = args.source or detect_source(source_state)
    target = build_target_shapes(args.config)
    num_queries = target[QUERY_EMBED][0] if QUERY_EMBED in target else None
    state, report = mask2former_to_mmpsalm(
        source_state, source, num_queries=num_queries,
        strict=not args.no_strict)
    not_in_source = check_against_target(state, target)
    meta = dict(
        source=osp.abspath(args.src),
        source_format=source,
        converter=osp.relpath(osp.abspath(__file__), ROOT),
        config=osp.relpath(osp.abspath(args.config), ROOT),
        dropped=report['dropped'],
        skipped=report['unknown'],
        not_in_source=not_in_source,
        truncated_query_embed=report['truncated'])
    save(state, args.dst, meta)
    params = sum(v.numel() for v in state.values())
    print(f'read {len(source_state)} {source} keys from {args.src}')
    print(f'converted {len(state)} keys ({params:,} values) -> {args.dst}')
    print(f'dropped {len(report["dropped"])} unused: {report["dropped"]}')
    print(f'left at init {len(not_in_source)} PSALM-only: {not_in_source}')
    if report['truncated']:
        print('query_embed: kept the first {1} of {0} rows'.format(
            *report['truncated']))
    if report['unknown']:
        print(f'skipped {len(report["unknown"])} unknown: '
              f'{report["unknown"]}')
    return state


if __name__ == '__main__':
    main()
