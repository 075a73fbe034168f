# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Per-image inference post-processing of the PSALM mask generator outputs.

Every function works on the outputs of ONE image (the batch loop belongs to
the caller):

- ``cls_logits`` of shape (num_queries, num_conditions): query-condition
  logits. For the category condition the LAST condition is ``background``
  (the no-object class); the sentence condition has one column; visual
  prompts have one column per region.
- ``mask_logits`` of shape (num_queries, h, w): mask logits at 1/4 of the
  padded network input.
- ``pad_shape``: (H, W) of the padded network input, e.g. (1024, 1024).
- ``img_shape``: (H, W) of the valid (resized, un-padded) region, which sits
  at the top-left corner of the padded input.
- ``ori_shape``: (H, W) of the original image; every returned mask has this
  size.

Masks are brought to the original resolution in the official order:
bilinear up-sampling to ``pad_shape``, crop to ``img_shape``, bilinear
resize to ``ori_shape`` (``align_corners=False``). Queries are selected from
the logits first and only the selected ones are resized, which keeps 100
queries at 1024x1024 cheap. Where the selection itself needs a mask score
(referring, generalized referring and visual-prompt inference), that score is
computed on the low-resolution logits restricted to the valid region; the
official code computes it on the full-resolution masks, which may only change
the choice between queries of nearly equal score.
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmdet.evaluation.functional import INSTANCE_OFFSET
from mmdet.structures.mask import mask2bbox
from mmengine.structures import InstanceData
from torch import Tensor

__all__ = [
    'resize_mask_logits', 'category_inference', 'referring_inference',
    'gres_inference', 'visual_prompt_inference',
    'unique_visual_prompt_inference'
]


def _as_hw(shape: Sequence[int], name: str) -> Tuple[int, int]:
    """Return the leading (H, W) of a shape given as a sequence."""
    if len(shape) < 2:
        raise ValueError(f'{name} should hold (H, W), but got {shape}')
    return int(shape[0]), int(shape[1])


def _check_logits(cls_logits: Tensor,
                  mask_logits: Tensor,
                  num_conditions: Optional[int] = None) -> None:
    """Raise ValueError when the query logits are inconsistent."""
    if cls_logits.dim() != 2:
        raise ValueError('cls_logits should have shape (num_queries, '
                         f'num_conditions), but got {tuple(cls_logits.shape)}')
    if mask_logits.dim() != 3:
        raise ValueError('mask_logits should have shape (num_queries, h, w), '
                         f'but got {tuple(mask_logits.shape)}')
    if cls_logits.shape[0] != mask_logits.shape[0]:
        raise ValueError('cls_logits and mask_logits should have the same '
                         f'number of queries, but got {cls_logits.shape[0]} '
                         f'and {mask_logits.shape[0]}')
    if num_conditions is not None and cls_logits.shape[1] != num_conditions:
        raise ValueError(f'cls_logits should have {num_conditions} '
                         f'condition(s), but got {cls_logits.shape[1]}')


def resize_mask_logits(mask_logits: Tensor, pad_shape: Sequence[int],
                       img_shape: Sequence[int],
                       ori_shape: Sequence[int]) -> Tensor:
    """Bring mask logits from the decoder resolution to the original image.

    Bilinear up-sampling to ``pad_shape``, crop of the top-left
    ``img_shape`` region, bilinear resize to ``ori_shape`` (all with
    ``align_corners=False``), as in the official ``sem_seg_postprocess``.

    Args:
        mask_logits (Tensor): Mask logits of shape (N, h, w).
        pad_shape (Sequence[int]): (H, W) of the padded network input.
        img_shape (Sequence[int]): (H, W) of the valid region, at most
            ``pad_shape``.
        ori_shape (Sequence[int]): (H, W) of the original image.

    Returns:
        Tensor: float32 mask logits of shape (N, ori_H, ori_W).
    """
    if mask_logits.dim() != 3:
        raise ValueError('mask_logits should have shape (N, h, w), but got '
                         f'{tuple(mask_logits.shape)}')
    pad_h, pad_w = _as_hw(pad_shape, 'pad_shape')
    img_h, img_w = _as_hw(img_shape, 'img_shape')
    ori_h, ori_w = _as_hw(ori_shape, 'ori_shape')
    if img_h > pad_h or img_w > pad_w:
        raise ValueError(f'img_shape {(img_h, img_w)} should fit in '
                         f'pad_shape {(pad_h, pad_w)}')
    # shape (N, h, w) -> (N, 1, pad_H, pad_W) -> (N, 1, img_H, img_W)
    masks = F.interpolate(
        mask_logits[:, None].float(),
        size=(pad_h, pad_w),
        mode='bilinear',
        align_corners=False)[..., :img_h, :img_w]
    if (img_h, img_w) != (ori_h, ori_w):
        # shape (N, 1, img_H, img_W) -> (N, 1, ori_H, ori_W)
        masks = F.interpolate(
            masks, size=(ori_h, ori_w), mode='bilinear', align_corners=False)
    return masks[:, 0]


