# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Binary-mask IoU statistics for referring / generalised-referring /
interactive segmentation.

The formulas follow PSALM's evaluation scripts (``intersectionAndUnionGPU`` on
{0, 1} maps) and the GRES (ReLA) definitions:

* cIoU = sum_i |P_i & G_i| / sum_i |P_i | G_i| (cumulative over samples);
* mIoU (PSALM's "gIoU") = mean_i |P_i & G_i| / |P_i | G_i|, with
  IoU_i := 1 when the union is empty (no target and an empty prediction);
* N-acc = TN / (TN + FP) over the no-target samples (empty ground truth),
  T-acc = TP / (TP + FN) over the target samples, where a sample is predicted
  "no target" when its predicted mask is empty.
"""
from typing import TYPE_CHECKING, Tuple, Union

import numpy as np
import torch

if TYPE_CHECKING:
    from mmdet.structures.mask import BaseInstanceMasks

#: N binary masks of shape (N, H, W): a tensor, an array, or mmdet instance
#: masks (``BitmapMasks`` / ``PolygonMasks``, anything with ``to_ndarray``).
MaskLike = Union[torch.Tensor, np.ndarray, 'BaseInstanceMasks']


def to_mask_tensor(masks: MaskLike) -> torch.Tensor:
    """Convert binary masks to a boolean tensor.

    Args:
        masks (MaskLike): Masks of shape (N, H, W) (or (H, W) for one mask);
            non-zero means foreground.

    Returns:
        torch.Tensor: Boolean masks, on the device of ``masks`` when it is a
        tensor, on the CPU otherwise.

    Raises:
        TypeError: If ``masks`` is not one of the supported types.
    """
    if isinstance(masks, torch.Tensor):
        return masks.bool()
    if hasattr(masks, 'to_ndarray'):
        masks = masks.to_ndarray()
    if isinstance(masks, np.ndarray):
        return torch.from_numpy(masks.astype(bool))
    raise TypeError('Masks must be a torch.Tensor, a np.ndarray or mmdet '
                    f'instance masks, but got {type(masks)}.')


def mask_iou_stats(
    pred_masks: MaskLike, gt_masks: MaskLike
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Intersection, union and areas of paired binary masks.

    Args:
        pred_masks (MaskLike): Predicted masks, shape (N, H, W).
        gt_masks (MaskLike): Ground-truth masks, shape (N, H, W); mask ``i``
            is paired with predicted mask ``i``.

    Returns:
        tuple[np.ndarray]: ``(intersections, unions, pred_areas, gt_areas)``,
        each an ``int64`` array of shape (N, ).

    Raises:
        ValueError: If the shapes differ or are not (N, H, W).
    """
    pred = to_mask_tensor(pred_masks)
    gt = to_mask_tensor(gt_masks).to(pred.device)
    if pred.shape != gt.shape or pred.dim() != 3:
        raise ValueError('Predicted and ground-truth masks must have the same '
                         f'(N, H, W) shape, but got {tuple(pred.shape)} and '
                         f'{tuple(gt.shape)}.')
    # shape (N, H, W) -> (N, H * W)
    pred = pred.flatten(1)
    gt = gt.flatten(1)
    stats = torch.stack([(pred & gt).sum(1), (pred | gt).sum(1),
                         pred.sum(1), gt.sum(1)])
    # shape (4, N)
    intersections, unions, pred_areas, gt_areas = \
        stats.cpu().numpy().astype(np.int64)
    return intersections, unions, pred_areas, gt_areas


def cumulative_iou(intersections: np.ndarray, unions: np.ndarray) -> float:
    """cIoU: total intersection over total union.

    Args:
        intersections (np.ndarray): Per-sample intersections, shape (N, ).
        unions (np.ndarray): Per-sample unions, shape (N, ).

    Returns:
        float: ``sum(intersections) / sum(unions)``; 1.0 when every union is
        empty (consistent with the empty-union convention of
        :func:`mean_iou`).

    Raises:
        ValueError: If there are no samples.
    """
    if len(unions) == 0:
        raise ValueError('cIoU of zero samples is undefined.')
    total_union = np.sum(unions)
    if total_union == 0:
        return 1.0
    return float(np.sum(intersections) / total_union)


def mean_iou(intersections: np.ndarray, unions: np.ndarray) -> float:
    """mIoU / gIoU: the mean of per-sample IoUs.

    Args:
        intersections (np.ndarray): Per-sample intersections, shape (N, ).
        unions (np.ndarray): Per-sample unions, shape (N, ).

    Returns:
        float: ``mean_i(I_i / U_i)`` with ``I_i / U_i := 1`` when ``U_i = 0``.

    Raises:
        ValueError: If there are no samples.
    """
    if len(unions) == 0:
        raise ValueError('mIoU of zero samples is undefined.')
    intersections = np.asarray(intersections, dtype=np.float64)
    unions = np.asarray(unions, dtype=np.float64)
    ious = np.divide(
        intersections, unions, out=np.ones_like(unions), where=unions > 0)
    return float(ious.mean())


def target_accuracies(pred_areas: np.ndarray,
                      gt_areas: np.ndarray) -> Tuple[float, float]:
    """GRES no-target accuracy (N-acc) and target accuracy (T-acc).

    Args:
        pred_areas (np.ndarray): Predicted mask areas, shape (N, ); an empty
            prediction (area 0) means "no target".
        gt_areas (np.ndarray): Ground-truth mask areas, shape (N, ); area 0
            marks a no-target sample.

    Returns:
        tuple[float, float]: ``(n_acc, t_acc)`` with
        ``n_acc = TN / (TN + FP)`` over the no-target samples and
        ``t_acc = TP / (TP + FN)`` over the target samples; ``nan`` when the
        corresponding set of samples is empty.
    """
    pred_empty = np.asarray(pred_areas) == 0
    gt_empty = np.asarray(gt_areas) == 0
    num_no_target = int(gt_empty.sum())
    num_target = len(gt_empty) - num_no_target
    true_negatives = int((pred_empty & gt_empty).sum())
    true_positives = int((~pred_empty & ~gt_empty).sum())
    n_acc = true_negatives / num_no_target if num_no_target else float('nan')
    t_acc = true_positives / num_target if num_target else float('nan')
    return n_acc, t_acc
