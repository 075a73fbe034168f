# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Evaluate a checkpoint on a test config and print the metric table."""
import argparse
import os
import os.path as osp
import sys

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..')))

from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.registry import RUNNERS  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from mmdet.evaluation import DumpDetResults  # noqa: E402
from mmdet.utils import setup_cache_size_limit_of_dynamo  # noqa: E402
from projects.psalm.engine.runtime import (  # noqa: E402
    destroy_distributed, init_cpu_distributed, prepare_config)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument(
        'checkpoint', nargs='?',
        help='checkpoint file (omit only for a model without weights, '
        'e.g. TrivialBaseline)')
    parser.add_argument('--work-dir', help='the dir to save the metrics')
    parser.add_argument('--out', type=str,
                        help='dump predictions to a pickle file (.pkl)')
    parser.add_argument('--show-dir',
                        help='directory where painted images are saved')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, key=value pairs')
    parser.add_argument(
        '--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none', help='job launcher')
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
    cfg.load_from = args.checkpoint

    if args.show_dir:
        vis_hook = cfg.default_hooks.get('visualization')
        if vis_hook is None:
            raise ValueError('--show-dir needs a visualization hook in '
                             '`default_hooks`')
        vis_hook['draw'] = True
        vis_hook['test_out_dir'] = args.show_dir

    if 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
    else:
        runner = RUNNERS.build(cfg)

    if args.out is not None:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise ValueError('--out must be a .pkl file')
        runner.test_evaluator.metrics.append(
            DumpDetResults(out_file_path=args.out))
    if args.checkpoint is None:
        num_params = sum(p.numel() for p in runner.model.parameters())
        if num_params:
            raise ValueError(
                f'{args.config}: the model has {num_params} parameters; '
                'give the checkpoint to evaluate (only a model without '
                'weights, e.g. TrivialBaseline, runs without one)')
    runner.test()
    destroy_distributed()


if __name__ == '__main__':
    main()
