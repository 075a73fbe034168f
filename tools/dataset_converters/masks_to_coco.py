# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Build a COCO instance json from a folder of masks and a table of objects.

The json is the starting point of every PSALM task on your own data (see
``docs/finetune.md``): ``coco_to_panoptic.py`` makes the panoptic data of the
category tasks from it, ``build_coco_interactive.py`` the interactive
prompts, ``expressions_to_refcoco.py`` the referring data.

Masks, per image ``<stem>`` (the image file name without extension), either

* ``MASK_DIR/<stem>.png``: one single-channel id map (8 or 16 bit); pixel
  value ``k`` belongs to object ``k``, ``0`` is background (objects cannot
  overlap), values given by ``--ignore-ids`` are ignored (e.g. ``255``); or
* ``MASK_DIR/<stem>/<object>.png``: one binary mask per object (any non-zero
  pixel is the object; objects may overlap).

The objects table (``.csv`` with a header row, or ``.json``: a list of
objects) has one row per object::

    image,object,category[,iscrowd]
    0001.jpg,1,pony            # id map: object = the pixel value
    0002.jpg,left_dog,dog      # per-object files: object = the file stem

Every object must have pixels; an id-map value or a mask file missing from
the table is an error (it would be silently unlabelled). A row with an empty
``object`` (and ``category``) lists an image without any object: it is kept
in the json with no annotation (e.g. for no-target expressions) and counted.

Output: COCO instance json with ``images`` (ids from 1, ``file_name``
relative to ``IMAGE_DIR``), ``annotations`` (ids from 1 - pycocotools treats
id 0 as a false positive -, compressed RLE ``segmentation``, ``area``,
``bbox``, ``iscrowd``, and ``object``: the table's object key, which
``expressions_to_refcoco.py`` resolves) and ``categories`` (ids from 1,
``isthing``: 0 for the names given by ``--stuff``; things first, then stuff,
each in the order of ``--categories`` or of first appearance in the table).

Example::

    python tools/dataset_converters/masks_to_coco.py data/mine/images \\
        data/mine/masks data/mine/objects.csv \\
        data/mine/annotations/instances_train.json --stuff grass sky
"""
import argparse
import csv
import json
import os
import os.path as osp
from collections import Counter
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import pycocotools.mask as mask_utils
from PIL import Image

__all__ = ['read_table', 'masks_to_coco', 'main']

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff',
                    '.webp')


def read_table(path: str, required: Sequence[str]) -> List[Dict]:
    """Read a ``.csv`` (header row) or ``.json`` (list of dicts) table.

    Args:
        path (str): The table file.
        required (Sequence[str]): Columns every row must have.

    Returns:
        list[dict]: The rows (CSV values are stripped strings).

    Raises:
        ValueError: Unknown extension, not a list, or a missing column
            (naming the row).
    """
    ext = osp.splitext(path)[1].lower()
    if ext == '.csv':
        with open(path, newline='', encoding='utf-8-sig') as f:
            rows = [{(k or '').strip(): (v or '').strip()
                     for k, v in row.items()} for row in csv.DictReader(f)]
    elif ext == '.json':
        with open(path, encoding='utf-8') as f:
            rows = json.load(f)
        if not isinstance(rows, list) or not all(
                isinstance(row, dict) for row in rows):
            raise ValueError(f'{path}: expected a json list of objects')
    else:
        raise ValueError(f'{path}: a table must be .csv or .json')
    for i, row in enumerate(rows):
        missing = [key for key in required if key not in row]
        if missing:
            raise ValueError(f'{path} row {i + 1}: missing column(s) '
                             f'{missing} (required: {list(required)})')
    return rows


def _encode(mask: np.ndarray) -> Tuple[dict, int, List[float]]:
    """RLE (json-ready), area and COCO bbox ``[x, y, w, h]`` of a mask."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    area = int(mask_utils.area(rle))
    bbox = [float(v) for v in mask_utils.toBbox(rle)]
    rle['counts'] = rle['counts'].decode('ascii')
    return rle, area, bbox


