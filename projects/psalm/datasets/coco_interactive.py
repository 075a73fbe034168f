# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""COCO-Interactive: COCO instances prompted by a point, scribble, box or mask.

Shape legend: H, W = original image height and width; K = regions of an
image (one visual prompt and its target instance each).

Prompt generation (paper appendix 8), one prompt of every type per COCO
instance, all at the original resolution and stored as RLE by
``tools/dataset_converters/build_coco_interactive.py``:

* **granularity**: one prompt per *instance* (the paper's wording). The
  official builder works per connected component (area > 5 px) and stores
  the union of the per-component prompts; per-instance generation gives a
  multi-part object one click / one scribble / one box, like a user would.
* **box of an instance**: the tight box of its mask pixels in pixel-edge
  coordinates ``(x0, y0, x1, y1)`` (``x1`` = last column + 1), see
  :func:`mask_to_box`; "bbox centre" below is ``((x0+x1)/2, (y0+y1)/2)``.
* **point** (:func:`sample_point_prompt`): a point drawn uniformly in the disk
  centred on the bbox centre with radius half the short side of the bbox;
  it is accepted if the pixel containing it lies on the object, up to
  ``max_tries`` (1000) tries. Fallback (no try hit the object): the object
  pixel whose centre is nearest to the bbox centre, which lies in the disk
  whenever any object pixel does. The prompt is that single pixel (dilated
  to a disk of radius 10 px when loaded, see :class:`LoadVisualPrompts`).
* **scribble** (:func:`sample_scribble_prompt`): (1) the bbox width and height
  are scaled by independent factors from U[0.5, 1.2] around the bbox centre
  until the IoU of the jittered box with the bbox exceeds 0.5 (up to
  ``max_tries`` tries; fallback: the bbox itself, IoU 1) -
  :func:`jitter_scribble_box`; (2) one of its two diagonals is chosen at
  random and a sine curve is drawn along it (:func:`draw_sine_scribble`):
  ``p(t) = start + t * (end - start) + A * sin(omega * t + phi) * n`` for
  ``t`` in [0, 1] (the position along the diagonal, normalised by its
  length), ``n`` the unit normal of the diagonal, amplitude ``A`` ~ U[10, 20]
  px, angular frequency ``omega`` ~ U[0.2 * 2 pi, 2 pi] per diagonal length
  (i.e. 0.2 to 1 full period over the diagonal, the official U(0.2, 1)
  cycles), phase ``phi`` ~ U[0, 2 pi]. The curve is a 1-px wide 8-connected
  polyline, clipped to the image (dilated to 5 px radius when loaded).
* **box** (:func:`sample_box_prompt`): the bbox with its width and height
  scaled by independent factors from U[0.9, 1.1] around its centre, edges
  rounded to the nearest pixel edge (at least 1 px), filled, clipped to the
  image.
* **mask** (:func:`blur_mask_prompt`): the GT mask blurred by a Gaussian of
  sigma 2 px (``cv2.GaussianBlur``, kernel radius 4 sigma) and binarised at
  the blurred map's mean (the official threshold; the paper only says
  "binarizing"): ``blurred > blurred.mean()``. The mean is taken over the
  whole image, so the prompt is a slightly grown GT mask (more so for small
  objects). A mask covering the whole image (a constant blurred map) is
  returned unchanged.

