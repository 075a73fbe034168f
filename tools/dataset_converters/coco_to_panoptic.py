# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Convert a COCO instance json into COCO panoptic format (json + PNGs).

PSALM's category tasks (panoptic / instance / semantic,
``PSALMCocoPanopticDataset``) read COCO panoptic data; this converter makes
it from instance annotations with your own categories (e.g. the output of
``masks_to_coco.py``, or any COCO instance json with polygons or RLE).

* Every annotation becomes one segment of its image's PNG (``id = R + 256 G +
  256^2 B``; segment ids are unique over the whole json). Where masks
  overlap, the smaller one is painted last and keeps the pixels; a segment
  left without pixels is dropped and counted.
* Stuff categories (``isthing: 0`` in the json, or named by ``--stuff``)
  have one segment per image: their annotations in an image are merged.
* Crowd annotations stay crowd segments (``iscrowd: 1``; no training target,
  ignored by PQ).
* Categories keep their ids and names; the output lists the things first,
  then the stuff (as COCO panoptic does), so the thing labels of the panoptic
  task index the instance json's thing categories in order (mask AP with
  ``CocoMetric`` on the instance json).
* Images without annotations are left out (a panoptic training image needs
  a segment) and counted.

Example::

    python tools/dataset_converters/coco_to_panoptic.py \\
        data/mine/annotations/instances_train.json \\
        data/mine/annotations/panoptic_train.json \\
        data/mine/annotations/panoptic_train/