def _image_masks(mask_dir: str, stem: str, height: int, width: int,
                 ignore_ids: Sequence[int]) -> Dict[str, np.ndarray]:
    """Object key -> (H, W) bool mask of one image (empty: no mask)."""
    id_map_path = osp.join(mask_dir, f'{stem}.png')
    folder = osp.join(mask_dir, stem)
    if osp.isfile(id_map_path) and osp.isdir(folder):
        raise ValueError(f'{mask_dir}: both {stem}.png and {stem}/ exist; '
                         'keep one mask layout per image')
    masks = {}
    if osp.isfile(id_map_path):
        ids = cv2.imread(id_map_path, cv2.IMREAD_UNCHANGED)
        if ids is None or ids.ndim != 2:
            raise ValueError(f'{id_map_path}: expected a single-channel id '
                             'map (8 or 16 bit PNG)')
        if ids.shape != (height, width):
            raise ValueError(f'{id_map_path}: {ids.shape[0]}x{ids.shape[1]} '
                             f'but the image is {height}x{width}')
        for value in np.unique(ids):
            if value == 0 or int(value) in ignore_ids:
                continue
            masks[str(int(value))] = ids == value
    elif osp.isdir(folder):
        for name in sorted(os.listdir(folder)):
            if not name.lower().endswith('.png'):
                continue
            path = osp.join(folder, name)
            mask = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
            if mask is None:
                raise ValueError(f'{path}: not a readable PNG')
            if mask.shape != (height, width):
                raise ValueError(f'{path}: {mask.shape[0]}x{mask.shape[1]} '
                                 f'but the image is {height}x{width}')
            masks[osp.splitext(name)[0]] = mask > 0
    return masks