Random numbers come from a ``np.random.Generator`` passed in; the builder
seeds one per annotation from ``(seed, annotation id)``
(:func:`annotation_rng`), so the output is deterministic for a seed and
independent of the processing order. Per instance the draws are made in the
order point, scribble, box (the mask prompt draws nothing).
"""
import logging
import math
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import pycocotools.mask as mask_utils
from mmengine.fileio import get_local_path, load
from mmengine.logging import print_log

from mmdet.datasets import BaseDetDataset
from mmdet.registry import DATASETS

PROMPT_TYPES = ('point', 'scribble', 'box', 'mask')
# json field of every prompt type (official builder / released json)
PROMPT_FIELDS = {t: f'{t}_visual_prompt_mask' for t in PROMPT_TYPES}

Box = Tuple[float, float, float, float]


# ----------------------------------------------------------------------
# masks and boxes
# ----------------------------------------------------------------------
def segmentation_to_mask(segmentation: Union[list, dict], height: int,
                         width: int) -> np.ndarray:
    """Decode a COCO segmentation (polygons, RLE or uncompressed RLE).

    Args:
        segmentation (list | dict): The ``segmentation`` field of a COCO
            annotation.
        height (int): Image height H.
        width (int): Image width W.

    Returns:
        np.ndarray: (H, W) bool mask.
    """
    if isinstance(segmentation, list):  # polygons
        rle = mask_utils.merge(
            mask_utils.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation.get('counts'), list):  # uncompressed RLE
        rle = mask_utils.frPyObjects(segmentation, height, width)
    else:
        rle = segmentation
    return mask_utils.decode(rle).astype(bool)


def encode_rle(mask: np.ndarray) -> dict:
    """Encode a (H, W) mask as a json-ready COCO RLE (``counts`` is a str).

    Args:
        mask (np.ndarray): (H, W) bool or 0/1 mask.

    Returns:
        dict: ``{'size': [H, W], 'counts': str}``.
    """
    rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    return dict(size=[int(s) for s in rle['size']],
                counts=rle['counts'].decode('ascii'))


def mask_to_box(mask: np.ndarray) -> Box:
    """Tight box of a mask in pixel-edge coordinates.

    Args:
        mask (np.ndarray): (H, W) bool mask with at least one pixel.

    Returns:
        tuple[float]: ``(x0, y0, x1, y1)``; pixel ``(row, col)`` covers
        ``[col, col + 1) x [row, row + 1)``, so ``x1`` is the last column + 1.

    Raises:
        ValueError: If the mask is not 2-D or is empty.
    """
    if mask.ndim != 2:
        raise ValueError(f'expected a (H, W) mask, got shape {mask.shape}')
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        raise ValueError('cannot build a visual prompt from an empty mask')
    return (float(cols[0]), float(rows[0]), float(cols[-1] + 1),
            float(rows[-1] + 1))


def box_iou(boxes: np.ndarray, box: Sequence[float]) -> np.ndarray:
    """IoU of boxes with one box (continuous areas).

    Args:
        boxes (np.ndarray): (N, 4) boxes ``(x0, y0, x1, y1)``.
        box (Sequence[float]): One box ``(x0, y0, x1, y1)``.

    Returns:
        np.ndarray: (N, ) IoUs.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    inter_w = np.clip(
        np.minimum(boxes[:, 2], box[2]) - np.maximum(boxes[:, 0], box[0]), 0,
        None)
    inter_h = np.clip(
        np.minimum(boxes[:, 3], box[3]) - np.maximum(boxes[:, 1], box[1]), 0,
        None)
    inter = inter_w * inter_h
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    area = (box[2] - box[0]) * (box[3] - box[1])
    return inter / (areas + area - inter)


def annotation_rng(seed: int, ann_id: int) -> np.random.Generator:
    """The generator of one annotation's prompts.

    Args:
        seed (int): Builder seed (>= 0).
        ann_id (int): COCO annotation id (>= 0, unique in a COCO json).

    Returns:
        np.random.Generator: Seeded from ``(seed, ann_id)``.
    """
    return np.random.default_rng([seed, ann_id])


