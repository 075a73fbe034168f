# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Train a PSALM (or any registered mmdet) model from a config.

Same command line as mmdet's ``tools/train.py``, plus ``--amp-dtype`` for
bf16 and support for ``runner_type='FlexibleRunner'`` (DeepSpeed / FSDP).
"""
import argparse
import os
import os.path as osp
import sys

# make ``projects.psalm`` importable when run from anywhere
sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..')))

from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.registry import RUNNERS  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from mmdet.utils import setup_cache_size_limit_of_dynamo  # noqa: E402
from projects.psalm.engine.runtime import (  # noqa: E402
    apply_amp, destroy_distributed, init_cpu_distributed, prepare_config)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a PSALM model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--amp', action='store_true',
        help='enable automatic mixed precision (fp16 unless --amp-dtype)')
    parser.add_argument(
        '--amp-dtype', choices=['float16', 'bfloat16'], default=None,
        help='mixed-precision dtype; implies --amp')
    parser.add_argument(
        '--auto-scale-lr', action='store_true',
        help='scale the learning rate with the total batch size')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from the given checkpoint, or from the latest one in '
        'the work dir when no path is given')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, key=value pairs '
        '(e.g. train_dataloader.batch_size=2)')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none', help='job launcher')
    # torch.distributed.launch passes --local-rank; torchrun sets LOCAL_RANK
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main() -> None:
    args = parse_args()
    setup_cache_size_limit_of_dynamo()

    cfg = prepare_config(Config.fromfile(args.config), args.config,
                         args.launcher, args.cfg_options, args.work_dir)
    init_cpu_distributed(args.launcher)

    if args.amp or args.amp_dtype:
        apply_amp(cfg, args.amp_dtype or 'float16')

    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise ValueError('--auto-scale-lr needs `auto_scale_lr.base_batch_size` '
                             'in the config')
        cfg.auto_scale_lr.enable = True

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    if 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
    else:
        runner = RUNNERS.build(cfg)
    runner.train()
    destroy_distributed()


if __name__ == '__main__':
    main()