"""
import argparse
import json
import os
import os.path as osp
import sys
from collections import Counter
from typing import Dict, Optional, Sequence, Tuple

import cv2
import numpy as np
from tqdm import tqdm

# make ``projects.psalm`` importable when run from anywhere
sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..')))

from projects.psalm.datasets.coco_interactive import \
    segmentation_to_mask  # noqa: E402
from projects.psalm.evaluation.functional.panoptic_quality import \
    id2rgb  # noqa: E402

__all__ = ['coco_to_panoptic', 'main']

MAX_SEGMENT_ID = 256**3 - 1


def _bbox(mask: np.ndarray) -> list:
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return [int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1),
            int(rows[-1] - rows[0] + 1)]


def coco_to_panoptic(coco: dict,
                     png_dir: str,
                     stuff: Sequence[str] = ()) -> Tuple[dict, Dict]:
    """Write the panoptic PNGs and return the panoptic json dict.

    Args:
        coco (dict): COCO instance annotations (``images``, ``annotations``,
            ``categories``).
        png_dir (str): Output folder of the PNGs (``<image stem>.png``).
        stuff (Sequence[str]): Category names to treat as stuff besides
            those with ``isthing: 0``.

    Returns:
        tuple[dict, dict]: The panoptic json and the counts ``images``,
        ``segments``, ``merged_stuff``, ``hidden_segments`` (fully covered
        by smaller ones), ``images_without_annotations``.

    Raises:
        ValueError: For a category missing from ``categories``, an unknown
            ``--stuff`` name, or two images with the same PNG name.
    """
    categories = coco['categories']
    names = [cat['name'] for cat in categories]
    unknown = set(stuff) - set(names)
    if unknown:
        raise ValueError(f'--stuff names {sorted(unknown)} are not categories '
                         f'of the json ({names[:10]}...)')
    is_thing = {
        cat['id']: bool(cat.get('isthing', 1)) and cat['name'] not in stuff
        for cat in categories
    }
    out_categories = [
        dict(cat, isthing=int(is_thing[cat['id']]))
        for cat in sorted(categories, key=lambda c: not is_thing[c['id']])
    ]
    anns_by_image: Dict[int, list] = {}
    for ann in coco['annotations']:
        if ann['category_id'] not in is_thing:
            raise ValueError(f'annotation {ann.get("id")}: category_id '
                             f'{ann["category_id"]} is not in categories')
        anns_by_image.setdefault(ann['image_id'], []).append(ann)

    os.makedirs(png_dir, exist_ok=True)
    stats = Counter(images=0, segments=0, merged_stuff=0, hidden_segments=0,
                    images_without_annotations=0)
    images, annotations, png_names = [], [], set()
    next_id = 1
    for image in tqdm(coco['images'], desc='panoptic', unit='img'):
        anns = anns_by_image.get(image['id'], [])
        if not anns:
            stats['images_without_annotations'] += 1
            continue
        height, width = image['height'], image['width']
        # one region per thing annotation, one per (stuff category, crowd)
        regions: Dict[tuple, dict] = {}
        for ann in anns:
            mask = segmentation_to_mask(ann['segmentation'], height, width)
            crowd = int(ann.get('iscrowd', 0))
            if is_thing[ann['category_id']]:
                key = ('thing', ann['id'])
            else:
                key = ('stuff', ann['category_id'], crowd)
            if key in regions:
                regions[key]['mask'] |= mask
                stats['merged_stuff'] += 1
            else:
                regions[key] = dict(mask=mask, category_id=ann['category_id'],
                                    iscrowd=crowd)
        pan = np.zeros((height, width), dtype=np.int64)
        segments = []
        # largest first: smaller regions are painted over larger ones
        for region in sorted(regions.values(),
                             key=lambda r: -int(r['mask'].sum())):
            if next_id > MAX_SEGMENT_ID:
                raise ValueError('more than 2^24 - 1 segments: the PNG '
                                 'encoding cannot hold their ids')
            pan[region['mask']] = next_id
            segments.append(dict(id=next_id, category_id=region['category_id'],
                                 iscrowd=region['iscrowd']))
            next_id += 1
        segments_info = []
        for segment in segments:
            mask = pan == segment['id']
            area = int(mask.sum())
            if area == 0:
                stats['hidden_segments'] += 1
                continue
            segments_info.append(dict(segment, area=area, bbox=_bbox(mask)))
        png_name = osp.splitext(image['file_name'])[0] + '.png'
        if png_name in png_names:
            raise ValueError(f'two images map to the PNG {png_name}; give '
                             'the images distinct file names')
        png_names.add(png_name)
        png_path = osp.join(png_dir, png_name)
        os.makedirs(osp.dirname(png_path), exist_ok=True)
        # id2rgb gives RGB; OpenCV writes BGR
        if not cv2.imwrite(png_path,
                           np.ascontiguousarray(id2rgb(pan)[..., ::-1])):
            raise OSError(f'could not write {png_path}')
        images.append(image)
        annotations.append(dict(image_id=image['id'], file_name=png_name,
                                segments_info=segments_info))
        stats['images'] += 1
        stats['segments'] += len(segments_info)
    panoptic = dict(
        info=dict(description='made by tools/dataset_converters/'
                  'coco_to_panoptic.py'),
        images=images, annotations=annotations, categories=out_categories)
    return panoptic, dict(stats)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert a COCO instance json into COCO panoptic format '
        '(json + PNGs) for PSALM\'s category tasks.')
    parser.add_argument('instances_json', help='COCO instance json')
    parser.add_argument('out_json', help='output panoptic json')
    parser.add_argument('png_dir', help='output folder of the panoptic PNGs')
    parser.add_argument(
        '--stuff', nargs='+', default=[],
        help='category names that are stuff (besides isthing: 0 ones)')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, int]:
    """Run the conversion; returns the counts (also printed)."""
    args = parse_args(argv)
    with open(args.instances_json, encoding='utf-8') as f:
        coco = json.load(f)
    panoptic, stats = coco_to_panoptic(coco, args.png_dir, args.stuff)
    os.makedirs(osp.dirname(osp.abspath(args.out_json)), exist_ok=True)
    with open(args.out_json, 'w') as f:
        json.dump(panoptic, f)
    print(f'wrote {stats["images"]} images / {stats["segments"]} segments to '
          f'{args.out_json} and {args.png_dir}; merged '
          f'{stats["merged_stuff"]} stuff annotations into their class '
          f'segment, dropped {stats["hidden_segments"]} segments hidden by '
          f'smaller ones and {stats["images_without_annotations"]} images '
          'without annotations')
    return stats


if __name__ == '__main__':
    main()