def _resize_queries(mask_logits: Tensor, query_index: Tensor,
                    pad_shape: Sequence[int], img_shape: Sequence[int],
                    ori_shape: Sequence[int]) -> Tensor:
    """Resize the masks of the given queries, each distinct query once.

    Args:
        mask_logits (Tensor): Mask logits of shape (N, h, w).
        query_index (Tensor): Query indices of shape (M, ), may repeat.
        pad_shape (Sequence[int]): (H, W) of the padded network input.
        img_shape (Sequence[int]): (H, W) of the valid region.
        ori_shape (Sequence[int]): (H, W) of the original image.

    Returns:
        Tensor: Mask logits of shape (M, ori_H, ori_W).
    """
    unique, inverse = torch.unique(query_index, return_inverse=True)
    return resize_mask_logits(mask_logits[unique], pad_shape, img_shape,
                              ori_shape)[inverse]


def _mask_scores(mask_logits: Tensor) -> Tensor:
    """Mean sigmoid probability inside each predicted mask (logit > 0).

    Args:
        mask_logits (Tensor): Mask logits of shape (N, H, W).

    Returns:
        Tensor: Mask scores of shape (N, ), 0 for empty masks.
    """
    binary = mask_logits > 0
    # shape (N, H, W) -> (N, )
    inside = mask_logits.float().sigmoid().mul_(binary).flatten(1).sum(1)
    return inside / (binary.flatten(1).sum(1) + 1e-6)


def _query_scores(cls_logits: Tensor, mask_logits: Tensor,
                  pad_shape: Sequence[int],
                  img_shape: Sequence[int]) -> Tensor:
    """Sigmoid condition scores re-scored by the mask score of each query.

    The mask score is computed on the low-resolution logits restricted to
    the (partially) valid rows and columns, so padding never counts.

    Args:
        cls_logits (Tensor): Condition logits of shape (N, K).
        mask_logits (Tensor): Mask logits of shape (N, h, w).
        pad_shape (Sequence[int]): (H, W) of the padded network input.
        img_shape (Sequence[int]): (H, W) of the valid region.

    Returns:
        Tensor: Scores of shape (N, K).
    """
    pad_h, pad_w = _as_hw(pad_shape, 'pad_shape')
    img_h, img_w = _as_hw(img_shape, 'img_shape')
    h, w = mask_logits.shape[-2:]
    valid_h = math.ceil(img_h * h / pad_h)
    valid_w = math.ceil(img_w * w / pad_w)
    mask_scores = _mask_scores(mask_logits[:, :valid_h, :valid_w])
    # shape (N, K) * (N, 1) -> (N, K)
    return cls_logits.float().sigmoid() * mask_scores[:, None]


