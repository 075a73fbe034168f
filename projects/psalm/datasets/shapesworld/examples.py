# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Ready-made prompts of one generated ShapesWorld image, with their answers.

Read back from the files the generator wrote (COCO instances, gRefCOCO refs,
VQA questions), for the quickstart report's pictures, the demos and the
tests that check a prediction lands on the intended object.
"""
import json
import os.path as osp
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np

from ..coco_interactive import segmentation_to_mask

__all__ = ['ObjectPrompts', 'ImageExamples', 'load_examples']


@dataclass
class ObjectPrompts:
    """Visual prompts of one object, in original-image pixels.

    Attributes:
        ann_id (int): Its COCO annotation id.
        name (str): e.g. ``'small red circle'``.
        mask (np.ndarray): ``(H, W)`` bool visible mask (the target).
        point (tuple[int, int]): ``(x, y)`` deepest interior pixel.
        box (tuple[int, int, int, int]): ``(x1, y1, x2, y2)``.
        scribble (list[tuple[int, int]]): A polyline inside the object.
    """
    ann_id: int
    name: str
    mask: np.ndarray
    point: Tuple[int, int]
    box: Tuple[int, int, int, int]
    scribble: List[Tuple[int, int]]


@dataclass
class ImageExamples:
    """Prompts of one image (see :func:`load_examples`).

    Attributes:
        image_path (str): The image file.
        class_names (list[str]): All ShapesWorld classes (panoptic order).
        is_thing (list[bool]): Thing flag of each class.
        objects (list[ObjectPrompts]): Its objects, largest first.
        expressions (list[dict]): ``text``, ``ann_ids`` (empty for no
            target) and ``mask`` (``(H, W)`` bool union of the targets).
        questions (list[dict]): ``question`` and ``answer``.
    """
    image_path: str
    class_names: List[str]
    is_thing: List[bool]
    objects: List[ObjectPrompts]
    expressions: List[Dict]
    questions: List[Dict]


def _object_prompts(ann: Dict, mask: np.ndarray) -> ObjectPrompts:
    """Point, box and scribble of an object from its visible mask."""
    dist = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
    y, x = np.unravel_index(int(dist.argmax()), dist.shape)
    ys, xs = np.nonzero(mask)
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    # a horizontal stroke through the deepest point, kept inside the mask
    row = np.nonzero(mask[y])[0]
    x0 = int(x - (x - row.min()) // 2)
    x1 = int(x + (row.max() - x) // 2)
    attrs = ann.get('shapesworld', {})
    name = ' '.join(
        str(attrs[k]) for k in ('size', 'colour', 'shape') if attrs.get(k))
    return ObjectPrompts(
        ann_id=int(ann['id']),
        name=name or str(ann['category_id']),
        mask=mask,
        point=(int(x), int(y)),
        box=box,
        scribble=[(x0, int(y)), (int(x), int(y)), (x1, int(y))])


def load_examples(data_root: str,
                  index: int = 0,
                  image_id: Optional[int] = None,
                  split: str = 'val') -> ImageExamples:
    """Prompts of one image of a generated ShapesWorld tree.

    Args:
        data_root (str): The generator's output folder.
        index (int): Which image of the split (in json order), unless
            ``image_id``.
        image_id (int, optional): The image id.
        split (str): ``'val'`` (held out) or ``'train'``; questions exist
            for val images only.

    Returns:
        ImageExamples: The image's prompts and answers.
    """
    coco_root = osp.join(data_root, 'coco')
    if split not in ('train', 'val'):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    inst_file = osp.join(coco_root, 'annotations',
                         f'instances_{split}2017.json')
    if not osp.isfile(inst_file):
        raise FileNotFoundError(
            f'{inst_file} not found: generate ShapesWorld first '
            '(tools/dataset_converters/generate_shapesworld.py)')
    with open(inst_file) as f:
        coco = json.load(f)
    images = coco['images']
    if image_id is None:
        if not 0 <= index < len(images):
            raise IndexError(
                f'{split} has {len(images)} images, asked for {index}')
        image = images[index]
    else:
        matches = [img for img in images if img['id'] == image_id]
        if not matches:
            raise KeyError(f'image id {image_id} is not in {inst_file}')
        image = matches[0]
    h, w = image['height'], image['width']
    anns = [a for a in coco['annotations'] if a['image_id'] == image['id']]
    masks = {a['id']: segmentation_to_mask(a['segmentation'], h, w)
             for a in anns}
    objects = sorted((_object_prompts(a, masks[a['id']]) for a in anns),
                     key=lambda o: -int(o.mask.sum()))

    with open(osp.join(coco_root, 'annotations',
                       f'panoptic_{split}2017.json')) as f:
        categories = json.load(f)['categories']
    with open(osp.join(coco_root, 'grefcoco', 'grefs(unc).json')) as f:
        refs = [r for r in json.load(f) if r['image_id'] == image['id']]
    expressions = []
    for ref in refs:
        ann_ids = [] if ref['ann_id'] == [-1] else list(ref['ann_id'])
        union = np.zeros((h, w), bool)
        for ann_id in ann_ids:
            union |= masks[ann_id]
        for sentence in ref['sentences']:
            expressions.append(
                dict(text=sentence['sent'], ann_ids=ann_ids, mask=union))
    with open(osp.join(data_root, 'vqa', 'vqav2_val.json')) as f:
        questions = [
            dict(question=q['question'], answer=q['answer'])
            for q in json.load(f) if q['image_id'] == image['id']
        ]
    return ImageExamples(
        image_path=osp.join(coco_root, f'{split}2017', image['file_name']),
        class_names=[c['name'] for c in categories],
        is_thing=[bool(c['isthing']) for c in categories],
        objects=objects,
        expressions=expressions,
        questions=questions)
