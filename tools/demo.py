# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Run PSALM on one image with one prompt; save the picture and the json.

Examples::

    python tools/demo.py demo.jpg --config CFG --checkpoint CKPT \\
        --text "the dog on the left"
    python tools/demo.py demo.jpg --config CFG --checkpoint CKPT \\
        --categories person,dog,grass --task semantic
    python tools/demo.py demo.jpg --config CFG --checkpoint CKPT \\
        --points 120,80 130,95          # one region, two clicks
    python tools/demo.py demo.jpg --config CFG --checkpoint CKPT \\
        --box 10,20,200,240 --box 300,40,420,200   # two regions
    python tools/demo.py demo.jpg --config CFG --checkpoint CKPT \\
        --question "What is the dog doing?"

Writes ``<out-dir>/<image stem>_<task>.png`` (the prediction drawn on the
image) and ``<out-dir>/<image stem>_<task>.json`` (``task``, the prompt and
the predictions: COCO-RLE ``masks`` at the original size, ``labels``,
``label_names``, ``scores``, or the ``answer``).
"""
import argparse
import json
import os
import os.path as osp
import sys
from typing import List, Optional, Sequence, Tuple

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..')))

import mmcv  # noqa: E402

from projects.psalm.apis import PSALMInferencer  # noqa: E402
from projects.psalm.apis.prompts import KIND_TASKS  # noqa: E402


def _numbers(text: str, count: int, name: str) -> Tuple[float, ...]:
    """Parse ``'a,b,...'`` into ``count`` floats."""
    parts = text.split(',')
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != count or len(parts) != count:
        raise argparse.ArgumentTypeError(
            f'{name} must be {count} comma-separated numbers, got {text!r}')
    return values


def _xy(text: str) -> Tuple[float, ...]:
    return _numbers(text, 2, 'a point (x,y)')


def _xyxy(text: str) -> Tuple[float, ...]:
    return _numbers(text, 4, 'a box (x1,y1,x2,y2)')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='PSALM demo: one image, one prompt')
    parser.add_argument('image', help='image file')
    parser.add_argument('--config', required=True, help='model config file')
    parser.add_argument('--checkpoint', required=True, help='checkpoint')
    prompt = parser.add_mutually_exclusive_group(required=True)
    prompt.add_argument('--text', help='referring expression')
    prompt.add_argument(
        '--categories', help='comma-separated class names, e.g. person,dog')
    prompt.add_argument(
        '--categories-file', help='text file with one class name per line')
    prompt.add_argument(
        '--points', type=_xy, nargs='+', metavar='X,Y',
        help='clicks of ONE region')
    prompt.add_argument(
        '--box', type=_xyxy, action='append', metavar='X1,Y1,X2,Y2',
        help='a box region (repeat for several regions)')
    prompt.add_argument(
        '--scribble', type=_xy, nargs='+', metavar='X,Y',
        help='vertices of ONE polyline scribble')
    prompt.add_argument(
        '--mask', nargs='+', metavar='PNG',
        help='mask image(s), non-zero = inside; one region each')
    prompt.add_argument('--question', help='visual question')
    tasks = sorted({t for kind_tasks in KIND_TASKS.values()
                    for t in kind_tasks})
    parser.add_argument(
        '--task', choices=tasks,
        help='task of the prompt (default: referring / panoptic / '
        'interactive / vqa by prompt kind)')
    parser.add_argument('--out-dir', default='outputs', help='output folder')
    parser.add_argument('--device', default='cpu', help='e.g. cpu, cuda:0')
    parser.add_argument(
        '--pred-score-thr', type=float, default=0.3,
        help='masks scored below are not drawn')
    return parser.parse_args(argv)


def _categories(args: argparse.Namespace) -> Optional[List[str]]:
    if args.categories is not None:
        return [name.strip() for name in args.categories.split(',')
                if name.strip()]
    if args.categories_file is not None:
        with open(args.categories_file) as f:
            return [line.strip() for line in f if line.strip()]
    return None


def main(argv: Optional[Sequence[str]] = None) -> Tuple[str, str]:
    """Run the demo.

    Returns:
        tuple[str, str]: Paths of the written picture and json.
    """
    args = parse_args(argv)
    inferencer = PSALMInferencer(
        args.config, args.checkpoint, device=args.device)
    mask = args.mask[0] if args.mask and len(args.mask) == 1 else args.mask
    result = inferencer(
        args.image,
        text=args.text,
        categories=_categories(args),
        points=args.points,
        box=args.box[0] if args.box and len(args.box) == 1 else args.box,
        scribble=args.scribble,
        mask=mask,
        question=args.question,
        task=args.task,
        pred_score_thr=args.pred_score_thr)
    prediction = result['predictions'][0]
    task = prediction['task']
    os.makedirs(args.out_dir, exist_ok=True)
    stem = osp.join(args.out_dir,
                    f'{osp.splitext(osp.basename(args.image))[0]}_{task}')
    picture_path, json_path = f'{stem}.png', f'{stem}.json'
    # the pictures are RGB, mmcv writes BGR
    mmcv.imwrite(result['visualization'][0][..., ::-1], picture_path)
    with open(json_path, 'w') as f:
        json.dump(dict(image=args.image, **prediction), f)
    print(f'picture: {picture_path}')
    print(f'predictions: {json_path}')
    return picture_path, json_path


if __name__ == '__main__':
    main()
