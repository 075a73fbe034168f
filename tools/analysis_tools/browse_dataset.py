# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Browse a PSALM training dataset: write the pipeline output as PNGs.

Builds ``train_dataloader.dataset`` of a config, runs its pipeline on the
first ``--num`` samples and writes one PNG per sample (image, GT masks,
visual prompts, prompt text; see ``projects/psalm/visualization/browse.py``).
For a concatenation of task datasets, ``--task-index`` picks one of them.

Example::

    python tools/analysis_tools/browse_dataset.py configs/psalm_joint.py \\
        --output-dir work_dirs/browse --num 10 --task-index 2
"""
import argparse
import os
import os.path as osp
import sys
from typing import List, Optional, Sequence

import cv2
from tqdm import tqdm

# make ``projects.psalm`` importable when run from anywhere
sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))

from mmengine.config import Config, DictAction  # noqa: E402
from mmengine.registry import init_default_scope  # noqa: E402

from mmdet.registry import DATASETS  # noqa: E402
from projects.psalm.visualization import draw_psalm_sample  # noqa: E402


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Write the training pipeline output of a config as PNGs')
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--output-dir', required=True, help='folder of the PNGs')
    parser.add_argument(
        '--num', type=int, default=10, help='number of samples to draw')
    parser.add_argument(
        '--task-index', type=int, default=None,
        help='index of the sub-dataset when the training dataset is a '
        'concatenation of task datasets')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, key=value pairs')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> List[str]:
    """Draw the samples; returns the paths of the written PNGs."""
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    if args.task_index is not None:
        datasets = getattr(dataset, 'datasets', None)
        if datasets is None:
            raise ValueError(f'--task-index given but the training dataset '
                             f'{type(dataset).__name__} is not a '
                             'concatenation of datasets')
        if not 0 <= args.task_index < len(datasets):
            raise ValueError(f'--task-index {args.task_index} out of range: '
                             f'the training dataset has {len(datasets)} '
                             'sub-datasets')
        dataset = datasets[args.task_index]
    os.makedirs(args.output_dir, exist_ok=True)
    paths = []
    for idx in tqdm(range(min(args.num, len(dataset))), desc='browse'):
        item = dataset[idx]
        sample = item['data_samples']
        picture = draw_psalm_sample(item['inputs'], sample)
        stem = osp.splitext(osp.basename(sample.metainfo.get(
            'img_path', 'sample')))[0]
        path = osp.join(args.output_dir, f'{idx:05d}_{stem}.png')
        if not cv2.imwrite(path, picture):
            raise OSError(f'could not write {path}')
        paths.append(path)
    print(f'wrote {len(paths)} pictures to {args.output_dir}')
    return paths


if __name__ == '__main__':
    main()