# ----------------------------------------------------------------------
# prompt generators (paper appendix 8; see the module docstring)
# ----------------------------------------------------------------------
def sample_point_prompt(mask: np.ndarray, rng: np.random.Generator,
                        max_tries: int = 1000) -> np.ndarray:
    """A one-pixel point prompt near the bbox centre and on the object.

    Args:
        mask (np.ndarray): (H, W) bool GT mask.
        rng (np.random.Generator): Random generator.
        max_tries (int): Points drawn in the disk before the fallback.

    Returns:
        np.ndarray: (H, W) bool mask with exactly one pixel.
    """
    height, width = mask.shape
    x0, y0, x1, y1 = mask_to_box(mask)
    center_x, center_y = (x0 + x1) / 2, (y0 + y1) / 2
    radius = min(x1 - x0, y1 - y0) / 2
    # all tries are drawn at once (same stream as sequential tries):
    # uniform in the disk, shape (max_tries, )
    dist = radius * np.sqrt(rng.random(max_tries))
    angle = 2 * np.pi * rng.random(max_tries)
    cols = np.floor(center_x + dist * np.cos(angle)).astype(np.int64)
    rows = np.floor(center_y + dist * np.sin(angle)).astype(np.int64)
    inside = (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
    hit = np.zeros(max_tries, dtype=bool)
    hit[inside] = mask[rows[inside], cols[inside]]
    if hit.any():
        first = int(np.argmax(hit))
        row, col = rows[first], cols[first]
    else:  # fallback: the object pixel nearest to the bbox centre
        obj_rows, obj_cols = np.nonzero(mask)
        nearest = int(
            np.argmin((obj_cols + 0.5 - center_x)**2 +
                      (obj_rows + 0.5 - center_y)**2))
        row, col = obj_rows[nearest], obj_cols[nearest]
    prompt = np.zeros_like(mask, dtype=bool)
    prompt[row, col] = True
    return prompt


def jitter_scribble_box(box: Box,
                        rng: np.random.Generator,
                        scale_range: Tuple[float, float] = (0.5, 1.2),
                        min_iou: float = 0.5,
                        max_tries: int = 1000) -> Box:
    """Scale a box's width and height around its centre (IoU > min_iou).

    Args:
        box (tuple[float]): ``(x0, y0, x1, y1)``.
        rng (np.random.Generator): Random generator.
        scale_range (tuple[float]): Range of the two scale factors.
        min_iou (float): The jittered box needs IoU > min_iou with ``box``.
        max_tries (int): Scale pairs drawn before falling back to ``box``.

    Returns:
        tuple[float]: The jittered box ``(x0, y0, x1, y1)``.
    """
    x0, y0, x1, y1 = box
    center_x, center_y = (x0 + x1) / 2, (y0 + y1) / 2
    # shape (max_tries, 2): (width scale, height scale) of every try
    scales = rng.uniform(*scale_range, size=(max_tries, 2))
    half_w = (x1 - x0) * scales[:, 0] / 2
    half_h = (y1 - y0) * scales[:, 1] / 2
    candidates = np.stack([
        center_x - half_w, center_y - half_h, center_x + half_w,
        center_y + half_h
    ], axis=1)  # (max_tries, 4)
    valid = box_iou(candidates, box) > min_iou
    if not valid.any():
        return box
    return tuple(float(v) for v in candidates[int(np.argmax(valid))])


def draw_sine_scribble(box: Box, diagonal: int, amplitude: float,
                       omega: float, phase: float,
                       shape: Tuple[int, int]) -> np.ndarray:
    """Draw a 1-px sine curve along a diagonal of a box.

    Args:
        box (tuple[float]): ``(x0, y0, x1, y1)`` in pixel-edge coordinates.
        diagonal (int): 0: ``(x0, y0) -> (x1, y1)``; 1: ``(x0, y1) ->
            (x1, y0)``.
        amplitude (float): Amplitude in pixels, perpendicular to the
            diagonal.
        omega (float): Angular frequency per diagonal length (radians over
            the whole diagonal).
        phase (float): Phase in radians.
        shape (tuple[int]): ``(H, W)`` of the output.

    Returns:
        np.ndarray: (H, W) bool mask of the curve, clipped to the image.
    """
    x0, y0, x1, y1 = box
    if diagonal == 0:
        start, end = np.array([x0, y0]), np.array([x1, y1])
    else:
        start, end = np.array([x0, y1]), np.array([x1, y0])
    direction = end - start
    length = float(np.hypot(*direction))
    normal = np.array([-direction[1], direction[0]]) / length
    # about one sample per pixel of arc length (|p'(t)| <= L + A * omega)
    num = int(math.ceil(length + amplitude * omega)) + 2
    t = np.linspace(0.0, 1.0, num)
    offset = amplitude * np.sin(omega * t + phase)
    # shape (num, ) x (2, ) -> (num, 2), xy
    points = start + t[:, None] * direction + offset[:, None] * normal
    pixels = np.floor(points).astype(np.int32)
    canvas = np.zeros(shape, dtype=np.uint8)
    # shape (num, 2) -> (num, 1, 2), the cv2 polyline layout
    cv2.polylines(canvas, [pixels.reshape(-1, 1, 2)], isClosed=False,
                  color=1, thickness=1, lineType=cv2.LINE_8)
    return canvas.astype(bool)


def sample_scribble_prompt(mask: np.ndarray, rng: np.random.Generator,
                           max_tries: int = 1000) -> np.ndarray:
    """A sine scribble along a diagonal of the jittered bbox.

    Args:
        mask (np.ndarray): (H, W) bool GT mask.
        rng (np.random.Generator): Random generator.
        max_tries (int): Tries of the box jitter.

    Returns:
        np.ndarray: (H, W) bool scribble mask.
    """
    box = jitter_scribble_box(mask_to_box(mask), rng, max_tries=max_tries)
    diagonal = int(rng.integers(2))
    amplitude = rng.uniform(10.0, 20.0)
    omega = rng.uniform(0.2 * 2 * np.pi, 2 * np.pi)
    phase = rng.uniform(0.0, 2 * np.pi)
    return draw_sine_scribble(box, diagonal, amplitude, omega, phase,
                              mask.shape)


def sample_box_prompt(mask: np.ndarray,
                      rng: np.random.Generator,
                      scale_range: Tuple[float, float] = (0.9, 1.1)
                      ) -> np.ndarray:
    """A filled box: the bbox with its sides scaled around its centre.

    Args:
        mask (np.ndarray): (H, W) bool GT mask.
        rng (np.random.Generator): Random generator.
        scale_range (tuple[float]): Range of the width / height scales.

    Returns:
        np.ndarray: (H, W) bool filled rectangle, clipped to the image.
    """
    x0, y0, x1, y1 = mask_to_box(mask)
    scale_w, scale_h = rng.uniform(*scale_range, size=2)
    half_w, half_h = (x1 - x0) * scale_w / 2, (y1 - y0) * scale_h / 2
    center_x, center_y = (x0 + x1) / 2, (y0 + y1) / 2
    left = int(np.floor(center_x - half_w + 0.5))
    right = max(left + 1, int(np.floor(center_x + half_w + 0.5)))
    top = int(np.floor(center_y - half_h + 0.5))
    bottom = max(top + 1, int(np.floor(center_y + half_h + 0.5)))
    prompt = np.zeros_like(mask, dtype=bool)
    prompt[max(top, 0):bottom, max(left, 0):right] = True
    return prompt


def blur_mask_prompt(mask: np.ndarray, sigma: float = 2.0) -> np.ndarray:
    """Gaussian-blur the GT mask and binarise it at the blurred map's mean.

    Args:
        mask (np.ndarray): (H, W) bool GT mask.
        sigma (float): Standard deviation of the Gaussian in pixels.

    Returns:
        np.ndarray: (H, W) bool mask prompt.
    """
    if mask.all():  # constant blurred map: nothing lies above its mean
        return mask.copy()
    blurred = cv2.GaussianBlur(
        mask.astype(np.float64), (0, 0), sigmaX=sigma, sigmaY=sigma)
    return blurred > blurred.mean()


def generate_visual_prompts(mask: np.ndarray, rng: np.random.Generator,
                            max_tries: int = 1000) -> Dict[str, np.ndarray]:
    """All four visual prompts of one instance.

    Args:
        mask (np.ndarray): (H, W) bool GT mask (non-empty).
        rng (np.random.Generator): Random generator (draws in the order
            point, scribble, box).
        max_tries (int): Tries of the point and scribble-box sampling.

    Returns:
        dict[str, np.ndarray]: (H, W) bool prompt per type of
        :data:`PROMPT_TYPES`.
    """
    mask = np.asarray(mask, dtype=bool)
    return dict(
        point=sample_point_prompt(mask, rng, max_tries),
        scribble=sample_scribble_prompt(mask, rng, max_tries),
        box=sample_box_prompt(mask, rng),
        mask=blur_mask_prompt(mask))


# ----------------------------------------------------------------------
# dataset
# ----------------------------------------------------------------------
@DATASETS.register_module()
class COCOInteractiveDataset(BaseDetDataset):
    """COCO-Interactive (PSALM): segment the objects given by visual prompts.

    Reads the json of ``tools/dataset_converters/build_coco_interactive.py``
    or the official released ``coco_interactive_{train,val}_psalm.json`` (the
    same format): a list with one entry per image, ``{image, image_info,
    anns, ...}``, every annotation a COCO annotation plus the RLE fields
    ``{point,scribble,box,mask}_visual_prompt_mask``.

    Every non-crowd annotation is one region: target ``k`` (``bbox_label``
    ``k``) is the object prompted by region ``k``. Crowd annotations are not
    regions (as in the official loader). Each data info also carries, per
    instance, the four RLEs (``visual_prompts``) and the non-empty types
    usable under ``prompt_type`` (``prompt_types``). When a sample is fetched
    the dataset adds ``prompt=dict(task='interactive')`` and ``prompt_type``
    (one type per region): a fixed type, or (``prompt_type=None``) a type
    drawn uniformly among the region's non-empty ones at every fetch
    (global ``np.random``, seeded per worker by mmengine).

    Problems in the json:

    * training (``test_mode=False``): an image without (non-crowd)
      annotations, an annotation with an empty GT (``area`` <= 0 or no
      ``segmentation``) or without a usable prompt raises a ``ValueError``
      naming the image;
    * evaluation: such annotations and images are left out, counted in
      :attr:`skipped_annotations` / :attr:`skipped_images` (also in the
      metainfo in test mode, from which :class:`InteractiveSegMetric`
      reports them in its table) and logged as a warning;
    * an entry or annotation lacking a key raises a ``KeyError`` naming the
      file and the entry.

    Args:
        prompt_type (str, optional): ``'point'``, ``'scribble'``, ``'box'`` or
            ``'mask'`` for every region (evaluation), or None for a random
            type per region and fetch (training). Defaults to None.
        **kwargs: :class:`BaseDetDataset` arguments (``ann_file``,
            ``data_root``, ``data_prefix=dict(img=...)``, ``pipeline``,
            ``test_mode``, ...).
    """
    TASK = 'interactive'

    def __init__(self, *args, prompt_type: Optional[str] = None,
                 **kwargs) -> None:
        if prompt_type is not None and prompt_type not in PROMPT_TYPES:
            raise ValueError(f'prompt_type must be None or one of '
                             f'{PROMPT_TYPES}, got {prompt_type!r}')
        self.prompt_type = prompt_type
        self.skipped_images: List[str] = []
        self.skipped_annotations: List[Tuple[str, int, str]] = []
        super().__init__(*args, **kwargs)

    def load_data_list(self) -> List[dict]:
        """Parse the json into one data info per image.

        Returns:
            list[dict]: Data infos (``img_path``, ``img_id``, ``height``,
            ``width``, ``instances``).
        """
        with get_local_path(
                self.ann_file, backend_args=self.backend_args) as local_path:
            entries = load(local_path, file_format='json')
        if not isinstance(entries, list):
            raise TypeError(f'{self.ann_file}: expected a list of image '
                            f'entries (COCO-Interactive json), got '
                            f'{type(entries).__name__}')
        self.skipped_images, self.skipped_annotations = [], []
        data_list = []
        for index, entry in enumerate(entries):
            missing = [
                key for key in ('image', 'image_info', 'anns')
                if key not in entry
            ] + [
                f'image_info.{key}' for key in ('id', 'height', 'width')
                if key not in entry.get('image_info', {})
            ]
            if missing:
                raise KeyError(f'{self.ann_file}: entry {index} (image '
                               f'{entry.get("image")!r}) lacks {missing}')
            data_info = self.parse_data_info(entry)
            if data_info is not None:
                data_list.append(data_info)
        if self.test_mode:
            # InteractiveSegMetric reports them in its table (training
            # raises instead; its metainfo must match the other tasks' in a
            # ConcatDataset)
            self._metainfo.update(
                skipped_images=list(self.skipped_images),
                skipped_annotations=[
                    list(a) for a in self.skipped_annotations
                ])
        if self.skipped_images or self.skipped_annotations:
            print_log(
                f'{self.__class__.__name__} ({self.ann_file}, prompt_type='
                f'{self.prompt_type}): left out '
                f'{len(self.skipped_annotations)} annotations without a '
                'usable prompt or with an empty GT '
                f'(first: {self.skipped_annotations[:5]}) and '
                f'{len(self.skipped_images)} images without regions (first: '
                f'{self.skipped_images[:5]})',
                logger='current',
                level=logging.WARNING)
        return data_list

    def _annotation_problem(self, ann: dict,
                            prompt_types: List[str]) -> Optional[str]:
        """Why an annotation cannot be a region (None if it can)."""
        if not ann.get('segmentation') or ann.get('area', 1) <= 0:
            return 'empty GT mask'
        if not prompt_types:
            return 'no non-empty visual prompt' if self.prompt_type is None \
                else f'empty {self.prompt_type} visual prompt'
        return None

    def parse_data_info(self, raw_data_info: dict) -> Optional[dict]:
        """Parse one image entry.

        Args:
            raw_data_info (dict): ``{image, image_info, anns, ...}``.

        Returns:
            dict | None: The data info, or None for an evaluation image left
            out (no usable region).

        Raises:
            KeyError: If a prompt field is missing.
            ValueError: For an unusable image / annotation in training.
        """
        image = raw_data_info['image']
        img_info = raw_data_info['image_info']
        instances = []
        for ann in raw_data_info['anns']:
            if ann.get('iscrowd', 0):
                continue
            missing = [
                f for f in ('bbox', *PROMPT_FIELDS.values()) if f not in ann
            ]
            if missing:
                raise KeyError(f'{self.ann_file}: image {image!r} annotation '
                               f'{ann.get("id")} lacks {missing}; build the '
                               'json with tools/dataset_converters/'
                               'build_coco_interactive.py')
            areas = mask_utils.area(
                [ann[PROMPT_FIELDS[t]] for t in PROMPT_TYPES])
            non_empty = [t for t, a in zip(PROMPT_TYPES, areas) if a > 0]
            usable = non_empty if self.prompt_type is None else [
                t for t in non_empty if t == self.prompt_type
            ]
            problem = self._annotation_problem(ann, usable)
            if problem is not None:
                if not self.test_mode:
                    raise ValueError(f'{self.ann_file}: image {image!r} '
                                     f'annotation {ann.get("id")}: {problem}')
                self.skipped_annotations.append((image, ann.get('id'),
                                                 problem))
                continue
            x, y, w, h = ann['bbox']
            instances.append(
                dict(
                    bbox=[x, y, x + w, y + h],
                    bbox_label=len(instances),
                    ignore_flag=0,
                    mask=ann['segmentation'],
                    ann_id=ann.get('id'),
                    category_id=ann.get('category_id'),
                    visual_prompts={
                        t: ann[PROMPT_FIELDS[t]]
                        for t in PROMPT_TYPES
                    },
                    prompt_types=usable))
        if not instances:
            if not self.test_mode:
                raise ValueError(f'{self.ann_file}: image {image!r} has no '
                                 'annotation usable as a region; '
                                 'COCO-Interactive needs at least one')
            self.skipped_images.append(image)
            return None
        return dict(
            img_path=osp.join(self.data_prefix.get('img', ''), image),
            img_id=img_info['id'],
            height=img_info['height'],
            width=img_info['width'],
            instances=instances)

    def prepare_data(self, idx: int) -> dict:
        """Choose the prompt type of every region and run the pipeline.

        Args:
            idx (int): Sample index.

        Returns:
            dict: The pipeline output.
        """
        data_info = self.get_data_info(idx)
        data_info['prompt'] = dict(task=self.TASK)
        data_info['prompt_type'] = [
            self.prompt_type or str(np.random.choice(inst['prompt_types']))
            for inst in data_info['instances']
        ]
        return self.pipeline(data_info)
