# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Visual-prompt masks (COCO-Interactive) in an mmdet pipeline.

Shape legend: K = regions (one visual prompt and its target each); H, W =
original image size; h, w = resized image size.

Training pipeline::

    LoadImageFromFile -> LoadAnnotations(with_bbox, with_mask)
    -> LoadVisualPrompts -> Resize(scale=(1024, 1024), keep_ratio=True)
    -> ResizeVisualPrompts -> PackPSALMInputs

Evaluation pipeline (the GT masks keep the original size for the metric)::

    LoadImageFromFile -> LoadVisualPrompts -> Resize(...)
    -> ResizeVisualPrompts(skip_empty=True)
    -> LoadAnnotations(with_bbox, with_mask)
    -> PackPSALMInputs(meta_keys=PSALM_META_KEYS + ('gt_masks', ))

Only ``Resize`` may change the geometry between :class:`LoadVisualPrompts`
and :class:`ResizeVisualPrompts` (PSALM uses no other augmentation);
:class:`ResizeVisualPrompts` resizes the prompts to exactly the image /
GT-mask size with nearest interpolation, which is what mmdet's ``Resize``
does to ``gt_masks``, so prompts and targets stay aligned pixel for pixel.
"""
import logging
from typing import Dict, Optional

import cv2
import numpy as np
import pycocotools.mask as mask_utils
from mmcv.transforms import BaseTransform
from mmengine.logging import print_log

from mmdet.registry import TRANSFORMS
from mmdet.structures.mask import BitmapMasks


def disk_kernel(radius: int) -> np.ndarray:
    """Structuring element of a Euclidean disk.

    Args:
        radius (int): Radius r in pixels.

    Returns:
        np.ndarray: (2r+1, 2r+1) uint8, 1 where ``dx^2 + dy^2 <= r^2``.
    """
    offsets = np.arange(-radius, radius + 1)
    return (offsets[:, None]**2 + offsets[None, :]**2 <=
            radius**2).astype(np.uint8)


@TRANSFORMS.register_module()
class LoadVisualPrompts(BaseTransform):
    """Decode the chosen visual prompt of every region at original size.

    The prompt of region ``k`` is the RLE ``instances[k]['visual_prompts']
    [prompt_type[k]]``. Point prompts are dilated with a disk of radius
    10 px and scribbles with a disk of radius 5 px (official load-time
    enhancement, before resizing), as one morphological dilation; box and
    mask prompts are used as they are.

    Required keys: ``instances`` (with ``visual_prompts``), ``prompt_type``
    (K str), ``ori_shape``, ``img_path``. Optional: ``gt_masks`` (checked to
    hold K masks of the same size).

    Added keys: ``prompt_masks`` (np.ndarray): (K, H, W) bool. Modified
    keys: ``prompt_type`` (made a list).

    Args:
        dilation_radius (dict[str, int], optional): Disk radius per prompt
            type; types not listed are not dilated. Defaults to
            ``dict(point=10, scribble=5)``.
    """

    def __init__(self,
                 dilation_radius: Optional[Dict[str, int]] = None) -> None:
        self.dilation_radius = dict(point=10, scribble=5) \
            if dilation_radius is None else dict(dilation_radius)
        self.kernels = {
            prompt_type: disk_kernel(radius)
            for prompt_type, radius in self.dilation_radius.items()
        }

    def _decode(self, rle: dict, prompt_type: str, name: str,
                shape: tuple) -> np.ndarray:
        """Decode, check and dilate one prompt; returns (H, W) bool."""
        if tuple(rle['size']) != tuple(shape):
            raise ValueError(f'{name}: the {prompt_type} prompt has size '
                             f'{tuple(rle["size"])} but the image is '
                             f'{tuple(shape)}; the prompt lies outside the '
                             'image')
        prompt = mask_utils.decode(rle)  # (H, W) uint8
        if not prompt.any():
            raise ValueError(f'{name}: the {prompt_type} prompt is empty')
        kernel = self.kernels.get(prompt_type)
        if kernel is not None:
            prompt = cv2.dilate(prompt, kernel)
        return prompt.astype(bool)

    def transform(self, results: dict) -> dict:
        """Add ``prompt_masks``.

        Args:
            results (dict): The pipeline results.

        Returns:
            dict: The results with the prompt masks.
        """
        instances = results['instances']
        prompt_types = list(results['prompt_type'])
        shape = tuple(results['ori_shape'])
        if len(prompt_types) != len(instances):
            raise ValueError(f'{results["img_path"]}: {len(prompt_types)} '
                             f'prompt types for {len(instances)} regions')
        gt_masks = results.get('gt_masks')
        if gt_masks is not None and (len(gt_masks) != len(instances) or
                                     (gt_masks.height, gt_masks.width) !=
                                     shape):
            raise ValueError(f'{results["img_path"]}: {len(gt_masks)} GT '
                             f'masks of size {gt_masks.height}x'
                             f'{gt_masks.width} for {len(instances)} regions '
                             f'of an image of size {shape}')
        prompts = [
            self._decode(inst['visual_prompts'][prompt_type], prompt_type,
                         f'{results["img_path"]} region {k} (annotation '
                         f'{inst.get("ann_id")})', shape)
            for k, (inst, prompt_type) in enumerate(
                zip(instances, prompt_types))
        ]
        results['prompt_masks'] = np.stack(prompts) if prompts else \
            np.zeros((0, ) + shape, dtype=bool)  # (K, H, W)
        results['prompt_type'] = prompt_types
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}('
                f'dilation_radius={self.dilation_radius})')


@TRANSFORMS.register_module()
class ResizeVisualPrompts(BaseTransform):
    """Resize ``prompt_masks`` to the (resized) image, as mmdet does masks.

    Place it after mmdet's ``Resize``: the prompts are resized to
    ``img_shape`` with nearest interpolation (``BitmapMasks.resize``), the
    same sampling as the ``gt_masks``.

    A prompt can vanish when an image is shrunk (a thin scribble, a tiny
    box). By default that raises a ``ValueError`` naming the image and the
    region. With ``skip_empty=True`` (evaluation) the region is left out
    with its target (``instances`` and, when loaded, ``gt_masks``,
    ``gt_bboxes``, ``gt_ignore_flags``; ``bbox_label`` / ``gt_bboxes_labels``
    are renumbered ``0..K'-1``), recorded in ``results['skipped_regions']``
    and logged; an image left without any region still raises, since a sample
    needs at least one.

    Required keys: ``prompt_masks``, ``prompt_type``, ``instances``,
    ``img_shape``, ``img_path``. Modified keys: ``prompt_masks`` ((K, h, w)
    bool) and, when skipping, the keys above. Added keys:
    ``skipped_regions`` (list[int], indices before skipping).

    Args:
        skip_empty (bool): Skip regions whose prompt vanished instead of
            raising. Defaults to False.
    """

    def __init__(self, skip_empty: bool = False) -> None:
        self.skip_empty = skip_empty

    @staticmethod
    def _keep(results: dict, keep: np.ndarray) -> None:
        """Keep the regions ``keep`` ((K, ) bool) in every per-region key."""
        results['prompt_type'] = [
            t for t, k in zip(results['prompt_type'], keep) if k
        ]
        kept = [inst for inst, k in zip(results['instances'], keep) if k]
        results['instances'] = [
            dict(inst, bbox_label=label) for label, inst in enumerate(kept)
        ]
        for key in ('prompt_masks', 'gt_masks', 'gt_bboxes',
                    'gt_ignore_flags'):
            if results.get(key) is not None:
                results[key] = results[key][keep]
        if results.get('gt_bboxes_labels') is not None:
            results['gt_bboxes_labels'] = np.arange(
                int(keep.sum()), dtype=np.int64)

    def transform(self, results: dict) -> dict:
        """Resize the prompt masks (and skip vanished ones).

        Args:
            results (dict): The pipeline results.

        Returns:
            dict: The results with (K, h, w) ``prompt_masks``.
        """
        height, width = results['img_shape']
        gt_masks = results.get('gt_masks')
        if gt_masks is not None and (gt_masks.height,
                                     gt_masks.width) != (height, width):
            raise ValueError(f'{results["img_path"]}: GT masks are '
                             f'{gt_masks.height}x{gt_masks.width} but the '
                             f'image is {height}x{width}; resize them with '
                             'mmdet Resize before ResizeVisualPrompts')
        prompts = results['prompt_masks']  # (K, H, W) bool
        resized = BitmapMasks(
            prompts.astype(np.uint8), *prompts.shape[1:]).resize(
                (height, width)).masks.astype(bool)  # (K, h, w)
        results['prompt_masks'] = resized
        keep = resized.reshape(len(resized), -1).any(axis=1)  # (K, )
        vanished = np.flatnonzero(~keep).tolist()
        results['skipped_regions'] = vanished if self.skip_empty else []
        if not vanished:
            return results
        details = [(k, results['prompt_type'][k]) for k in vanished]
        if not self.skip_empty or len(vanished) == len(keep):
            left = 'no region is left; ' if self.skip_empty else ''
            raise ValueError(f'{results["img_path"]}: {left}the visual '
                             f'prompts of regions (index, type) {details} '
                             f'are empty after resizing to {height}x{width}')
        print_log(
            f'{results["img_path"]}: skipped regions (index, type) {details}'
            f' whose prompt vanished after resizing to {height}x{width}',
            logger='current',
            level=logging.WARNING)
        self._keep(results, keep)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(skip_empty={self.skip_empty})'
