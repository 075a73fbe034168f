# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Per-task predictions of one image: logits -> ``pred_*`` data fields.

Shared by :class:`~projects.psalm.models.PSALM` and the trivial baselines
(:class:`~projects.psalm.models.TrivialBaseline`), so that both are scored
after exactly the same post-processing.
"""
from typing import Dict, Sequence, Tuple

import torch
from mmengine.structures import InstanceData, PixelData
from torch import Tensor

from mmdet.structures import DetDataSample
from .postprocess import (category_inference, gres_inference,
                          referring_inference,
                          unique_visual_prompt_inference,
                          visual_prompt_inference)

__all__ = ['CATEGORY_TASKS', 'fill_prediction']

CATEGORY_TASKS = ('panoptic', 'semantic', 'instance')


def fill_prediction(sample: DetDataSample, task: str, cls_logits: Tensor,
                    mask_logits: Tensor, shapes: Tuple[Sequence[int], ...],
                    test_cfg: Dict) -> None:
    """Turn one image's logits into its ``pred_*`` fields.

    Args:
        sample (DetDataSample): The image's sample (``is_thing`` in its
            metainfo for panoptic); modified in place.
        task (str): The task of the sample.
        cls_logits (Tensor): ``[N, K]`` query-condition logits of the real
            conditions of the sample.
        mask_logits (Tensor): ``[N, h, w]`` mask logits.
        shapes (tuple): ``(pad_shape, img_shape, ori_shape)``.
        test_cfg (dict): ``object_mask_thr``, ``iou_thr``,
            ``max_per_image``, ``gres_threshold``, ``gres_fallback_top1``.
    """
    if task in CATEGORY_TASKS:
        out = category_inference(
            cls_logits, mask_logits, *shapes,
            is_thing=sample.metainfo.get('is_thing'),
            object_mask_thr=test_cfg['object_mask_thr'],
            iou_thr=test_cfg['iou_thr'],
            max_per_image=test_cfg['max_per_image'],
            panoptic=task == 'panoptic',
            instance=task in ('panoptic', 'instance'),
            semantic=task in ('panoptic', 'semantic'))
        if out.get('pan_seg') is not None:
            sample.pred_panoptic_seg = PixelData(sem_seg=out['pan_seg'][None])
        if out.get('instances') is not None:
            sample.pred_instances = out['instances']
        if out.get('sem_seg') is not None:
            sample.pred_sem_seg = PixelData(
                sem_seg=out['sem_seg'].argmax(0, keepdim=True))
        return
    if task == 'referring':
        mask, score = referring_inference(cls_logits, mask_logits, *shapes)
        sample.pred_instances = InstanceData(
            masks=mask[None], scores=mask_logits.new_tensor([score]))
    elif task == 'gres':
        mask, _ = gres_inference(
            cls_logits, mask_logits, *shapes,
            threshold=test_cfg['gres_threshold'],
            fallback_top1=test_cfg['gres_fallback_top1'])
        sample.pred_instances = InstanceData(
            masks=mask[None],
            scores=mask_logits.new_tensor([float(mask.any())]))
    elif task in ('interactive', 'vos'):  # one mask per visual prompt
        # VOS objects must not share a query (official protocol)
        infer = unique_visual_prompt_inference if task == 'vos' \
            else visual_prompt_inference
        region_masks, scores, _ = infer(cls_logits, mask_logits, *shapes)
        sample.pred_instances = InstanceData(
            masks=region_masks, scores=scores,
            labels=torch.arange(len(scores), device=scores.device))
    else:
        raise ValueError(f'task {task!r} has no mask prediction')