def _panoptic_fusion(scores: Tensor, labels: Tensor, mask_probs: Tensor,
                     is_thing: Sequence[bool], num_classes: int,
                     iou_thr: float, filter_low_score: bool) -> Tensor:
    """Fuse the kept queries into one panoptic map (Mask2Former rules).

    Args:
        scores (Tensor): Class scores of the kept queries, shape (M, ).
        labels (Tensor): Class labels of the kept queries, shape (M, ).
        mask_probs (Tensor): Sigmoid masks of the kept queries, shape
            (M, H, W).
        is_thing (Sequence[bool]): Thing flag of each real class.
        num_classes (int): Number of real classes, also the void value.
        iou_thr (float): Minimum ratio between the area a query wins and
            the area of its own mask (sigmoid >= 0.5).
        filter_low_score (bool): Whether to drop from a segment the pixels
            where its own sigmoid is below 0.5.

    Returns:
        Tensor: int64 map of shape (H, W) with
        ``label + instance_id * INSTANCE_OFFSET`` (stuff: instance_id 0,
        things: 1, 2, ...), void pixels set to ``num_classes``.
    """
    pan_seg = torch.full(
        mask_probs.shape[-2:],
        num_classes,
        dtype=torch.long,
        device=mask_probs.device)
    if mask_probs.shape[0] == 0:
        return pan_seg
    # shape (M, H, W) -> (H, W)
    mask_ids = (scores[:, None, None] * mask_probs).argmax(0)
    instance_id = 1
    for k in range(mask_probs.shape[0]):
        label = int(labels[k])
        mask = mask_ids == k
        mask_area = int(mask.sum())
        own_mask = mask_probs[k] >= 0.5
        original_area = int(own_mask.sum())
        if filter_low_score:
            mask &= own_mask
        if mask_area == 0 or original_area == 0 or not bool(mask.any()):
            continue
        if mask_area / original_area < iou_thr:
            continue
        if is_thing[label]:
            pan_seg[mask] = label + instance_id * INSTANCE_OFFSET
            instance_id += 1
        else:
            # all segments of one stuff class share instance_id 0: merged
            pan_seg[mask] = label
    return pan_seg


def _instance_results(scores: Tensor, labels: Tensor,
                      mask_logits: Tensor) -> InstanceData:
    """Binarize the selected masks and re-score them by their mask score.

    Args:
        scores (Tensor): Class probabilities, shape (M, ).
        labels (Tensor): Class labels, shape (M, ).
        mask_logits (Tensor): Full-resolution mask logits, shape (M, H, W).

    Returns:
        :obj:`InstanceData`: ``masks`` bool (M, H, W), ``labels`` (M, ),
        ``scores`` (M, ) = class probability x mask score, ``bboxes``
        (M, 4) in (x1, y1, x2, y2).
    """
    masks = mask_logits > 0
    results = InstanceData()
    results.masks = masks
    results.labels = labels
    results.scores = scores * _mask_scores(mask_logits)
    results.bboxes = mask2bbox(masks)
    return results


