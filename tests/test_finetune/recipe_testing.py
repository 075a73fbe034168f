# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Turn the fine-tuning recipes and custom test configs into tiny CPU runs.

A recipe keeps what makes it a recipe (``frozen_modules``, the LLM's
``lora`` and ``gradient_checkpointing``, the optimizer's ``paramwise_cfg``,
the data and the task sampler) and gets the tiny model of
``configs/_base_/models/psalm_tiny.py``, small inputs, the custom data of
:mod:`custom_data`, a short schedule and, on CPU, fp32 (mmengine's
``AmpOptimWrapper`` needs a GPU); ``ZeroRedundancyOptimizer`` (ZeRO-1) is
kept and needs a distributed launch (``tools/dist_train.sh``, gloo on CPU).
"""
import json
import os
import os.path as osp
import re
import subprocess
import sys
from typing import Dict, List

from config_testing import _resize_pipelines, tiny_config
from mmengine.config import Config

REPO_ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
TINY_MODEL = 'configs/_base_/models/psalm_tiny.py'
RECIPES = {
    'full': 'configs/finetune/psalm_swin-b_phi-1.5_finetune-full_custom.py',
    'frozen-llm':
    'configs/finetune/psalm_swin-b_phi-1.5_finetune-frozen-llm_custom.py',
    'lora': 'configs/finetune/psalm_swin-b_phi-1.5_finetune-lora_custom.py',
    'full-zero1':
    'configs/finetune/psalm_swin-b_phi-1.5_finetune-full-zero1_custom.py',
}
OFFICIAL_LORA = ('configs/finetune/'
                 'psalm_official_swin-b_phi-1.5_finetune-lora_custom.py')
TEST_PANOPTIC = 'configs/finetune/psalm_swin-b_phi-1.5_test_custom-panoptic.py'
TEST_GRES = 'configs/finetune/psalm_swin-b_phi-1.5_test_custom-gres.py'
TEST_INTERACTIVE = ('configs/finetune/'
                    'psalm_swin-b_phi-1.5_test_custom-interactive-point.py')
IMAGE_SIZE = 128


def tiny_model(recipe: Config, image_size: int = IMAGE_SIZE) -> Config:
    """The tiny model with the recipe's trainable-part settings."""
    tiny = Config.fromfile(osp.join(REPO_ROOT, TINY_MODEL)).model
    tiny.language_model.tokenizer = osp.join(REPO_ROOT,
                                             tiny.language_model.tokenizer)
    tiny.data_preprocessor.fixed_size = (image_size, image_size)
    tiny.frozen_modules = recipe.model.frozen_modules
    llm = recipe.model.language_model
    tiny.language_model.gradient_checkpointing = llm.gradient_checkpointing
    if llm.get('lora'):
        tiny.language_model.lora = llm.lora
    return tiny


def tiny_recipe(name: str, data_root: str, load_from: str, out: str,
                max_iters: int = 30, lr: float = 1e-3) -> str:
    """Write the tiny version of recipe ``name``; returns its path."""
    cfg = Config.fromfile(osp.join(REPO_ROOT, RECIPES[name]))
    cfg.model = tiny_model(cfg)
    _resize_pipelines(cfg._cfg_dict, IMAGE_SIZE)
    loader = cfg.train_dataloader
    loader.update(batch_size=2, num_workers=0, persistent_workers=False)
    # one task after the other: the loss of whole cycles is comparable
    loader.batch_sampler.mode = 'round_robin'
    for dataset in loader.dataset.datasets:
        dataset.data_root = data_root + '/'
    wrapper = cfg.optim_wrapper
    # the recipe's optimizer (AdamW, or ZeRO-1's sharded AdamW), fp32
    cfg.optim_wrapper = dict(type='OptimWrapper',
                             optimizer=dict(wrapper.optimizer, lr=lr),
                             clip_grad=wrapper.get('clip_grad'))
    if 'paramwise_cfg' in wrapper:
        cfg.optim_wrapper['paramwise_cfg'] = wrapper.paramwise_cfg
    cfg.train_cfg.max_iters = max_iters
    cfg.param_scheduler = [
        dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
             end=3)
    ]
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint.interval = max_iters
    cfg.log_processor = dict(type='LogProcessor', window_size=1,
                             by_epoch=False)
    cfg.load_from = load_from
    cfg.randomness = dict(seed=0)
    path = osp.join(out, f'tiny_{name}.py')
    cfg.dump(path)
    return path


def tiny_test_config(data_root: str, out: str,
                     config: str = TEST_PANOPTIC) -> str:
    """The tiny custom-panoptic test config on ``data_root``."""
    cfg = tiny_config(config, REPO_ROOT, IMAGE_SIZE)
    old = cfg.test_dataloader.dataset.data_root
    new = data_root + '/'
    cfg.test_dataloader.update(batch_size=2, num_workers=0,
                               persistent_workers=False)
    cfg.test_dataloader.dataset.data_root = new
    metrics = cfg.test_evaluator
    for metric in metrics if isinstance(metrics, list) else [metrics]:
        for key in ('ann_file', 'seg_prefix'):
            if key in metric:
                metric[key] = new + metric[key][len(old):]
    path = osp.join(out, 'tiny_test_' + osp.basename(config))
    cfg.dump(path)
    return path


def run(cmd: List[str], timeout: int = 600) -> str:
    """Run a tool of the repository; returns stdout + stderr."""
    env = dict(os.environ, OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='')
    proc = subprocess.run([sys.executable, *cmd], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise AssertionError(f'{" ".join(cmd)} failed ({proc.returncode}):'
                             f'\n{output[-6000:]}')
    return output


def train_losses(work_dir: str) -> Dict[int, float]:
    """Iteration -> logged total loss, from the run's ``scalars.json``."""
    path = next(
        osp.join(root, name) for root, _, names in os.walk(work_dir)
        for name in names if name == 'scalars.json')
    with open(path) as f:
        entries = [json.loads(line) for line in f]
    return {e['iter']: e['loss'] for e in entries if 'loss' in e}


def parse_metrics(output: str) -> Dict[str, float]:
    """The metrics of the last ``Iter(test)`` line of a tool's log."""
    line = [ln for ln in output.splitlines() if 'Iter(test)' in ln][-1]
    return {
        key: float(value)
        for key, value in re.findall(r'(\S+/\S+): (\S+)', line)
    }
