# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Convert a table of referring expressions into PSALM's referring json.

Input: a COCO instance json (e.g. from ``masks_to_coco.py``) and a table
(``.csv`` with a header row, or ``.json``: a list of objects) with one row
per expression::

    image,expression,objects,split
    0001.jpg,the pony on the left,3,train
    0001.jpg,both ponies,3;4,train          # several targets
    0001.jpg,the red car,,train             # no target (empty)
    0002.jpg,the dog,left_dog,val

``objects`` names the target objects of the image: ``;``-separated in a CSV
(a list in a JSON row), empty for an expression that refers to nothing. An
object is an annotation's ``object`` key (written by ``masks_to_coco.py``),
or else its annotation ``id``. ``split`` is optional (default ``train``).

Rows of one image with the same target set and split form one *referent*
with several expressions (``protocol='random'`` training draws one of them
per fetch; evaluation scores each).

Output, per split, ``OUT_DIR/<name>_<split>.json`` in the official PSALM
format that ``PSALMGRefCocoDataset`` (task ``'gres'``: one, several or no
target) and, when every referent has exactly one target,
``PSALMRefCocoDataset`` (task ``'referring'``) read with
``split_file=None``: a list of ``{image, image_info, instruction (the
sentence dicts: sent (lower case, single spaces), raw, tokens, sent_id,
ref_id), anns (the target COCO annotations), ref_id, new_img_id}``.

Example::

    python tools/dataset_converters/expressions_to_refcoco.py \\
        data/mine/expressions.csv data/mine/annotations/instances_train.json \\
        data/mine/annotations
"""
import argparse
import json
import os
import os.path as osp
import sys
from collections import Counter
from typing import Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

from masks_to_coco import read_table  # noqa: E402

__all__ = ['expressions_to_refcoco', 'main']


def _targets(value) -> List[str]:
    """The object keys of a row: a list (json) or ``;``-separated text."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [v.strip() for v in str(value).split(';') if v.strip()]


def expressions_to_refcoco(rows: List[Dict], coco: dict
                           ) -> Tuple[Dict[str, List[dict]], Dict[str, int]]:
    """Group expressions into referents, per split.

    Args:
        rows (list[dict]): Rows with ``image``, ``expression``, ``objects``
            and optionally ``split``.
        coco (dict): The COCO instance dict the objects live in.

    Returns:
        tuple[dict, dict]: split -> PSALM json entries, and the counts
        ``referents``, ``expressions``, ``single_target``, ``multi_target``
        and ``no_target`` (referents).

    Raises:
        ValueError: An unknown image or object, or an empty expression
            (naming the row).
    """
    images = {image['file_name']: image for image in coco['images']}
    objects: Dict[int, Dict[str, dict]] = {}
    for ann in coco['annotations']:
        keys = objects.setdefault(ann['image_id'], {})
        keys[str(ann.get('object', ann['id']))] = ann
    referents: Dict[tuple, dict] = {}
    for i, row in enumerate(rows):
        where = f'expression row {i + 1} ({row.get("image")!r})'
        image = images.get(str(row['image']))
        if image is None:
            raise ValueError(f'{where}: image not in the instance json')
        raw = str(row['expression']).strip()
        if not raw:
            raise ValueError(f'{where}: empty expression')
        anns = []
        for key in _targets(row.get('objects')):
            ann = objects.get(image['id'], {}).get(key)
            if ann is None:
                raise ValueError(
                    f'{where}: object {key!r} is not an object of this image '
                    f'(its objects: {sorted(objects.get(image["id"], {}))})')
            anns.append(ann)
        split = str(row.get('split') or 'train')
        group = (split, image['id'],
                 tuple(sorted({ann['id'] for ann in anns})))
        referent = referents.setdefault(
            group, dict(split=split, image=image, anns=anns, sentences=[]))
        referent['sentences'].append(raw)

    splits: Dict[str, List[dict]] = {}
    stats = Counter(referents=0, expressions=0, single_target=0,
                    multi_target=0, no_target=0)
    sent_id = 0
    for ref_id, referent in enumerate(referents.values()):
        instruction = []
        for raw in referent['sentences']:
            sent = ' '.join(raw.lower().split())
            instruction.append(
                dict(sent=sent, raw=raw, tokens=sent.split(' '),
                     sent_id=sent_id, ref_id=ref_id))
            sent_id += 1
        entries = splits.setdefault(referent['split'], [])
        image = referent['image']
        entries.append(
            dict(image=image['file_name'], image_info=image,
                 instruction=instruction, anns=referent['anns'],
                 ref_id=ref_id, new_img_id=len(entries)))
        num = len(referent['anns'])
        stats['referents'] += 1
        stats['expressions'] += len(instruction)
        stats['no_target' if num == 0 else
              'single_target' if num == 1 else 'multi_target'] += 1
    return splits, dict(stats)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert a CSV/JSON table of referring expressions '
        '(image, expression, objects[, split]) into PSALM referring jsons.')
    parser.add_argument('expressions', help='expression table (.csv/.json)')
    parser.add_argument('instances_json', help='COCO instance json')
    parser.add_argument('out_dir', help='folder of the output jsons')
    parser.add_argument(
        '--name', default='refs',
        help='output file prefix: OUT_DIR/<name>_<split>.json')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, int]:
    """Run the conversion; returns the counts (also printed)."""
    args = parse_args(argv)
    rows = read_table(args.expressions, ('image', 'expression', 'objects'))
    with open(args.instances_json, encoding='utf-8') as f:
        coco = json.load(f)
    splits, stats = expressions_to_refcoco(rows, coco)
    os.makedirs(args.out_dir, exist_ok=True)
    for split, entries in splits.items():
        path = osp.join(args.out_dir, f'{args.name}_{split}.json')
        with open(path, 'w', encoding='utf-8') as f:
            json.dump(entries, f, ensure_ascii=False)
        print(f'{split}: {len(entries)} referents -> {path}')
    task = ("'gres' (PSALMGRefCocoDataset)"
            if stats['multi_target'] or stats['no_target'] else
            "'referring' or 'gres'")
    print(f'{stats["expressions"]} expressions of {stats["referents"]} '
          f'referents: {stats["single_target"]} with one target, '
          f'{stats["multi_target"]} with several, {stats["no_target"]} with '
          f'none; train them as task {task}')
    return stats


if __name__ == '__main__':
    main()
