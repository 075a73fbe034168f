# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Write the ShapesWorld quickstart report (``report.md``).

Reads what ``tools/quickstart.sh`` left in its work dir:

* ``<timestamp>/vis_data/scalars.json`` of the training run -> the loss
  curve ``loss_curve.png``;
* ``test_<benchmark>/<timestamp>/<timestamp>.json`` (PSALM) and
  ``baseline_<rule>_<benchmark>/...`` (:class:`TrivialBaseline`, same
  configs and metrics) -> the metric table, each PSALM number next to the
  trivial baselines of its task;
* with ``--config`` and ``--checkpoint``: pictures of every prompt kind on
  held-out images, made with the demo's :class:`PSALMInferencer` (one
  ``set_image`` per image, then every prompt), in ``vis/``.

Example::

    python tools/analysis_tools/shapesworld_report.py work_dirs/quickstart \\
        --config configs/shapesworld/psalm_tiny_2xb2-5k_shapesworld.py \\
        --checkpoint work_dirs/quickstart/iter_5000.pth \\
        --data-root data/shapesworld
"""
import argparse
import glob
import json
import os
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))

import cv2  # noqa: E402
import matplotlib  # noqa: E402
import numpy as np  # noqa: E402

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

#: (benchmark, title, [(metric key, column name)], [(baseline rule, label)],
#: the metric PSALM must beat the baselines on)
BENCHMARKS: List[Tuple[str, str, List[Tuple[str, str]],
                       List[Tuple[str, str]], str]] = [
    ('panoptic', 'Panoptic segmentation (val)',
     [('coco_panoptic/PQ', 'PQ'), ('coco_panoptic/PQ_th', 'PQ things'),
      ('coco_panoptic/PQ_st', 'PQ stuff'), ('coco/segm_mAP', 'mask AP'),
      ('sem_seg/mIoU', 'mIoU')],
     [('whole_image', 'whole image, majority class'),
      ('colour_regions', 'one region per colour')], 'coco_panoptic/PQ'),
    ('refcoco', 'Referring segmentation (val)',
     [('refseg/cIoU', 'cIoU'), ('refseg/mIoU', 'mIoU')],
     [('largest_object', 'largest object (GT masks)')], 'refseg/cIoU'),
    ('grefcoco', 'Generalized referring, zero-shot (val)',
     [('gres/cIoU', 'cIoU'), ('gres/gIoU', 'gIoU'), ('gres/N-acc', 'N-acc'),
      ('gres/T-acc', 'T-acc')],
     [('largest_object', 'largest object (GT masks)')], 'gres/gIoU'),
] + [
    (f'interactive-{kind}', f'Interactive segmentation, {kind} (val)',
     [('interactive/mIoU', 'mIoU'), ('interactive/cIoU', 'cIoU')],
     [('prompt', f'the {kind} itself')], 'interactive/mIoU')
    for kind in ('point', 'scribble', 'box', 'mask')
] + [
    ('davis', 'Video object segmentation, zero-shot (DAVIS layout, val)',
     [('vos/J&F', 'J&F'), ('vos/J', 'J'), ('vos/F', 'F')],
     [('prompt', 'copy the first frame')], 'vos/J&F'),
    ('vqa', 'Question answering (val)',
     [('vqa/exact_match', 'exact match'), ('vqa/vqa_acc', 'VQA acc')],
     [('majority', 'majority training answer')], 'vqa/exact_match'),
]
LOSS_KEYS = ('loss', 'loss_cls', 'loss_mask', 'loss_dice', 'loss_lm')
#: metrics that mmdet reports as fractions; the table is in %
FRACTIONS = ('coco/segm_mAP', )


def newest(pattern: str) -> Optional[str]:
    """The most recent file matching ``pattern``, or None."""
    paths = glob.glob(pattern)
    return max(paths, key=osp.getmtime) if paths else None


def read_metrics(run_dir: str) -> Optional[Dict[str, float]]:
    """Metrics json of the newest ``tools/test.py`` run in ``run_dir``, all
    in % (mmdet's fractions scaled)."""
    path = newest(osp.join(run_dir, '[0-9]*_[0-9]*', '[0-9]*_[0-9]*.json'))
    if path is None:
        return None
    with open(path) as f:
        metrics = json.load(f)
    return {
        key: 100 * value if key in FRACTIONS else value
        for key, value in metrics.items()
    }


def training_logs(work_dir: str) -> List[dict]:
    """The training iterations' logged scalars (with a loss)."""
    path = newest(osp.join(work_dir, '[0-9]*_[0-9]*', 'vis_data',
                           'scalars.json'))
    if path is None:
        raise FileNotFoundError(f'no training scalars.json under {work_dir}')
    with open(path) as f:
        return [r for r in map(json.loads, f) if 'loss' in r]


def plot_losses(logs: Sequence[dict], out_file: str) -> None:
    """Loss curves (total and per kind) against the iteration."""
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for key in LOSS_KEYS:
        points = [(r['iter'], r[key]) for r in logs if key in r]
        if points:
            ax.plot(*zip(*points), label=key, lw=1.2)
    ax.set_xlabel('iteration')
    ax.set_ylabel('training loss (window mean)')
    ax.set_yscale('log')
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title('PSALM (tiny) joint training on ShapesWorld')
    fig.tight_layout()
    fig.savefig(out_file)
    plt.close(fig)


def _captioned(picture: np.ndarray, caption: str,
               target: Optional[np.ndarray] = None) -> np.ndarray:
    """2x RGB picture with the target outlined (white) and a caption."""
    picture = cv2.resize(picture, None, fx=2, fy=2,
                         interpolation=cv2.INTER_NEAREST)
    if target is not None and target.any():
        big = cv2.resize(target.astype(np.uint8), picture.shape[1::-1],
                         interpolation=cv2.INTER_NEAREST)
        contours, _ = cv2.findContours(big, cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_NONE)
        picture = cv2.drawContours(picture.copy(), contours, -1,
                                   (255, 255, 255), 2)
    bar = np.full((40, picture.shape[1], 3), 255, np.uint8)
    for i, line in enumerate((caption[:60], caption[60:120])):
        cv2.putText(bar, line, (4, 15 + 17 * i), cv2.FONT_HERSHEY_SIMPLEX,
                    0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([picture, bar])


def make_pictures(config: str, checkpoint: str, data_root: str,
                  out_dir: str, num_images: int = 2) -> List[str]:
    """Pictures of every prompt kind on held-out ShapesWorld images.

    Per image: panoptic (all classes), a referring expression, a
    multi-target and a no-target expression (``gres``), point, scribble,
    box and mask prompts on the largest object, and a question. The target
    is outlined in white; the caption gives the prompt (and the right
    answer for questions).

    Returns:
        list[str]: The written PNG files.
    """
    from projects.psalm.apis import PSALMInferencer
    from projects.psalm.datasets.shapesworld import load_examples

    inferencer = PSALMInferencer(config, checkpoint, device='cpu')
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for index in range(num_images):
        ex = load_examples(data_root, index)
        inferencer.set_image(ex.image_path)
        obj = ex.objects[0]
        single = [e for e in ex.expressions if len(e['ann_ids']) == 1]
        multi = [e for e in ex.expressions if len(e['ann_ids']) > 1]
        none = [e for e in ex.expressions if not e['ann_ids']]
        jobs = [('panoptic', dict(categories=ex.class_names,
                                  is_thing=ex.is_thing),
                 f'panoptic: all {len(ex.class_names)} classes', None)]
        if single:
            e = single[0]
            jobs.append(('referring', dict(text=e['text']),
                         f'referring: "{e["text"]}"', e['mask']))
        for e in (multi[:1] + none[:1]):
            jobs.append(('gres', dict(text=e['text'], task='gres'),
                         f'gres: "{e["text"]}"' +
                         ('' if e['ann_ids'] else ' (no target)'), e['mask']))
        jobs += [
            ('point', dict(points=[obj.point]), f'point on the {obj.name}',
             obj.mask),
            ('scribble', dict(scribble=obj.scribble),
             f'scribble on the {obj.name}', obj.mask),
            ('box', dict(box=obj.box), f'box around the {obj.name}',
             obj.mask),
            ('mask', dict(mask=obj.mask), f'mask of the {obj.name}',
             obj.mask),
        ]
        if ex.questions:
            q = ex.questions[0]
            jobs.append(('vqa', dict(question=q['question']),
                         f'right answer: {q["answer"]}', None))
        stem = osp.splitext(osp.basename(ex.image_path))[0]
        for kind, prompt, caption, target in jobs:
            out = inferencer.predict(**prompt)
            path = osp.join(out_dir, f'{stem}_{kind}.png')
            picture = _captioned(out['visualization'], caption, target)
            cv2.imwrite(path, picture[..., ::-1])
            written.append(path)
    return written


def _fmt(value: Optional[float]) -> str:
    return '—' if value is None else f'{value:.1f}'


def metric_table(work_dir: str) -> Tuple[List[str], List[str]]:
    """Markdown rows of the metric table and the failed comparisons."""
    rows, failures = [], []
    for name, title, metrics, baselines, main_key in BENCHMARKS:
        psalm = read_metrics(osp.join(work_dir, f'test_{name}'))
        if psalm is None:
            failures.append(f'{name}: no PSALM result')
            continue
        header = ' | '.join(col for _, col in metrics)
        rows += [f'\n**{title}**\n', f'| model | {header} |',
                 '|---|' + '---:|' * len(metrics)]
        rows.append('| PSALM (tiny) | ' + ' | '.join(
            _fmt(psalm.get(key)) for key, _ in metrics) + ' |')
        for rule, label in baselines:
            base = read_metrics(
                osp.join(work_dir, f'baseline_{rule}_{name}'))
            if base is None:
                failures.append(f'{name}: no result of baseline {rule}')
                continue
            rows.append(f'| baseline: {label} | ' + ' | '.join(
                _fmt(base.get(key)) for key, _ in metrics) + ' |')
            if psalm.get(main_key, 0.0) <= base.get(main_key, 0.0):
                failures.append(
                    f'{name}: PSALM {main_key} {_fmt(psalm.get(main_key))} '
                    f'does not beat baseline {rule} ({base[main_key]:.1f})')
    return rows, failures


def write_report(work_dir: str,
                 seconds: Optional[Dict[str, int]] = None
                 ) -> Tuple[str, List[str]]:
    """Write ``report.md`` and ``loss_curve.png``; return the report path
    and the benchmarks where PSALM does not beat a baseline."""
    logs = training_logs(work_dir)
    plot_losses(logs, osp.join(work_dir, 'loss_curve.png'))
    rows, failures = metric_table(work_dir)
    first, last = logs[0], logs[-1]
    lines = [
        '# PSALM on ShapesWorld: quickstart report', '',
        'A tiny PSALM (configs/shapesworld/): its Swin pre-trained on the '
        'segments of the ShapesWorld training split and frozen (the '
        'stand-in for the paper\'s pre-trained Swin-B), everything else '
        'randomly initialised and trained jointly on panoptic, referring, '
        'interactive and VQA batches of that split; evaluated with '
        '`tools/test.py` on the held-out split. Every baseline runs through '
        'the same configs, post-processing and metrics '
        '(`TrivialBaseline`).', '',
        f'Training: {last["iter"]} iterations; loss {first["loss"]:.2f} '
        f'(iter {first["iter"]}) -> {last["loss"]:.2f}.' + (
            ' Time: ' + ', '.join(f'{k} {v} s' for k, v in seconds.items())
            + '.' if seconds else ''), '',
        '![loss curve](loss_curve.png)', '', '## Metrics (%)'
    ] + rows
    if failures:
        lines += ['', '## Not beaten', ''] + [f'- {f}' for f in failures]
    pictures = sorted(glob.glob(osp.join(work_dir, 'vis', '*.png')))
    if pictures:
        lines += [
            '', '## Predictions on held-out images', '',
            'Made with the demo\'s inferencer (`tools/demo.py`); the target '
            'is outlined in white.', ''
        ]
        lines += [
            f'![{osp.relpath(p, work_dir)}]({osp.relpath(p, work_dir)})'
            for p in pictures
        ]
    out = osp.join(work_dir, 'report.md')
    with open(out, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return out, failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('work_dir')
    parser.add_argument('--config', help='model config (for the pictures)')
    parser.add_argument('--checkpoint', help='checkpoint (for the pictures)')
    parser.add_argument('--data-root', default='data/shapesworld')
    parser.add_argument('--num-images', type=int, default=2)
    for stage in ('data', 'train', 'eval'):
        parser.add_argument(f'--{stage}-seconds', type=int)
    args = parser.parse_args()
    if args.checkpoint:
        written = make_pictures(args.config, args.checkpoint, args.data_root,
                                osp.join(args.work_dir, 'vis'),
                                args.num_images)
        print(f'[report] {len(written)} pictures in {args.work_dir}/vis/')
    seconds = {
        name: value
        for name, value in (('data', args.data_seconds),
                            ('training (Swin pre-training included)',
                             args.train_seconds),
                            ('evaluation', args.eval_seconds))
        if value is not None
    }
    out, failures = write_report(args.work_dir, seconds)
    with open(out) as f:
        print(f.read())
    print(f'[report] written to {out}')
    for failure in failures:
        print(f'[report] WARNING {failure}')


if __name__ == '__main__':
    main()
