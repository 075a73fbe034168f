# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Packing of PSALM pipeline results into model inputs and data samples."""
from typing import Any, Dict, Optional, Sequence

import numpy as np
import torch
from mmengine.structures import InstanceData

from mmdet.datasets.transforms import PackDetInputs
from mmdet.registry import TRANSFORMS
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from ...models.lmm.input_schema import TASK_CONDITIONS

#: Meta keys packed by default; each is packed only when present in the
#: results. Besides mmdet's keys: the prompt of the input schema, the
#: thing/stuff flag of every class name (panoptic), the visual-prompt type
#: (interactive), and the evaluation GT of the VQA and panoptic metrics.
PSALM_META_KEYS = ('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor', 'flip', 'flip_direction', 'prompt',
                   'is_thing', 'prompt_type', 'gt_answers', 'segments_info',
                   'seg_map_path')

_INSTANCE_KEYS = ('gt_masks', 'gt_bboxes', 'gt_bboxes_labels',
                  'gt_ignore_flags')


@TRANSFORMS.register_module()
class PackPSALMInputs(PackDetInputs):
    """Pack the results of any PSALM task into ``inputs`` and a data sample.

    On top of mmdet's :class:`PackDetInputs` (image to a ``[3, h, w]`` uint8
    tensor, ``gt_masks`` / ``gt_bboxes_labels`` to ``gt_instances``, meta
    keys to the metainfo), it validates and completes the PSALM data-sample
    contract of ``projects.psalm.models.psalm``:

    * ``results['prompt']`` (a dict with a known ``task``) is required and
      becomes ``metainfo['prompt']``;
    * category tasks (``panoptic``, ``semantic``, ``instance``): labels must
      index ``prompt['class_names']``; ``is_thing`` (when present) must have
      one flag per class name;
    * sentence tasks (``referring``, ``gres``): labels are zeros (added when
      the loader gave none); zero targets are allowed (no-target gRefCOCO);
    * visual tasks (``interactive``, ``vos``): ``results['prompt_masks']``
      (bool array ``[K, h, w]``, ``K >= 1``, at the image size) becomes the
      bool tensor field ``prompt_masks``; labels must index the K prompts;
    * conversation tasks (``vqa``, ``caption``): no ``gt_instances``.

    Training targets (``gt_masks`` present and ``'gt_masks'`` not a meta key)
    must have the (resized) image size. Without ``gt_masks`` in the results
    (e.g. a panoptic test pipeline) the sample gets no ``gt_instances``.

    Evaluation GT masks: when ``'gt_masks'`` is one of ``meta_keys`` (as in
    mmdet's RefCOCO test pipeline, ``LoadAnnotations`` placed *after*
    ``Resize`` so that the masks keep the original size), the masks go to
    ``metainfo['gt_masks']`` only (no ``gt_instances``) and must have
    ``ori_shape``. For sentence tasks they are merged into one mask
    ``[1, H, W]`` (the union of the targets; all zeros for no-target
    samples), the layout :class:`ReferSegMetric` / :class:`GRESMetric` read;
    visual tasks keep one mask per target.

    Args:
        meta_keys (Sequence[str]): Keys copied to the metainfo when present
            in the results. Defaults to :data:`PSALM_META_KEYS`.
    """

    def __init__(self, meta_keys: Sequence[str] = PSALM_META_KEYS) -> None:
        super().__init__(meta_keys=tuple(meta_keys))
        self.eval_gt_masks = 'gt_masks' in self.meta_keys

    def transform(self, results: Dict[str, Any]) -> Dict[str, Any]:
        """Pack one sample.

        Args:
            results (dict): Result dict of the pipeline.

        Returns:
            dict: ``inputs`` (uint8 tensor ``[3, h, w]``) and
            ``data_samples`` (:class:`DetDataSample`).
        """
        name = _sample_name(results)
        if 'img' not in results:
            raise ValueError(f'{name}: no image in the results; put '
                             'LoadImageFromFile in the pipeline')
        task = self._task(results, name)
        cond_type = TASK_CONDITIONS[task]
        results = dict(results)  # shallow: keys are replaced, not mutated
        has_masks = 'gt_masks' in results
        if self.eval_gt_masks:
            if not has_masks:
                raise ValueError(f'{name}: gt_masks is a meta key but the '
                                 'results hold no gt_masks; load them with '
                                 'LoadAnnotations after Resize')
            eval_masks = self._eval_masks(results['gt_masks'], results,
                                          cond_type, name)
            for key in _INSTANCE_KEYS:
                results.pop(key, None)
            results['gt_masks'] = eval_masks
        prompt_masks = None
        if cond_type == 'visual':
            prompt_masks = self._prompt_masks(results, name)

        packed = super().transform(results)
        data_sample: DetDataSample = packed['data_samples']
        if cond_type is None or self.eval_gt_masks or not has_masks:
            del data_sample.gt_instances
            del data_sample.ignored_instances
        else:
            self._check_instances(data_sample.gt_instances, results, task,
                                  cond_type, name)
        if prompt_masks is not None:
            data_sample.prompt_masks = prompt_masks
        return packed

    @staticmethod
    def _task(results: Dict[str, Any], name: str) -> str:
        """The validated task of ``results['prompt']``."""
        prompt = results.get('prompt')
        if not isinstance(prompt, dict):
            raise ValueError(f'{name}: results need a prompt dict (the '
                             f'dataset builds it), got {prompt!r}')
        task = prompt.get('task')
        if task not in TASK_CONDITIONS:
            raise ValueError(f'{name}: unknown prompt task {task!r}, '
                             f'expected one of {list(TASK_CONDITIONS)}')
        is_thing = results.get('is_thing')
        if is_thing is not None and len(is_thing) != len(
                prompt.get('class_names', ())):
            raise ValueError(f'{name}: is_thing has {len(is_thing)} flags '
                             f'for {len(prompt.get("class_names", ()))} '
                             'class names')
        return task

    @staticmethod
    def _eval_masks(masks: BitmapMasks, results: Dict[str, Any],
                    cond_type: Optional[str], name: str) -> BitmapMasks:
        """Original-size GT masks for the metrics (merged for sentences)."""
        if cond_type is None:
            raise ValueError(f'{name}: conversation samples have no GT masks')
        height, width = results['ori_shape']
        if (masks.height, masks.width) != (height, width):
            raise ValueError(
                f'{name}: evaluation gt_masks are {masks.height}x'
                f'{masks.width} but the original image is {height}x{width}; '
                'load the annotations after Resize')
        if cond_type != 'sentence':
            return masks
        union = masks.masks.any(axis=0) if len(masks) else np.zeros(
            (height, width), dtype=bool)
        return BitmapMasks(union[None].astype(np.uint8), height, width)

    @staticmethod
    def _prompt_masks(results: Dict[str, Any], name: str) -> torch.Tensor:
        """The visual prompts as a bool tensor ``[K, h, w]``."""
        masks = results.get('prompt_masks')
        if masks is None:
            raise ValueError(f'{name}: visual-prompt tasks need prompt_masks '
                             'in the results')
        masks = np.asarray(masks)
        if masks.ndim != 3 or len(masks) == 0:
            raise ValueError(f'{name}: prompt_masks must be [K >= 1, h, w], '
                             f'got shape {masks.shape}')
        if masks.shape[1:] != tuple(results['img_shape']):
            raise ValueError(f'{name}: prompt_masks are {masks.shape[1:]} but '
                             f'the image is {tuple(results["img_shape"])}')
        return torch.from_numpy(masks.astype(bool))

    @staticmethod
    def _check_instances(instances: InstanceData, results: Dict[str, Any],
                         task: str, cond_type: str, name: str) -> None:
        """Validate the training targets (and add zero sentence labels)."""
        masks = instances.masks
        if (masks.height, masks.width) != tuple(results['img_shape']):
            raise ValueError(
                f'{name}: gt_masks are {masks.height}x{masks.width} but the '
                f'image is {tuple(results["img_shape"])}; load the '
                'annotations before Resize')
        if 'labels' not in instances:
            if cond_type != 'sentence':
                raise ValueError(f'{name}: task {task!r} needs labels; load '
                                 'them with the masks (with_label=True)')
            instances.labels = torch.zeros(len(masks), dtype=torch.long)
        labels = instances.labels.long()
        instances.labels = labels
        if cond_type == 'category':
            num = len(results['prompt']['class_names'])
        elif cond_type == 'sentence':
            num = 1
        else:
            num = len(results['prompt_masks'])
        if len(labels) and (labels.min() < 0 or labels.max() >= num):
            raise ValueError(f'{name}: task {task!r} labels must lie in '
                             f'[0, {num}), got {labels.tolist()}')


def _sample_name(results: Dict[str, Any]) -> str:
    """Name a sample in error messages."""
    for key in ('img_path', 'img_id'):
        if results.get(key) is not None:
            return f'sample {key}={results[key]!r}'
    return 'sample (without img_path / img_id)'
