# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Generate ShapesWorld, a seeded synthetic world in the formats of the real
datasets (COCO panoptic / instances / COCO-Interactive, RefCOCO/+/g,
gRefCOCO, LLaVA, VQA, CC3M, DAVIS-2017), laid out as the README's
``data/`` tree so the real configs read it with their ``data_root`` moved
to ``OUT_DIR`` (see ``projects/psalm/datasets/shapesworld/generate.py``).

Example::

    python tools/dataset_converters/generate_shapesworld.py \\
        work_dirs/shapesworld/data --num-train 400 --num-val 60 \\
        --num-videos 8 --seed 0
"""
import argparse
import os.path as osp
import sys
import time
from typing import Optional, Sequence

# make ``projects.psalm`` importable when run from anywhere
sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))

from projects.psalm.datasets.shapesworld import \
    generate_shapesworld  # noqa: E402


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Generate the ShapesWorld data tree (synthetic scenes '
        'in the real datasets\' formats).')
    parser.add_argument('out_dir', help='root of the tree (README: data/)')
    parser.add_argument('--num-train', type=int, default=400,
                        help='train scenes (default 400)')
    parser.add_argument('--num-val', type=int, default=60,
                        help='val scenes (default 60)')
    parser.add_argument('--num-videos', type=int, default=8,
                        help='DAVIS videos, val and train alternately '
                        '(default 8)')
    parser.add_argument('--seed', type=int, default=0, help='seed (>= 0)')
    parser.add_argument('--image-size', type=int, default=256,
                        help='side of the square images (default 256)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace the coco/ llava/ vqa/ cc3m/ DAVIS/ '
                        'folders of an earlier run')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> dict:
    """Generate the tree; prints and returns the summary of
    :func:`generate_shapesworld`."""
    args = parse_args(argv)
    start = time.perf_counter()
    result = generate_shapesworld(
        args.out_dir,
        num_train=args.num_train,
        num_val=args.num_val,
        num_videos=args.num_videos,
        seed=args.seed,
        image_size=args.image_size,
        overwrite=args.overwrite,
        progress=True)
    elapsed = time.perf_counter() - start
    counts = result['counts']
    print(f'ShapesWorld (seed {args.seed}, {args.image_size}x'
          f'{args.image_size}) written to {result["root"]}/ in '
          f'{elapsed:.1f} s')
    rows = [('', 'train', 'val')]
    for key in ('images', 'objects', 'stuff_segments', 'interactive_regions',
                'refcoco', 'refcoco+', 'refcocog', 'grefcoco'):
        rows.append((key, counts['train'][key], counts['val'][key]))
    rows += [('llava_records', counts['train']['llava_records'], '-'),
             ('cc3m_records', counts['train']['cc3m_records'], '-'),
             ('vqa_questions', '-', counts['val']['vqa_questions']),
             ('davis_videos', counts['davis']['train'],
              counts['davis']['val'])]
    for name, train, val in rows:
        print(f'  {name:<20}{train!s:>8}{val!s:>8}')
    print(f'  DAVIS frames: {counts["davis"]["frames"]}')
    return result


if __name__ == '__main__':
    main()
