# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Convert the released PSALM checkpoint (EnmingZhang/PSALM) to this project.

    python tools/model_converters/psalm_official_to_mmpsalm.py SRC DST

SRC: a local folder with ``model.safetensors.index.json`` + shards, a single
``.safetensors`` file, or a ``.bin`` (read with ``torch.load(
weights_only=True)``). DST: ``.pth`` (mmengine weights-only checkpoint
``{'state_dict': ..., 'meta': ...}``, for ``load_from``) or
``.safetensors``. The converted tensors are checked key by key and shape by
shape against the official-architecture model built on the meta device from
``--config`` (default ``configs/_base_/models/psalm_official.py``).

The stage-1 projector of ``EnmingZhang/PSALM_stage1`` (``mm_projector.bin``,
only ``model.mm_projector.*`` keys) is recognised and converted alone to
``projector.*`` (checked against the model's projector), e.g. for
``model.projector.init_cfg=dict(type='Pretrained', checkpoint=DST,
prefix='projector.')``::

    python tools/model_converters/psalm_official_to_mmpsalm.py \
        checkpoints/PSALM_stage1/mm_projector.bin \
        checkpoints/psalm_stage1_projector.pth
"""
import argparse
import json
import os
import os.path as osp
import sys

import torch

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

DEFAULT_CONFIG = osp.join(ROOT, 'configs', '_base_', 'models',
                          'psalm_official.py')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Convert the released PSALM weights to PSALM-OpenMMLab')
    parser.add_argument('src', help='official checkpoint: folder with '
                        'model.safetensors.index.json, .safetensors or .bin')
    parser.add_argument('dst', help='output .pth or .safetensors')
    parser.add_argument('--config', default=DEFAULT_CONFIG,
                        help='official-architecture model config whose '
                        'state dict the result must match')
    parser.add_argument('--no-strict', action='store_true',
                        help='skip unknown/missing keys instead of failing')
    return parser.parse_args(argv)


def load_official(src: str) -> dict:
    """Read a local official checkpoint into a flat ``{key: tensor}``."""
    from safetensors.torch import load_file
    if osp.isdir(src):
        index = osp.join(src, 'model.safetensors.index.json')
        if osp.isfile(index):
            with open(index) as f:
                shards = sorted(set(json.load(f)['weight_map'].values()))
            state = {}
            for shard in shards:
                state.update(load_file(osp.join(src, shard)))
            return state
        single = osp.join(src, 'model.safetensors')
        if osp.isfile(single):
            return load_file(single)
        raise FileNotFoundError(f'{src} has no model.safetensors.index.json '
                                'nor model.safetensors')
    if not osp.isfile(src):
        raise FileNotFoundError(f'{src} does not exist')
    if src.endswith('.safetensors'):
        return load_file(src)
    state = torch.load(src, map_location='cpu', weights_only=True)
    if isinstance(state, dict) and 'state_dict' in state:
        state = state['state_dict']
    return state


def build_meta_model(config: str):
    """The model of ``config`` on the meta device (shapes only)."""
    from mmengine.config import Config

    import projects.psalm  # noqa: F401
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(config)
    lm = cfg.model.language_model
    if not osp.isabs(lm.tokenizer) and not osp.exists(lm.tokenizer):
        lm.tokenizer = osp.join(ROOT, lm.tokenizer)
    # mmdet's Swin calls .item() on its drop-path linspace: make that one
    # on the CPU while everything else is built on the meta device
    linspace = torch.linspace
    torch.linspace = lambda *a, **k: linspace(*a, **{'device': 'cpu', **k})
    try:
        with torch.device('meta'):
            model = MODELS.build(cfg.model)
    finally:
        torch.linspace = linspace
    return model, cfg


def check_against_model(state: dict, model, strict: bool,
                        prefix: str = '') -> None:
    """Compare converted keys and shapes with ``model``'s state dict (only
    its ``prefix`` keys); drop unexpected keys when not ``strict``."""
    expected = {k: v for k, v in model.state_dict().items()
                if k.startswith(prefix)}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [f'{k}: converted {tuple(state[k].shape)} vs model '
                  f'{tuple(v.shape)}' for k, v in expected.items()
                  if k in state and state[k].shape != v.shape]
    if mismatched:
        raise ValueError('shape mismatch: ' + '; '.join(mismatched))
    if (missing or unexpected) and strict:
        raise KeyError(f'converted keys do not match the model: missing '
                       f'{missing}, unexpected {unexpected}')
    for k in unexpected:
        state.pop(k)


def save(state: dict, dst: str, meta: dict) -> None:
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    state = {k: v.contiguous() for k, v in state.items()}
    if dst.endswith('.safetensors'):
        from safetensors.torch import save_file
        save_file(state, dst, metadata={k: str(v) for k, v in meta.items()})
    else:
        torch.save(dict(state_dict=state, meta=meta), dst)


def is_stage1_projector(official: dict) -> bool:
    """Whether ``official`` is the stage-1 ``mm_projector.bin`` (only
    ``model.mm_projector.*`` keys)."""
    from projects.psalm.models.official_keys import OFFICIAL_PROJECTOR_PREFIX
    return bool(official) and all(
        k.startswith(OFFICIAL_PROJECTOR_PREFIX) for k in official)


def main(argv=None):
    from projects.psalm.models.official_keys import (
        official_projector_to_mmpsalm, official_to_mmpsalm)
    args = parse_args(argv)
    strict = not args.no_strict
    model, cfg = build_meta_model(args.config)
    num_heads = model.language_model.llm.config.num_attention_heads
    official = load_official(args.src)
    if is_stage1_projector(official):
        state, report = official_projector_to_mmpsalm(
            official, strict=strict, return_report=True)
        report['dropped'] = []
        check_against_model(state, model, strict, prefix='projector.')
        print(f'{args.src} is a stage-1 projector: converting '
              'model.mm_projector.* only')
    else:
        state, report = official_to_mmpsalm(
            official, num_heads=num_heads, strict=strict,
            return_report=True)
        check_against_model(state, model, strict)
    meta = dict(source=osp.abspath(args.src),
                converter=osp.relpath(osp.abspath(__file__), ROOT),
                config=osp.relpath(osp.abspath(args.config), ROOT),
                dropped=report['dropped'], skipped=report['unexpected'])
    save(state, args.dst, meta)
    params = sum(v.numel() for v in state.values())
    print(f'read {len(official)} official keys from {args.src}')
    print(f'converted {len(state)} keys ({params:,} values) -> {args.dst}')
    print(f'dropped {len(report["dropped"])} unused: {report["dropped"]}')
    if report['unexpected'] or report['missing']:
        print(f'skipped {len(report["unexpected"])} unknown: '
              f'{report["unexpected"]}; missing {report["missing"]}')
    return state


if __name__ == '__main__':
    main()
