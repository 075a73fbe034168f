# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Config preparation shared by ``tools/train.py`` and ``tools/test.py``."""
import os.path as osp
from typing import Optional

import torch
from mmengine.config import Config

__all__ = [
    'prepare_config', 'init_cpu_distributed', 'destroy_distributed',
    'apply_amp'
]

# the default hooks mmengine's Runner itself removes when set to None
_MMENGINE_DEFAULT_HOOKS = ('runtime_info', 'timer', 'sampler_seed', 'logger',
                           'param_scheduler', 'checkpoint')


def prepare_config(cfg: Config, config_path: str, launcher: str,
                   cfg_options: Optional[dict],
                   work_dir: Optional[str]) -> Config:
    """Apply the command-line settings every tool shares.

    * ``--cfg-options`` are merged first, so they can change anything;
    * the work dir defaults to ``./work_dirs/<config name>``;
    * distributed runs without CUDA use the gloo backend (nccl needs GPUs),
      so ``tools/dist_train.sh CONFIG 2`` also works on a CPU machine
      (with :func:`init_cpu_distributed`);
    * a ``default_hooks`` entry set to None is removed (mmengine accepts None
      only for its own default hooks), so ``--cfg-options
      default_hooks.non_finite=None`` turns a PSALM default hook off.
    """
    cfg.launcher = launcher
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    default_hooks = cfg.get('default_hooks') or {}
    for name in [k for k, v in default_hooks.items() if v is None]:
        if name not in _MMENGINE_DEFAULT_HOOKS:
            default_hooks.pop(name)
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(config_path))[0])
    if launcher != 'none' and not torch.cuda.is_available():
        env_cfg = cfg.setdefault('env_cfg', {})
        env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
        # DDP of a CPU module takes no device ids (mmengine passes the rank)
        wrapper = cfg.get('model_wrapper_cfg') or dict(
            type='MMDistributedDataParallel',
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
        wrapper['device_ids'] = None
        cfg.model_wrapper_cfg = wrapper
    return cfg


def init_cpu_distributed(launcher: str) -> None:
    """Start the gloo process group of a torchrun launch without CUDA.

    mmengine's ``pytorch`` launcher calls ``torch.cuda.set_device``, which a
    CPU-only torch does not have; the Runner skips its own initialisation
    when a process group already exists. Does nothing with CUDA or another
    launcher.
    """
    import torch.distributed as dist
    if (launcher == 'pytorch' and not torch.cuda.is_available()
            and not dist.is_initialized()):
        dist.init_process_group(backend='gloo')


def destroy_distributed() -> None:
    """Tear the process group down before the interpreter exits.

    A gloo group left alive at exit can abort a rank during shutdown
    ("terminate called without an active exception") after a finished run.
    """
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        # every rank must be done with collectives before any rank tears
        # its group down, or a peer's gloo thread sees closed sockets
        dist.barrier()
        dist.destroy_process_group()


def apply_amp(cfg: Config, dtype: str) -> None:
    """Switch ``OptimWrapper`` to ``AmpOptimWrapper`` (``--amp``).

    fp16 gets dynamic loss scaling; bf16 has fp32's range and needs none.
    Wrappers that are already mixed precision (AMP, DeepSpeed) are kept.
    """
    wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if wrapper in ('AmpOptimWrapper', 'DeepSpeedOptimWrapper'):
        return  # already mixed precision or handled by the strategy
    if wrapper != 'OptimWrapper':
        raise ValueError(f'--amp does not know how to convert {wrapper}')
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.dtype = dtype
    # bf16 has fp32's range: no loss scaling needed
    cfg.optim_wrapper.loss_scale = 'dynamic' if dtype == 'float16' else 1.0