def category_inference(cls_logits: Tensor,
                       mask_logits: Tensor,
                       pad_shape: Sequence[int],
                       img_shape: Sequence[int],
                       ori_shape: Sequence[int],
                       *,
                       is_thing: Optional[Sequence[bool]] = None,
                       object_mask_thr: float = 0.8,
                       iou_thr: float = 0.8,
                       max_per_image: int = 100,
                       panoptic: bool = True,
                       instance: bool = True,
                       semantic: bool = True,
                       filter_low_score: bool = True) -> Dict[str, object]:
    """Panoptic, instance and semantic inference for the category condition.

    Only the requested outputs are computed, and only the queries they need
    are resized (all of them when ``semantic`` is requested).

    - Panoptic: queries whose arg-max class is not background and whose
      probability is above ``object_mask_thr`` are kept; each pixel goes to
      the kept query with the largest ``score * sigmoid(mask)``; a query
      yields a segment when the area it wins and its own area
      (sigmoid >= 0.5) are positive, its final mask is not empty and the
      ratio of the two areas is at least ``iou_thr``.
    - Instance: the ``max_per_image`` best (query, class) pairs of the
      softmax without background, sorted by class probability; mask =
      logit > 0; score = class probability x mean sigmoid inside the mask.
      When ``panoptic`` is requested, only thing classes are kept.
    - Semantic: ``einsum(softmax(cls)[:, :-1], sigmoid(masks))`` on the
      resized masks (Mask2Former order; the official semantic-only script
      combines at the padded resolution and resizes the class map, which
      costs K-1 instead of N resized maps).

    Args:
        cls_logits (Tensor): Category logits of shape (N, K), the last
            column being background.
        mask_logits (Tensor): Mask logits of shape (N, h, w).
        pad_shape (Sequence[int]): (H, W) of the padded network input.
        img_shape (Sequence[int]): (H, W) of the valid region.
        ori_shape (Sequence[int]): (H, W) of the original image.
        is_thing (Sequence[bool], optional): Thing flag of each of the K-1
            real classes. Required when ``panoptic`` is True.
        object_mask_thr (float): Panoptic class-score threshold.
            Defaults to 0.8.
        iou_thr (float): Panoptic overlap threshold. Defaults to 0.8.
        max_per_image (int): Number of instance predictions before thing
            filtering. Defaults to 100.
        panoptic (bool): Compute ``pan_seg``. Defaults to True.
        instance (bool): Compute ``instances``. Defaults to True.
        semantic (bool): Compute ``sem_seg``. Defaults to True.
        filter_low_score (bool): Remove from each panoptic segment the
            pixels where its own sigmoid is below 0.5 (Mask2Former and
            official behaviour). Defaults to True.

    Returns:
        dict: The requested subset of

        - ``pan_seg`` (Tensor): int64 (ori_H, ori_W), value
          ``label + instance_id * INSTANCE_OFFSET``, void = K-1.
        - ``instances`` (:obj:`InstanceData`): ``masks`` bool
          (M, ori_H, ori_W), ``labels``, ``scores``, ``bboxes``.
        - ``sem_seg`` (Tensor): float32 (K-1, ori_H, ori_W) class scores.
    """
    _check_logits(cls_logits, mask_logits)
    num_queries, num_conditions = cls_logits.shape
    num_classes = num_conditions - 1
    if num_classes < 1:
        raise ValueError('cls_logits should hold at least one class and the '
                         f'background, but got {num_conditions} column(s)')
    if is_thing is not None and len(is_thing) != num_classes:
        raise ValueError(f'is_thing should have {num_classes} entries, but '
                         f'got {len(is_thing)}')
    if panoptic and is_thing is None:
        raise ValueError('is_thing is required for panoptic inference')
    device = cls_logits.device
    # shape (N, K)
    probs = cls_logits.float().softmax(-1)
    query_sets: List[Tensor] = []
    if panoptic:
        pan_scores, pan_labels = probs.max(-1)
        pan_keep = pan_labels.ne(num_classes) & (pan_scores > object_mask_thr)
        pan_index = pan_keep.nonzero()[:, 0]
        query_sets.append(pan_index)
    if instance:
        # shape (N, K-1) -> (N*(K-1), )
        flat_probs = probs[:, :-1].flatten()
        ins_scores, top_index = flat_probs.topk(
            min(max_per_image, flat_probs.numel()))
        ins_labels = top_index % num_classes
        ins_index = top_index // num_classes
        if panoptic:
            keep = torch.as_tensor(
                is_thing, dtype=torch.bool, device=device)[ins_labels]
            ins_scores = ins_scores[keep]
            ins_labels = ins_labels[keep]
            ins_index = ins_index[keep]
        query_sets.append(ins_index)
    if semantic:
        query_sets = [torch.arange(num_queries, device=device)]
    if not query_sets:
        return {}

    # sorted distinct queries; all of them (in order) when semantic is on
    query_ids = torch.unique(torch.cat(query_sets))
    masks = resize_mask_logits(mask_logits[query_ids], pad_shape, img_shape,
                               ori_shape)
    row = torch.full((num_queries, ), -1, dtype=torch.long, device=device)
    row[query_ids] = torch.arange(len(query_ids), device=device)

    results: Dict[str, object] = {}
    if panoptic:
        results['pan_seg'] = _panoptic_fusion(pan_scores[pan_index],
                                              pan_labels[pan_index],
                                              masks[row[pan_index]].sigmoid(),
                                              is_thing, num_classes, iou_thr,
                                              filter_low_score)
    if instance:
        results['instances'] = _instance_results(ins_scores, ins_labels,
                                                 masks[row[ins_index]])
    if semantic:
        # shape (N, K-1), (N, H, W) -> (K-1, H, W)
        results['sem_seg'] = torch.einsum('qc,qhw->chw', probs[:, :-1],
                                          masks.sigmoid())
    return results


