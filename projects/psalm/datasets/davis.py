# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""DAVIS-2017 semi-supervised video object segmentation (paper Tab. 13).

One sample per frame, videos one after the other, frames in order; the
:class:`~projects.psalm.engine.VOSTestLoop` runs them with batch size 1 and
turns each frame's predictions into the next frame's visual prompts.

Layout (DAVIS)::

    JPEGImages/480p/<video>/<frame>.jpg
    Annotations/480p/<video>/<frame>.png   # object ids, 0 = background
    ImageSets/2017/val.txt                 # video names (optional)

Semi-supervised protocol: an object's reference is its ground-truth mask on
the frame where it first appears (frame 0 for most objects; objects that
appear later get their first mask then, as YouTube-VOS and the DAVIS
challenge give it). Each frame's sample carries the references of all
objects seen so far as visual prompts; the loop decides which to use.
"""
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.dataset import BaseDataset
from mmengine.fileio import list_dir_or_file, list_from_file
from PIL import Image

from mmdet.registry import DATASETS, TRANSFORMS
from mmdet.structures.mask import BitmapMasks

MASK_FORMATS = ('palette', 'binary')
#: DAVIS marks ignored pixels with this id.
VOID_ID = 255

__all__ = ['PSALMDAVISDataset', 'LoadDAVISAnnotations', 'read_davis_mask']


def read_davis_mask(path: str, mask_format: str) -> np.ndarray:
    """Read a DAVIS annotation as an object-id map.

    Args:
        path (str): The PNG.
        mask_format (str): ``'palette'``: DAVIS-2017 indexed PNG, the
            palette index is the object id (255 = void); ``'binary'``:
            DAVIS-2016 single-object mask, every non-zero pixel is object 1.

    Returns:
        np.ndarray: (H, W) uint8 object ids.
    """
    if mask_format not in MASK_FORMATS:
        raise ValueError(f'mask_format must be one of {MASK_FORMATS}, got '
                         f'{mask_format!r}')
    with Image.open(path) as image:
        if mask_format == 'palette' and image.mode != 'P':
            raise ValueError(f'{path}: a palette (mode P) PNG was expected, '
                             f'got mode {image.mode}; DAVIS-2016 masks need '
                             "mask_format='binary'")
        ids = np.array(image)
    if ids.ndim != 2:
        raise ValueError(f'{path}: expected a single-channel mask, got shape '
                         f'{ids.shape}')
    if mask_format == 'binary':
        return (ids > 0).astype(np.uint8)
    return ids.astype(np.uint8)


@DATASETS.register_module()
class PSALMDAVISDataset(BaseDataset):
    """DAVIS frames for PSALM's VOS task (``task='vos'``).

    Data info of a frame: ``img_path``, ``seg_map_path`` (its ground truth),
    ``img_id`` (``'<video>/<frame>'``), ``video``, ``frame_id`` (0-based),
    ``ori_video_length``, ``mask_format``, ``prompt = dict(task='vos')`` and
    the references of the objects that have appeared up to this frame, in
    increasing id order: ``object_ids``, ``ref_frame_ids`` (the frame of the
    first appearance) and ``ref_map_paths`` (that frame's annotation).

    The annotations are read once at load time to find the first
    appearances; every frame must have an annotation (DAVIS val/train).

    Args:
        data_root (str): The DAVIS root.
        ann_file (str): Video list (``ImageSets/2017/val.txt``); empty: every
            folder of the image directory. Defaults to ``''``.
        data_prefix (dict): ``img_path`` (frames) and ``seg_map_path``
            (annotations). Defaults to the 480p folders.
        videos (Sequence[str], optional): Only these videos (in this order).
        mask_format (str): See :func:`read_davis_mask`. Defaults to
            ``'palette'`` (DAVIS-2017).
        **kwargs: Other :class:`mmengine.dataset.BaseDataset` arguments.
    """
    METAINFO = dict(classes=('object', ))
    TASK = 'vos'

    def __init__(self,
                 data_root: str,
                 ann_file: str = '',
                 data_prefix: Dict[str, str] = dict(
                     img_path='JPEGImages/480p',
                     seg_map_path='Annotations/480p'),
                 videos: Optional[Sequence[str]] = None,
                 mask_format: str = 'palette',
                 **kwargs) -> None:
        if mask_format not in MASK_FORMATS:
            raise ValueError(f'mask_format must be one of {MASK_FORMATS}, '
                             f'got {mask_format!r}')
        self.videos = None if videos is None else list(videos)
        self.mask_format = mask_format
        super().__init__(
            ann_file=ann_file,
            data_root=data_root,
            data_prefix=data_prefix,
            **kwargs)

    def _video_names(self) -> List[str]:
        """The videos to load, in order."""
        if self.videos is not None:
            return self.videos
        if self.ann_file:
            names = [line.strip() for line in list_from_file(self.ann_file)]
            return [name for name in names if name]
        return sorted(
            list_dir_or_file(
                self.data_prefix['img_path'], list_dir=True, list_file=False))

    def load_data_list(self) -> List[dict]:
        """One data info per frame, videos in order.

        Returns:
            list[dict]: The data infos.
        """
        data_list = []
        for video in self._video_names():
            data_list += self._load_video(video)
        if not data_list:
            raise ValueError(f'{self.data_prefix["img_path"]}: no video')
        return data_list

    def _load_video(self, video: str) -> List[dict]:
        """The frames of one video with the references seen so far."""
        img_dir = osp.join(self.data_prefix['img_path'], video)
        ann_dir = osp.join(self.data_prefix['seg_map_path'], video)
        if not osp.isdir(img_dir):
            raise FileNotFoundError(f'video {video!r}: no frame folder '
                                    f'{img_dir}')
        frames = sorted(
            osp.splitext(name)[0] for name in list_dir_or_file(
                img_dir, list_dir=False, suffix='.jpg'))
        if not frames:
            raise ValueError(f'video {video!r}: no .jpg frame in {img_dir}')
        first_frame: Dict[int, int] = {}
        ann_paths = []
        for t, frame in enumerate(frames):
            ann_path = osp.join(ann_dir, f'{frame}.png')
            if not osp.isfile(ann_path):
                raise FileNotFoundError(
                    f'video {video!r} frame {frame}: no annotation '
                    f'{ann_path} (every frame needs one)')
            ids = np.unique(read_davis_mask(ann_path, self.mask_format))
            for obj_id in ids.tolist():
                if obj_id not in (0, VOID_ID):
                    first_frame.setdefault(obj_id, t)
            ann_paths.append(ann_path)
        if not first_frame:
            raise ValueError(f'video {video!r}: no object in its annotations')
        if min(first_frame.values()) != 0:
            raise ValueError(f'video {video!r}: no object on its first frame '
                             f'{frames[0]} (semi-supervised VOS starts from '
                             'a reference mask on frame 0)')
        data_list = []
        for t, frame in enumerate(frames):
            seen = sorted(o for o, first in first_frame.items() if first <= t)
            data_list.append(
                dict(
                    img_path=osp.join(img_dir, f'{frame}.jpg'),
                    seg_map_path=ann_paths[t],
                    img_id=f'{video}/{frame}',
                    video=video,
                    frame_id=t,
                    ori_video_length=len(frames),
                    mask_format=self.mask_format,
                    object_ids=seen,
                    ref_frame_ids=[first_frame[o] for o in seen],
                    ref_map_paths=[ann_paths[first_frame[o]] for o in seen],
                    prompt=dict(task=self.TASK)))
        return data_list


@TRANSFORMS.register_module()
class LoadDAVISAnnotations(BaseTransform):
    """Load a frame's ground truth and the reference prompts.

    Place it after ``Resize``: the ground truth keeps the original size (for
    the metric), the references are resized to the image (nearest, like
    mmdet's ``Resize`` does masks). Annotations are local files.

    Required keys: ``seg_map_path``, ``mask_format``, ``object_ids``,
    ``ref_map_paths``, ``img_shape``, ``img_path``.

    Added keys: ``gt_seg_map`` ((H, W) uint8 object ids, 255 = void),
    ``prompt_masks`` ((K, h, w) bool: object ``object_ids[k]`` in its
    reference annotation).
    """

    def transform(self, results: dict) -> dict:
        """Add ``gt_seg_map`` and ``prompt_masks``.

        Args:
            results (dict): The pipeline results.

        Returns:
            dict: The results with the ground truth and the references.
        """
        mask_format = results['mask_format']
        gt = read_davis_mask(results['seg_map_path'], mask_format)
        height, width = results['img_shape']
        references = {}
        prompts = []
        for obj_id, path in zip(results['object_ids'],
                                results['ref_map_paths']):
            if path not in references:
                references[path] = read_davis_mask(path, mask_format)
                if references[path].shape != gt.shape:
                    raise ValueError(
                        f'{results["img_path"]}: the reference {path} is '
                        f'{references[path].shape}, the frame {gt.shape}')
            prompts.append(references[path] == obj_id)
        masks = BitmapMasks(
            np.stack(prompts).astype(np.uint8), *gt.shape).resize(
                (height, width)).masks.astype(bool)  # (K, h, w)
        vanished = [
            obj_id for obj_id, mask in zip(results['object_ids'], masks)
            if not mask.any()
        ]
        if vanished:
            raise ValueError(f'{results["img_path"]}: the reference masks of '
                             f'objects {vanished} vanish when resized to '
                             f'{height}x{width}')
        results['gt_seg_map'] = gt
        results['prompt_masks'] = masks
        return results
