# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""A small "own" dataset made from the real COCO samples of tests/data.

The two COCO val2017 images of ``coco_panoptic_sample`` and their 50 real
panoptic segments become a user's data as ``docs/finetune.md`` expects it:
renamed categories (:data:`RENAME`: e.g. ``horse`` -> ``pony``), a folder of
masks in both layouts (``000000142238.png``: an id map; ``000000439180/``: one
PNG per object), an objects table (CSV) and a table of referring expressions
(CSV, with several-target and no-target rows). The converters of
``tools/dataset_converters`` then make the training and val files:

    ROOT/images/                       the 2 images
    ROOT/masks/, objects.csv, expressions.csv      the user's files
    ROOT/class_names.txt               prompt names with synonyms
    ROOT/annotations/instances_{train,val}.json    masks_to_coco.py
    ROOT/annotations/panoptic_{train,val}.json + panoptic_{train,val}/
                                                   coco_to_panoptic.py
    ROOT/annotations/interactive_{train,val}.json  build_coco_interactive.py
    ROOT/annotations/refs_{train,val}.json         expressions_to_refcoco.py

Train and val are the same two images (a plumbing check, not a benchmark).
"""
import csv
import io
import json
import os
import os.path as osp
import shutil
from contextlib import redirect_stderr, redirect_stdout
from typing import Dict

import cv2
import numpy as np
from psalm_testing import load_tool

REPO_ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
SAMPLE = osp.join(REPO_ROOT, 'tests', 'data', 'coco_panoptic_sample')
# COCO name -> the user's name
RENAME = {
    'person': 'player',
    'sports ball': 'ball',
    'truck': 'lorry',
    'horse': 'pony',
    'tree-merged': 'foliage',
    'sky-other-merged': 'sky',
    'grass-merged': 'lawn',
    'gravel': 'dirt track',
}
STUFF = ('foliage', 'sky', 'lawn', 'dirt track')
# a class-name file for the prompts (open vocabulary at test time): one line
# per category in the json's order (things, then stuff), the json's name
# first, then synonyms
CLASS_NAMES = ('player, athlete', 'ball', 'lorry, truck', 'pony, horse',
               'foliage, trees', 'sky', 'lawn, grass', 'dirt track')
ID_MAP_IMAGE = '000000142238.jpg'   # masks as one id map
FOLDER_IMAGE = '000000439180.jpg'   # masks as one PNG per object


def load_converter(name: str):
    """Import ``tools/dataset_converters/<name>.py`` as a module."""
    return load_tool(f'tools/dataset_converters/{name}.py')


def _quiet(main, argv):
    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        return main(argv)


def _object_key(image: str, index: int, category: str) -> str:
    if image == ID_MAP_IMAGE:
        return str(index + 1)  # the id-map value
    return f'{category.replace(" ", "_")}_{index:02d}'  # the file stem


def write_user_files(root: str) -> Dict[str, list]:
    """Images, masks, objects.csv and expressions.csv of the "user".

    Returns:
        dict: image file name -> its objects ``(key, category, iscrowd,
        bbox_x)``.
    """
    with open(osp.join(SAMPLE, 'panoptic_examples.json')) as f:
        panoptic = json.load(f)
    names = {cat['id']: RENAME[cat['name']]
             for cat in panoptic['categories'] if cat['name'] in RENAME}
    os.makedirs(osp.join(root, 'images'), exist_ok=True)
    os.makedirs(osp.join(root, 'masks'), exist_ok=True)
    objects = {}
    for ann in panoptic['annotations']:
        image = ann['file_name'].replace('.png', '.jpg')
        shutil.copy(osp.join(SAMPLE, 'input_images', image),
                    osp.join(root, 'images', image))
        rgb = cv2.imread(osp.join(SAMPLE, 'panoptic_examples',
                                  ann['file_name']))[..., ::-1].astype(int)
        pan = rgb[..., 0] + 256 * rgb[..., 1] + 256**2 * rgb[..., 2]
        id_map = np.zeros(pan.shape, np.uint8)
        stem = osp.splitext(image)[0]
        rows = []
        for i, seg in enumerate(ann['segments_info']):
            category = names[seg['category_id']]
            key = _object_key(image, i, category)
            mask = pan == seg['id']
            if image == ID_MAP_IMAGE:
                id_map[mask] = i + 1
            else:
                os.makedirs(osp.join(root, 'masks', stem), exist_ok=True)
                cv2.imwrite(osp.join(root, 'masks', stem, f'{key}.png'),
                            mask.astype(np.uint8) * 255)
            rows.append((key, category, seg['iscrowd'], seg['bbox'][0]))
        if image == ID_MAP_IMAGE:
            cv2.imwrite(osp.join(root, 'masks', f'{stem}.png'), id_map)
        objects[image] = rows
    with open(osp.join(root, 'objects.csv'), 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['image', 'object', 'category', 'iscrowd'])
        for image, rows in objects.items():
            for key, category, crowd, _ in rows:
                writer.writerow([image, key, category, crowd])
    with open(osp.join(root, 'class_names.txt'), 'w') as f:
        f.write('\n'.join(CLASS_NAMES) + '\n')
    with open(osp.join(root, 'expressions.csv'), 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['image', 'expression', 'objects', 'split'])
        for row in expressions(objects):
            writer.writerow(row)
    return objects


def expressions(objects: Dict[str, list]) -> list:
    """Rows ``(image, expression, objects, split)``: one, several and no
    target, in train and val."""

    def keys(image, category, crowd=0):
        rows = [r for r in objects[image] if r[1] == category and
                r[2] == crowd]
        return [r[0] for r in sorted(rows, key=lambda r: r[3])]

    ball = keys(ID_MAP_IMAGE, 'ball')
    players = keys(ID_MAP_IMAGE, 'player')
    ponies = keys(FOLDER_IMAGE, 'pony')
    lorries = keys(FOLDER_IMAGE, 'lorry')
    sky = keys(ID_MAP_IMAGE, 'sky')
    return [
        (ID_MAP_IMAGE, 'the ball', ';'.join(ball), 'train'),
        (ID_MAP_IMAGE, 'The ball in the air', ';'.join(ball), 'train'),
        (ID_MAP_IMAGE, 'the two players on the left',
         ';'.join(players[:2]), 'train'),
        (ID_MAP_IMAGE, 'the sky', ';'.join(sky), 'train'),
        (ID_MAP_IMAGE, 'the pony', '', 'train'),
        (FOLDER_IMAGE, 'all the ponies', ';'.join(ponies), 'train'),
        (FOLDER_IMAGE, 'the lorry on the left', lorries[0], 'train'),
        (FOLDER_IMAGE, 'the red car', '', 'train'),
        (ID_MAP_IMAGE, 'a ball', ';'.join(ball), 'val'),
        (ID_MAP_IMAGE, 'a zebra', '', 'val'),
        (FOLDER_IMAGE, 'the lorries', ';'.join(lorries), 'val'),
        (FOLDER_IMAGE, 'the leftmost pony', ponies[0], 'val'),
    ]


def build_custom_data(root: str) -> Dict[str, str]:
    """Write the user's files and convert them (both splits).

    Returns:
        dict[str, str]: ``root`` and the path of every generated json.
    """
    write_user_files(root)
    ann_dir = osp.join(root, 'annotations')
    masks_to_coco = load_converter('masks_to_coco')
    coco_to_panoptic = load_converter('coco_to_panoptic')
    interactive = load_converter('build_coco_interactive')
    refs = load_converter('expressions_to_refcoco')
    paths = dict(root=root, class_names=osp.join(root, 'class_names.txt'))
    for split in ('train', 'val'):
        instances = osp.join(ann_dir, f'instances_{split}.json')
        _quiet(masks_to_coco.main, [
            osp.join(root, 'images'), osp.join(root, 'masks'),
            osp.join(root, 'objects.csv'), instances, '--stuff', *STUFF])
        panoptic = osp.join(ann_dir, f'panoptic_{split}.json')
        _quiet(coco_to_panoptic.main, [
            instances, panoptic, osp.join(ann_dir, f'panoptic_{split}')])
        inter = osp.join(ann_dir, f'interactive_{split}.json')
        _quiet(interactive.main, [instances, inter, '--seed', '0',
                                  '--image-root', osp.join(root, 'images')])
        paths.update({f'instances_{split}': instances,
                      f'panoptic_{split}': panoptic,
                      f'interactive_{split}': inter})
    _quiet(refs.main, [osp.join(root, 'expressions.csv'),
                       paths['instances_train'], ann_dir])
    for split in ('train', 'val'):
        paths[f'refs_{split}'] = osp.join(ann_dir, f'refs_{split}.json')
    return paths