def referring_inference(cls_logits: Tensor, mask_logits: Tensor,
                        pad_shape: Sequence[int], img_shape: Sequence[int],
                        ori_shape: Sequence[int]) -> Tuple[Tensor, float]:
    """Referring segmentation: the single best query is the prediction.

    ``score_q = sigmoid(logit_q) * mean_{mask_q > 0}(sigmoid(mask_q))``.

    Args:
        cls_logits (Tensor): Sentence logits of shape (N, 1).
        mask_logits (Tensor): Mask logits of shape (N, h, w).
        pad_shape (Sequence[int]): (H, W) of the padded network input.
        img_shape (Sequence[int]): (H, W) of the valid region.
        ori_shape (Sequence[int]): (H, W) of the original image.

    Returns:
        tuple[Tensor, float]: The bool mask of shape (ori_H, ori_W) of the
        top-1 query and its score.
    """
    _check_logits(cls_logits, mask_logits, num_conditions=1)
    # shape (N, 1) -> (N, )
    scores = _query_scores(cls_logits, mask_logits, pad_shape, img_shape)[:, 0]
    best = int(scores.argmax())
    mask = resize_mask_logits(mask_logits[best:best + 1], pad_shape, img_shape,
                              ori_shape)[0] > 0
    return mask, float(scores[best])


def gres_inference(cls_logits: Tensor,
                   mask_logits: Tensor,
                   pad_shape: Sequence[int],
                   img_shape: Sequence[int],
                   ori_shape: Sequence[int],
                   threshold: float = 0.6,
                   fallback_top1: bool = False) -> Tuple[Tensor, Tensor]:
    """Generalized referring segmentation (any number of targets).

    The prediction is the union of the masks (logit > 0) of every query
    whose score (as in :func:`referring_inference`) is above
    ``threshold``. When no query passes, the mask is empty, which is the
    no-target answer of the paper; ``fallback_top1=True`` reproduces the
    official code, which falls back to the top-1 mask instead.

    Args:
        cls_logits (Tensor): Sentence logits of shape (N, 1).
        mask_logits (Tensor): Mask logits of shape (N, h, w).
        pad_shape (Sequence[int]): (H, W) of the padded network input.
        img_shape (Sequence[int]): (H, W) of the valid region.
        ori_shape (Sequence[int]): (H, W) of the original image.
        threshold (float): Score threshold. Defaults to 0.6.
        fallback_top1 (bool): Return the top-1 mask when no query passes.
            Defaults to False.

    Returns:
        tuple[Tensor, Tensor]: The bool mask of shape (ori_H, ori_W) and the
        query scores of shape (N, ).
    """
    _check_logits(cls_logits, mask_logits, num_conditions=1)
    # shape (N, 1) -> (N, )
    scores = _query_scores(cls_logits, mask_logits, pad_shape, img_shape)[:, 0]
    chosen = (scores > threshold).nonzero()[:, 0]
    if chosen.numel() == 0 and fallback_top1:
        chosen = scores.argmax().view(1)
    if chosen.numel() == 0:
        ori_h, ori_w = _as_hw(ori_shape, 'ori_shape')
        return torch.zeros((ori_h, ori_w),
                           dtype=torch.bool,
                           device=mask_logits.device), scores
    # shape (M, H, W) -> (H, W)
    mask = (resize_mask_logits(mask_logits[chosen], pad_shape, img_shape,
                               ori_shape) > 0).any(0)
    return mask, scores


def _region_scores(cls_logits: Tensor, mask_logits: Tensor,
                   pad_shape: Sequence[int], img_shape: Sequence[int],
                   cond_mask: Optional[Tensor]) -> Tensor:
    """Query-region scores restricted to the valid regions.

    Args:
        cls_logits (Tensor): Region logits of shape (N, K).
        mask_logits (Tensor): Mask logits of shape (N, h, w).
        pad_shape (Sequence[int]): (H, W) of the padded network input.
        img_shape (Sequence[int]): (H, W) of the valid region.
        cond_mask (Tensor, optional): Bool (K, ), True for real regions.

    Returns:
        Tensor: Scores of shape (N, K'), K' the number of real regions.
    """
    _check_logits(cls_logits, mask_logits)
    scores = _query_scores(cls_logits, mask_logits, pad_shape, img_shape)
    if cond_mask is None:
        return scores
    if cond_mask.shape != (cls_logits.shape[1], ):
        raise ValueError(f'cond_mask should have shape ({cls_logits.shape[1]},'
                         f'), but got {tuple(cond_mask.shape)}')
    return scores[:, cond_mask.bool()]