def masks_to_coco(image_dir: str,
                  mask_dir: str,
                  objects: List[Dict],
                  categories: Optional[Sequence[str]] = None,
                  stuff: Sequence[str] = (),
                  ignore_ids: Sequence[int] = ()) -> Tuple[dict, Dict]:
    """Convert masks + objects into a COCO instance dict.

    Args:
        image_dir (str): Folder of the images (every image of the table must
            be there; images without a row are left out).
        mask_dir (str): Folder of the masks (layouts in the module doc).
        objects (list[dict]): Rows with ``image``, ``object``, ``category``
            and optionally ``iscrowd``.
        categories (Sequence[str], optional): All category names, in order;
            default: order of first appearance in ``objects``.
        stuff (Sequence[str]): Category names without instances (``isthing``
            0), e.g. ``grass``.
        ignore_ids (Sequence[int]): Id-map values that are not objects.

    Returns:
        tuple[dict, dict]: The COCO dict and the counts ``images``,
        ``annotations``, ``images_without_objects``.

    Raises:
        ValueError / FileNotFoundError: naming the image, object or
        category at fault.
    """
    names = list(categories) if categories else list(
        dict.fromkeys(
            str(row['category']) for row in objects
            if str(row['object']).strip()))
    if len(set(names)) != len(names):
        raise ValueError(f'duplicate category names in {names}')
    unknown_stuff = set(stuff) - set(names)
    if unknown_stuff:
        raise ValueError(f'--stuff names {sorted(unknown_stuff)} are not '
                         f'categories ({names})')
    ordered = [n for n in names if n not in stuff] + \
        [n for n in names if n in stuff]
    cat_ids = {name: i + 1 for i, name in enumerate(ordered)}

    by_image: Dict[str, List[Dict]] = {}
    for row in objects:
        by_image.setdefault(str(row['image']), []).append(row)
    coco = dict(
        info=dict(description='made by tools/dataset_converters/'
                  'masks_to_coco.py'),
        images=[], annotations=[],
        categories=[
            dict(id=cat_ids[name], name=name, supercategory=name,
                 isthing=int(name not in stuff)) for name in ordered
        ])
    stats = Counter(images=0, annotations=0, images_without_objects=0)
    for file_name in sorted(by_image):
        path = osp.join(image_dir, file_name)
        if not osp.isfile(path):
            raise FileNotFoundError(f'image {path} of the objects table '
                                    'does not exist')
        with Image.open(path) as img:
            width, height = img.size
        image_id = len(coco['images']) + 1
        coco['images'].append(
            dict(id=image_id, file_name=file_name, height=height,
                 width=width))
        stats['images'] += 1
        stem = osp.splitext(file_name)[0]
        masks = _image_masks(mask_dir, stem, height, width, ignore_ids)
        rows = [row for row in by_image[file_name]
                if str(row['object']).strip()]
        keys = [str(row['object']).strip() for row in rows]
        duplicates = [k for k, n in Counter(keys).items() if n > 1]
        if duplicates:
            raise ValueError(f'{file_name}: objects {duplicates} are listed '
                             'more than once')
        unlisted = sorted(set(masks) - set(keys))
        if unlisted:
            raise ValueError(
                f'{file_name}: masks of objects {unlisted} have no row in the '
                'objects table (id-map value or mask file stem); add them, '
                'or pass --ignore-ids for void values')
        for row, key in zip(rows, keys):
            category = str(row['category'])
            if category not in cat_ids:
                raise ValueError(f'{file_name} object {key}: category '
                                 f'{category!r} is not in {ordered}')
            mask = masks.get(key)
            if mask is None or not mask.any():
                raise ValueError(
                    f'{file_name} object {key}: no mask pixels (expected '
                    f'value {key} in {stem}.png or the file '
                    f'{stem}/{key}.png in {mask_dir})')
            rle, area, bbox = _encode(mask)
            coco['annotations'].append(
                dict(id=len(coco['annotations']) + 1, image_id=image_id,
                     category_id=cat_ids[category], segmentation=rle,
                     area=area, bbox=bbox,
                     iscrowd=int(str(row.get('iscrowd', 0) or 0) in
                                 ('1', 'True', 'true')),
                     object=key))
            stats['annotations'] += 1
        if not rows:
            stats['images_without_objects'] += 1
    return coco, dict(stats)


def _read_names(path: Optional[str]) -> Optional[List[str]]:
    if path is None:
        return None
    with open(path, encoding='utf-8') as f:
        names = [line.strip() for line in f if line.strip()]
    if not names:
        raise ValueError(f'{path}: no category name')
    return names


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Build a COCO instance json from a folder of masks and a '
        'CSV/JSON table of objects (image, object, category).')
    parser.add_argument('image_dir', help='folder of the images')
    parser.add_argument('mask_dir', help='folder of the masks')
    parser.add_argument('objects', help='objects table (.csv or .json)')
    parser.add_argument('out_json', help='output COCO instance json')
    parser.add_argument(
        '--categories', help='text file, one category name per line (the '
        'category order); default: order of first appearance')
    parser.add_argument(
        '--stuff', nargs='+', default=[],
        help='category names that are stuff (isthing 0)')
    parser.add_argument(
        '--ignore-ids', nargs='+', type=int, default=[],
        help='id-map values that are not objects (e.g. 255)')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, int]:
    """Run the conversion; returns the counts (also printed)."""
    args = parse_args(argv)
    objects = read_table(args.objects, ('image', 'object', 'category'))
    coco, stats = masks_to_coco(args.image_dir, args.mask_dir, objects,
                                _read_names(args.categories), args.stuff,
                                args.ignore_ids)
    os.makedirs(osp.dirname(osp.abspath(args.out_json)), exist_ok=True)
    with open(args.out_json, 'w') as f:
        json.dump(coco, f)
    print(f'wrote {stats["images"]} images, {stats["annotations"]} objects '
          f'and {len(coco["categories"])} categories to {args.out_json} '
          f'({stats["images_without_objects"]} images without objects)')
    return stats


if __name__ == '__main__':
    main()
