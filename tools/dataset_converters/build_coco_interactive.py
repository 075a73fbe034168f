# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Build COCO-Interactive (PSALM appendix 8) from a COCO instance json.

Every non-crowd annotation with a non-empty mask gets four visual prompts
(point, scribble, box, mask; rules in
``projects/psalm/datasets/coco_interactive.py``) stored as RLE (``counts``
a str) at the original resolution. The output is the official format, a
json list with one entry per image::

    {image: file_name, image_info: COCO image dict, new_img_id: index,
     anns: [COCO annotation + {point,scribble,box,mask}_visual_prompt_mask]}

All COCO fields are kept. Crowd annotations and annotations with an empty
mask are left out; images left without annotations are left out of the
output (as the official builder does). All three are counted and reported.
The prompts of an annotation depend only on ``(seed, annotation id)``, so
the output is deterministic for a seed.

Example::

    python tools/dataset_converters/build_coco_interactive.py \\
        data/coco/annotations/instances_val2017.json \\
        data/coco/annotations/coco_interactive_val_psalm.json \\
        --seed 0 --image-root data/coco/val2017
"""
import argparse
import json
import os.path as osp
import sys
from collections import Counter, defaultdict
from typing import Dict, List, Optional, Sequence, Tuple

from tqdm import tqdm

# make ``projects.psalm`` importable when run from anywhere
sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))

from projects.psalm.datasets.coco_interactive import (  # noqa: E402
    PROMPT_FIELDS, PROMPT_TYPES, annotation_rng, encode_rle,
    generate_visual_prompts, segmentation_to_mask)


def build_entries(coco: dict,
                  seed: int = 0,
                  image_root: Optional[str] = None
                  ) -> Tuple[List[dict], Dict[str, int]]:
    """Convert a COCO instance dict into COCO-Interactive entries.

    Args:
        coco (dict): COCO instance annotations (``images``, ``annotations``).
        seed (int): Seed of the prompt generators (>= 0).
        image_root (str, optional): If given, every output image must exist
            in this folder.

    Returns:
        tuple[list[dict], dict[str, int]]: The entries and the counts
        ``images``, ``annotations`` (written), ``crowd_annotations``,
        ``empty_annotations`` and ``images_without_annotations`` (left out).

    Raises:
        ValueError: For an annotation id that is not a non-negative int.
        FileNotFoundError: For a missing image under ``image_root``.
    """
    anns_by_image = defaultdict(list)
    for ann in coco['annotations']:
        anns_by_image[ann['image_id']].append(ann)
    stats = Counter(images=0, annotations=0, crowd_annotations=0,
                    empty_annotations=0, images_without_annotations=0)
    entries = []
    for image in tqdm(coco['images'], desc='COCO-Interactive', unit='img'):
        anns = []
        for ann in anns_by_image.get(image['id'], []):
            if ann.get('iscrowd', 0):
                stats['crowd_annotations'] += 1
                continue
            ann_id = ann.get('id')
            if not isinstance(ann_id, int) or ann_id < 0:
                raise ValueError(f'image {image["file_name"]!r}: annotation '
                                 f'id {ann_id!r} is not a non-negative int '
                                 '(it seeds the prompts)')
            mask = segmentation_to_mask(
                ann['segmentation'], image['height'],
                image['width']) if ann.get('segmentation') else None
            if mask is None or not mask.any():
                stats['empty_annotations'] += 1
                continue
            prompts = generate_visual_prompts(mask,
                                              annotation_rng(seed, ann_id))
            anns.append({
                **ann,
                **{PROMPT_FIELDS[t]: encode_rle(prompts[t])
                   for t in PROMPT_TYPES}
            })
        if not anns:
            stats['images_without_annotations'] += 1
            continue
        if image_root is not None and not osp.isfile(
                osp.join(image_root, image['file_name'])):
            raise FileNotFoundError(
                f'image {osp.join(image_root, image["file_name"])} of the '
                'annotations does not exist')
        entries.append(
            dict(
                image=image['file_name'],
                image_info=image,
                new_img_id=len(entries),
                anns=anns))
        stats['images'] += 1
        stats['annotations'] += len(anns)
    return entries, dict(stats)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Build the COCO-Interactive json (point / scribble / box'
        ' / mask visual prompts) from a COCO instance json.')
    parser.add_argument('instances_json', help='COCO instance json')
    parser.add_argument('out_json', help='output COCO-Interactive json')
    parser.add_argument(
        '--seed', type=int, default=0, help='seed of the prompts (>= 0)')
    parser.add_argument(
        '--image-root', default=None,
        help='image folder; if given, every output image must exist there')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, int]:
    """Run the conversion; returns the counts (also printed)."""
    args = parse_args(argv)
    if args.seed < 0:
        raise ValueError(f'--seed must be >= 0, got {args.seed}')
    with open(args.instances_json) as f:
        coco = json.load(f)
    entries, stats = build_entries(coco, args.seed, args.image_root)
    with open(args.out_json, 'w') as f:
        json.dump(entries, f)
    print(f'wrote {stats["images"]} images / {stats["annotations"]} '
          f'annotations to {args.out_json}; left out '
          f'{stats["images_without_annotations"]} images without '
          f'annotations, {stats["crowd_annotations"]} crowd and '
          f'{stats["empty_annotations"]} empty annotations')
    return stats


if __name__ == '__main__':
    main()
