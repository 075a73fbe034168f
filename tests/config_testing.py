# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Turn a real (paper-size) config into a tiny one for CPU tests.

The tiny model of ``configs/_base_/models/psalm_tiny.py`` replaces the
config's model, keeping the config's task switches (input schema, condition
encoder, criterion and test settings), and every ``Resize`` of the pipelines
and the preprocessor's fixed size become ``image_size``.
"""
import os.path as osp
import re
from typing import Any, Dict, List

import torch
from mmengine.config import Config

TINY_MODEL = 'configs/_base_/models/psalm_tiny.py'
BENCH = 'configs/benchmarks/psalm_swin-b_phi-1.5_test_{}.py'
PQ_KEYS = [f'coco_panoptic/{m}{s}' for s in ('', '_th', '_st')
           for m in ('PQ', 'SQ', 'RQ')]
SEM_KEYS = [f'sem_seg/{m}' for m in ('mIoU', 'fwIoU', 'mACC', 'pACC')]
# keys of the real model that select behaviour, not size
KEEP = {
    'input_schema': ('prompt_style', 'category_terminator',
                     'sentence_terminator', 'mask_token_position',
                     'append_background', 'merge_sentences'),
    'condition_encoder': ('sentence_pooling', 'visual_pooling'),
    'language_model': ('added_tokens', ),
}


def _resize_pipelines(node: Any, image_size: int) -> None:
    if isinstance(node, dict):
        if node.get('type') in ('Resize', 'mmdet.Resize') and 'scale' in node:
            node['scale'] = (image_size, image_size)
        for value in node.values():
            _resize_pipelines(value, image_size)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _resize_pipelines(value, image_size)


def tiny_config(config: str, repo_root: str, image_size: int = 256) -> Config:
    """Load ``config`` with the tiny model and ``image_size`` inputs."""
    cfg = Config.fromfile(osp.join(repo_root, config))
    tiny = Config.fromfile(osp.join(repo_root, TINY_MODEL)).model
    real = cfg.model
    for part, keys in KEEP.items():
        for key in keys:
            if key in real.get(part, {}):
                tiny[part][key] = real[part][key]
    for key in ('test_cfg', 'frozen_modules', 'shuffle_categories'):
        if key in real:
            tiny[key] = real[key]
    tiny.language_model.tokenizer = osp.join(repo_root,
                                             tiny.language_model.tokenizer)
    tiny.data_preprocessor.fixed_size = (image_size, image_size)
    cfg.model = tiny
    _resize_pipelines(cfg._cfg_dict, image_size)
    return cfg


def save_random_checkpoint(cfg: Config, path: str, seed: int = 0) -> None:
    """Build ``cfg.model`` randomly initialised and save a weights-only
    checkpoint that ``tools/test.py`` can load."""
    import projects.psalm  # noqa: F401
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    model.init_weights()
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)


def benchmark_config(repo_root: str, name: str) -> Config:
    """The (paper-size) config of benchmark ``name``."""
    return Config.fromfile(osp.join(repo_root, BENCH.format(name)))


def pipeline_types(pipeline: List[dict]) -> List[str]:
    return [step['type'] for step in pipeline]


def parse_metrics(output: str) -> Dict[str, float]:
    """The metrics of the last ``Iter(test)`` line of a log."""
    line = [ln for ln in output.splitlines() if 'Iter(test)' in ln][-1]
    return {
        key: float(value)
        for key, value in re.findall(r'(\S+/\S+): (\S+)', line)
    }