def visual_prompt_inference(
        cls_logits: Tensor,
        mask_logits: Tensor,
        pad_shape: Sequence[int],
        img_shape: Sequence[int],
        ori_shape: Sequence[int],
        cond_mask: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Tensor]:
    """Interactive (visual-prompt) segmentation: top-1 query per region.

    ``score_{q,k} = sigmoid(logit_{q,k}) * mask_score_q``; several regions
    may pick the same query.

    Args:
        cls_logits (Tensor): Region logits of shape (N, K).
        mask_logits (Tensor): Mask logits of shape (N, h, w).
        pad_shape (Sequence[int]): (H, W) of the padded network input.
        img_shape (Sequence[int]): (H, W) of the valid region.
        ori_shape (Sequence[int]): (H, W) of the original image.
        cond_mask (Tensor, optional): Bool (K, ), True for the real regions
            (False for batch padding); only those are returned. Defaults to
            None (all regions are real).

    Returns:
        tuple[Tensor, Tensor, Tensor]: For the K' real regions: bool masks
        (K', ori_H, ori_W), scores (K', ) and chosen query indices (K', ).
    """
    scores = _region_scores(cls_logits, mask_logits, pad_shape, img_shape,
                            cond_mask)
    # shape (N, K') -> (K', )
    best_scores, query_index = scores.max(0)
    masks = _resize_queries(mask_logits, query_index, pad_shape, img_shape,
                            ori_shape) > 0
    return masks, best_scores, query_index


def unique_visual_prompt_inference(
        cls_logits: Tensor,
        mask_logits: Tensor,
        pad_shape: Sequence[int],
        img_shape: Sequence[int],
        ori_shape: Sequence[int],
        cond_mask: Optional[Tensor] = None,
        topk: int = 10) -> Tuple[Tensor, Tensor, Tensor]:
    """Visual-prompt inference with one query per object (VOS variant).

    Objects are processed in order; each takes the best of its ``topk``
    queries (same score as :func:`visual_prompt_inference`) that no earlier
    object took. When all of them are taken, it falls back to its top-1
    query.

    Args:
        cls_logits (Tensor): Region logits of shape (N, K).
        mask_logits (Tensor): Mask logits of shape (N, h, w).
        pad_shape (Sequence[int]): (H, W) of the padded network input.
        img_shape (Sequence[int]): (H, W) of the valid region.
        ori_shape (Sequence[int]): (H, W) of the original image.
        cond_mask (Tensor, optional): Bool (K, ), True for the real regions.
            Defaults to None (all regions are real).
        topk (int): Number of candidate queries per object. Defaults to 10.

    Returns:
        tuple[Tensor, Tensor, Tensor]: For the K' real regions: bool masks
        (K', ori_H, ori_W), scores (K', ) and chosen query indices (K', ).
    """
    scores = _region_scores(cls_logits, mask_logits, pad_shape, img_shape,
                            cond_mask)
    # shape (N, K') -> (k, K'), sorted by decreasing score
    top_scores, top_queries = scores.topk(min(topk, scores.shape[0]), dim=0)
    chosen_ranks: List[int] = []
    taken = set()
    for obj in range(scores.shape[1]):
        candidates = top_queries[:, obj].tolist()
        rank = next(
            (r for r, query in enumerate(candidates) if query not in taken), 0)
        taken.add(candidates[rank])
        chosen_ranks.append(rank)
    ranks = torch.as_tensor(
        chosen_ranks, dtype=torch.long, device=scores.device)
    objects = torch.arange(scores.shape[1], device=scores.device)
    query_index = top_queries[ranks, objects]
    masks = _resize_queries(mask_logits, query_index, pad_shape, img_shape,
                            ori_shape) > 0
    return masks, top_scores[ranks, objects], query_index
