# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""COCO panoptic data for PSALM's category tasks (panoptic / instance /
semantic), built on mmdet's ``CocoPanopticDataset`` and
``LoadPanopticAnnotations``."""
import logging
from typing import Any, Dict, List, Optional

import mmcv
import numpy as np
from mmengine.fileio import get, get_local_path
from mmengine.logging import print_log

from mmdet.datasets import CocoPanopticDataset
from mmdet.datasets.transforms import LoadPanopticAnnotations
from mmdet.registry import DATASETS, TRANSFORMS
from mmdet.structures.mask import BitmapMasks
from ..evaluation.functional.panoptic_quality import rgb2id

CATEGORY_TASKS = ('panoptic', 'instance', 'semantic')


@DATASETS.register_module()
class PSALMCocoPanopticDataset(CocoPanopticDataset):
    """COCO panoptic images with PSALM category prompts.

    mmdet's :class:`CocoPanopticDataset` parses the panoptic json (images,
    ``segments_info`` with contiguous ``category`` and mmdet's ``is_thing``
    flag, which is False for crowd segments, as its ``CocoPanopticMetric``
    expects). This class adds:

    * class names read from the json, in its category order (contiguous
      label = index in that order); the dataset metainfo ``classes``,
      ``thing_classes``, ``stuff_classes``, ``palette`` and ``is_thing`` are
      set from the json when the annotations are loaded;
    * ``iscrowd`` in every ``segments_info`` entry (crowd segments are not
      training targets, official PSALM);
    * per fetched sample: ``prompt = dict(task, class_names)`` (every class,
      without ``'background'``, which the input schema appends) and
      ``is_thing`` (one bool per class name).

    Tasks:

    * ``'panoptic'``: the 133 COCO panoptic classes; targets are the
      non-crowd segments, things and stuff (:class:`LoadPanopticSegments`);
    * ``'instance'``: the thing classes only (80 for COCO); stuff segments
      are dropped at load time, targets are the non-crowd thing segments;
    * ``'semantic'``: all classes; one target per class present (the union
      of its non-crowd segments).

    As in mmdet, segments with ``area <= 0`` or a box side below one pixel
    are dropped at load time (counted and logged as a warning). In training
    an image left without any non-crowd segment raises a ``ValueError``
    naming it (every COCO panoptic image is annotated: it has nothing to
    train on), except for the ``'instance'`` task, where images without a
    thing are normal and are left out (counted and logged). A json lacking a
    key raises a ``KeyError`` naming the file (and the image).

    Data info: mmdet's ``img_path``, ``img_id``, ``seg_map_path``,
    ``height``, ``width``, ``instances`` (thing boxes) and ``segments_info``
    (``id``, ``category``, ``is_thing``, ``iscrowd``), plus ``prompt`` and
    ``is_thing`` added at every fetch. Pipeline: ``LoadImageFromFile``,
    :class:`LoadPanopticSegments` (training), ``Resize``,
    :class:`PackPSALMInputs`; the panoptic metric reads ``segments_info``
    and ``seg_map_path`` from the metainfo.

    Args:
        task (str): ``'panoptic'``, ``'instance'`` or ``'semantic'``.
            Defaults to ``'panoptic'``.
        **kwargs: Arguments of :class:`CocoPanopticDataset` (``ann_file``,
            ``data_root``, ``data_prefix=dict(img=..., seg=...)``,
            ``pipeline``, ``test_mode``, ...). A ``metainfo['classes']``
            given here must equal the json's class names of the task.
    """

    def __init__(self, task: str = 'panoptic', **kwargs) -> None:
        if task not in CATEGORY_TASKS:
            raise ValueError(f'task must be one of {CATEGORY_TASKS}, got '
                             f'{task!r}')
        self.task = task
        metainfo = kwargs.get('metainfo') or {}
        self._given_classes = metainfo.get('classes')
        super().__init__(**kwargs)

    def load_data_list(self) -> List[dict]:
        """Load the json; class names and ``is_thing`` come from it.

        Returns:
            list[dict]: One data info per image (mmdet's fields plus
            ``iscrowd`` per segment).
        """
        with get_local_path(
                self.ann_file, backend_args=self.backend_args) as local_path:
            try:
                self.coco = self.COCOAPI(local_path)
            except KeyError as err:
                raise KeyError(
                    f'{self.ann_file}: the panoptic json lacks the key '
                    f'{err} (expected COCO panoptic format: images, '
                    'annotations with segments_info, categories)') from err
        categories = self.coco.dataset.get('categories') or []
        if self.task == 'instance':
            categories = [cat for cat in categories if cat['isthing']]
        if not categories:
            raise ValueError(f'{self.ann_file}: no categories for task '
                             f'{self.task!r}')
        classes = tuple(cat['name'] for cat in categories)
        if (self._given_classes is not None
                and tuple(self._given_classes) != classes):
            raise ValueError(
                f'{self.ann_file}: metainfo classes differ from the json '
                f'categories of task {self.task!r} (json order: '
                f'{classes[:5]}...); leave metainfo classes unset')
        is_thing = [bool(cat['isthing']) for cat in categories]
        self._metainfo.update(
            classes=classes,
            thing_classes=tuple(
                name for name, thing in zip(classes, is_thing) if thing),
            stuff_classes=tuple(
                name for name, thing in zip(classes, is_thing) if not thing),
            palette=[tuple(cat.get('color', (0, 0, 0)))
                     for cat in categories],
            is_thing=is_thing)
        self.cat_ids = [cat['id'] for cat in categories]
        self.cat2label = {cat_id: i for i, cat_id in enumerate(self.cat_ids)}

        data_list, dropped, unannotated = [], [], []
        for img_id in self.coco.get_img_ids():
            raw_img_info = self.coco.load_imgs([img_id])[0]
            raw_img_info['img_id'] = img_id
            raw_ann_info = self.coco.load_anns(
                self.coco.get_ann_ids(img_ids=[img_id]))
            try:
                data_info = self.parse_data_info(
                    dict(raw_img_info=raw_img_info,
                         raw_ann_info=raw_ann_info))
            except KeyError as err:
                raise KeyError(
                    f'{self.ann_file}: image {img_id} '
                    f'({raw_img_info.get("file_name")!r}) or one of its '
                    f'segments lacks the key {err}') from err
            kept = {segment['id'] for segment in data_info['segments_info']}
            dropped += [(raw_img_info.get('file_name'), ann.get('id'))
                        for ann in raw_ann_info
                        if ann['image_id'] == img_id and ann['category_id']
                        in self.cat2label and ann.get('id') not in kept]
            if not self.test_mode and not any(
                    not segment['iscrowd']
                    for segment in data_info['segments_info']):
                if self.task != 'instance':
                    raise ValueError(
                        f'{self.ann_file}: image {img_id} '
                        f'({raw_img_info.get("file_name")!r}) has no '
                        f'non-crowd segment of task {self.task!r} to train '
                        'on; remove it from the training json')
                unannotated.append(raw_img_info.get('file_name'))
                continue
            data_list.append(data_info)
        if unannotated:
            print_log(
                f'{self.ann_file}: left out {len(unannotated)} training '
                'images without a non-crowd thing segment (task '
                f"'instance'), first: {unannotated[:5]}",
                logger='current',
                level=logging.WARNING)
        if dropped:
            print_log(
                f'{self.ann_file}: left out {len(dropped)} segments with '
                'area <= 0 or a box side below 1 pixel (as mmdet), first '
                f'(file, segment id): {dropped[:5]}',
                logger='current',
                level=logging.WARNING)
        del self.coco
        return data_list

    def parse_data_info(self, raw_data_info: dict) -> dict:
        """mmdet's parsing of the task's segments, plus ``iscrowd``.

        Args:
            raw_data_info (dict): ``raw_img_info`` and ``raw_ann_info``.

        Returns:
            dict: The data info of one image.
        """
        img_id = raw_data_info['raw_img_info']['img_id']
        anns = [
            ann for ann in raw_data_info['raw_ann_info']
            if ann['image_id'] == img_id and ann['category_id'] in
            self.cat2label
        ]
        data_info = super().parse_data_info(
            dict(raw_img_info=raw_data_info['raw_img_info'],
                 raw_ann_info=anns))
        crowd = {ann['id']: bool(ann.get('iscrowd', 0)) for ann in anns}
        for segment in data_info['segments_info']:
            segment['iscrowd'] = crowd[segment['id']]
        return data_info

    def get_data_info(self, idx: int) -> dict:
        """The data info with the category prompt and ``is_thing``.

        Args:
            idx (int): Sample index.

        Returns:
            dict: The data info plus ``prompt`` and ``is_thing``.
        """
        data_info = super().get_data_info(idx)
        data_info['prompt'] = dict(
            task=self.task, class_names=list(self.metainfo['classes']))
        data_info['is_thing'] = list(self.metainfo['is_thing'])
        return data_info


@TRANSFORMS.register_module()
class LoadPanopticSegments(LoadPanopticAnnotations):
    """Load the PSALM targets of a COCO panoptic image.

    Reads the panoptic PNG (``id = R + 256 G + 256^2 B``) like mmdet's
    :class:`LoadPanopticAnnotations` (without ``panopticapi``), but gives
    one binary mask per non-crowd segment of ``results['segments_info']``,
    things and stuff alike (official PSALM), as ``gt_masks``
    (:class:`BitmapMasks` at the original size) and its contiguous class as
    ``gt_bboxes_labels``. Crowd segments are not targets. For
    ``prompt['task'] == 'semantic'`` the segments of a class are merged into
    one mask per class (in order of first appearance).

    Required keys: ``seg_map_path``, ``segments_info`` (with ``iscrowd``,
    from :class:`PSALMCocoPanopticDataset`), ``ori_shape``, ``prompt``.
    Added keys: ``gt_masks``, ``gt_bboxes_labels``.

    Args:
        imdecode_backend (str): Image decoding backend of
            :func:`mmcv.imfrombytes`. Defaults to ``'cv2'``.
        backend_args (dict, optional): File backend arguments.
    """

    def __init__(self,
                 imdecode_backend: str = 'cv2',
                 backend_args: Optional[dict] = None) -> None:
        # LoadPanopticAnnotations.__init__ only adds the panopticapi import.
        super(LoadPanopticAnnotations, self).__init__(
            with_bbox=False,
            with_label=False,
            with_mask=True,
            with_seg=False,
            imdecode_backend=imdecode_backend,
            backend_args=backend_args)
        self.rgb2id = rgb2id

    def _load_masks_and_semantic_segs(self, results: Dict[str, Any]) -> None:
        """Decode the PNG into per-segment (or per-class) masks."""
        path = results.get('seg_map_path')
        if path is None:
            raise ValueError(
                f'sample {results.get("img_path")!r}: no seg_map_path; set '
                "data_prefix['seg'] of the dataset")
        pan = self.rgb2id(
            mmcv.imfrombytes(
                get(path, backend_args=self.backend_args),
                flag='color',
                channel_order='rgb',
                backend=self.imdecode_backend))
        height, width = results['ori_shape']
        if pan.shape != (height, width):
            raise ValueError(f'{path}: PNG is {pan.shape[0]}x{pan.shape[1]} '
                             f'but the image is {height}x{width}')
        masks, labels = [], []
        for segment in results['segments_info']:
            if segment['iscrowd']:
                continue
            mask = pan == segment['id']
            if not mask.any():
                raise ValueError(f'{path}: segment {segment["id"]} of the '
                                 'json has no pixel in the PNG')
            masks.append(mask)
            labels.append(segment['category'])
        if results['prompt']['task'] == 'semantic':
            classes = list(dict.fromkeys(labels))
            masks = [
                np.any([m for m, c in zip(masks, labels) if c == label],
                       axis=0) for label in classes
            ]
            labels = classes
        results['gt_masks'] = BitmapMasks(
            [mask.astype(np.uint8) for mask in masks], height, width)
        results['gt_bboxes_labels'] = np.asarray(labels, dtype=np.int64)
