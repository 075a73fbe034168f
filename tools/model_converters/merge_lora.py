# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Merge the LoRA adapters of a PSALM checkpoint into plain weights.

A checkpoint trained with ``language_model.lora`` (e.g.
``configs/finetune/psalm_swin-b_phi-1.5_finetune-lora_custom.py``) holds, for
every adapted linear layer ``X`` of the LLM, ``X.base_layer.weight`` (and
``bias``), ``X.lora_A.default.weight``, ``X.lora_B.default.weight``, and the
adapters' scaling ``language_model.lora_scaling``. This tool writes
``X.weight = W + scaling * B @ A`` (``X.bias`` unchanged), drops the adapter
entries and keeps everything else, so the result loads into the same model
built WITHOUT ``lora`` (any test config, the demo, the inferencer) and gives
the same outputs. No model is built: it works on CPU for the paper-size
model, without the Phi weights.

The output holds only ``state_dict`` and ``meta`` (no optimizer or message
hub; weights-only loadable). Input: a ``.pth`` (loaded weights-only) or
``.safetensors``; output ``.safetensors`` if the name ends so.

Example::

    python tools/model_converters/merge_lora.py \\
        work_dirs/psalm_swin-b_phi-1.5_finetune-lora_custom/iter_2000.pth \\
        checkpoints/psalm_custom_merged.pth
"""
import argparse
import os
import os.path as osp
import sys
from typing import Optional, Sequence

import torch

# make ``projects.psalm`` importable when run from anywhere
sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))

from projects.psalm.engine.checkpoint import load_weights_only  # noqa: E402
from projects.psalm.models.lmm.lora import merge_lora_state_dict  # noqa: E402


def merge_checkpoint(src: str, dst: str) -> int:
    """Merge the adapters of checkpoint ``src`` into ``dst``.

    Args:
        src (str): Checkpoint with LoRA adapters.
        dst (str): Output checkpoint (``.pth`` or ``.safetensors``).

    Returns:
        int: The number of merged layers.

    Raises:
        ValueError: ``src`` has no LoRA adapter, or a malformed one.
    """
    checkpoint = load_weights_only(src, map_location='cpu')
    state_dict = checkpoint.get('state_dict', checkpoint) if isinstance(
        checkpoint, dict) else None
    if not isinstance(state_dict, dict):
        raise ValueError(f'{src}: not a checkpoint (no state dict)')
    merged, num = merge_lora_state_dict(state_dict)
    if num == 0:
        raise ValueError(f'{src}: no LoRA adapter to merge (no '
                         '`*.lora_A.default.weight` key)')
    meta = dict(checkpoint.get('meta') or {}) if 'state_dict' in \
        checkpoint else {}
    meta['lora_merged'] = dict(source=osp.abspath(src), layers=num)
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    if dst.endswith('.safetensors'):
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in merged.items()}, dst)
    else:
        torch.save(dict(state_dict=merged, meta=meta), dst)
    return num


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Merge the LoRA adapters of a PSALM checkpoint into a '
        'plain checkpoint (for the model built without language_model.lora)')
    parser.add_argument('src', help='checkpoint with LoRA adapters')
    parser.add_argument('dst', help='output checkpoint (.pth/.safetensors)')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    num = merge_checkpoint(args.src, args.dst)
    print(f'merged the LoRA adapters of {num} layers into {args.dst}')
    return num


if __name__ == '__main__':
    main()
