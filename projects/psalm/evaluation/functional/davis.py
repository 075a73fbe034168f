# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""DAVIS video object segmentation measures: region J, boundary F and J&F.

Re-implements the measures of the DAVIS-2017 toolkit
(``davisvideochallenge/davis2017-evaluation``, BSD-3,
``davis2017/metrics.py``):
``db_eval_iou`` (J, void pixels excluded, J := 1 when the union is empty) and
``f_measure`` (F: 1-pixel boundaries from ``seg2bmap``, matched within a
tolerance of ``ceil(bound_th * image diagonal)`` pixels by dilating with a
disk). In the semi-supervised protocol the toolkit scores frames 1..T-2 (the
first frame is the given reference, the last one is dropped), averages each
object over its frames, then averages objects over the whole dataset.

Objects that appear after frame 0 (which the DAVIS-2017 toolkit does not
handle: it takes the objects of frame 0) are scored like the YouTube-VOS
convention: from the frame after their first appearance in the ground truth
(where their reference mask is given) to frame T-2.
"""
import os
import os.path as osp
from typing import Dict, FrozenSet, Iterable, NamedTuple, Optional, Tuple

import cv2
import numpy as np
from PIL import Image


def davis_palette(num_colors: int = 256) -> np.ndarray:
    """The DAVIS (= PASCAL VOC) colour map of indexed annotation PNGs.

    Args:
        num_colors (int): Number of palette entries. Defaults to 256.

    Returns:
        np.ndarray: ``uint8`` palette of shape (num_colors, 3); entry 0 is
        black, entry 1 ``(128, 0, 0)``, entry 2 ``(0, 128, 0)``, ...
    """
    palette = np.zeros((num_colors, 3), dtype=np.uint8)
    for index in range(num_colors):
        r = g = b = 0
        c = index
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        palette[index] = (r, g, b)
    return palette


#: The 256-entry DAVIS palette, shape (256, 3).
DAVIS_PALETTE = davis_palette()


def save_davis_png(index_mask: np.ndarray, path: str) -> None:
    """Write an object-id map as an indexed PNG with the DAVIS palette.

    Args:
        index_mask (np.ndarray): Object ids of shape (H, W), 0 = background,
            values in [0, 255].
        path (str): Output file; missing parent directories are created.

    Raises:
        ValueError: If the map is not 2-D or has ids outside [0, 255].
    """
    if index_mask.ndim != 2:
        raise ValueError(f'{path}: an index mask must be (H, W), but got '
                         f'shape {index_mask.shape}.')
    if index_mask.size and (index_mask.min() < 0 or index_mask.max() > 255):
        raise ValueError(f'{path}: object ids must lie in [0, 255], but got '
                         f'[{index_mask.min()}, {index_mask.max()}].')
    image = Image.fromarray(index_mask.astype(np.uint8))
    # putpalette turns the 'L' image into a 'P' (indexed) one
    image.putpalette(DAVIS_PALETTE.flatten().tolist())
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    image.save(path)


def db_eval_iou(gt_mask: np.ndarray,
                pred_mask: np.ndarray,
                void_mask: Optional[np.ndarray] = None) -> float:
    """Region similarity J (Jaccard index) of one object in one frame.

    Args:
        gt_mask (np.ndarray): Binary ground truth, shape (H, W).
        pred_mask (np.ndarray): Binary prediction, shape (H, W).
        void_mask (np.ndarray, optional): Pixels to ignore, shape (H, W).

    Returns:
        float: ``|P & G| / |P | G|`` outside the void pixels; 1.0 when the
        union is empty.
    """
    gt_mask, pred_mask = gt_mask.astype(bool), pred_mask.astype(bool)
    valid = np.ones_like(gt_mask) if void_mask is None else ~void_mask.astype(
        bool)
    intersection = np.sum(gt_mask & pred_mask & valid)
    union = np.sum((gt_mask | pred_mask) & valid)
    if union == 0:
        return 1.0
    return float(intersection / union)


def seg2bmap(seg: np.ndarray) -> np.ndarray:
    """1-pixel-wide boundary map of a binary mask (DAVIS ``_seg2bmap``).

    A pixel is a boundary pixel when it differs from its east, south or
    south-east neighbour, i.e. boundaries sit half a pixel towards the
    origin; e.g. the boundary of a filled ``[a, b] x [c, d]`` box is the
    perimeter of the box ``[a - 1, b] x [c - 1, d]``.

    Args:
        seg (np.ndarray): Binary mask, shape (H, W).

    Returns:
        np.ndarray: Boolean boundary map, shape (H, W).
    """
    seg = seg.astype(bool)
    east = np.zeros_like(seg)
    south = np.zeros_like(seg)
    south_east = np.zeros_like(seg)
    east[:, :-1] = seg[:, 1:]
    south[:-1, :] = seg[1:, :]
    south_east[:-1, :-1] = seg[1:, 1:]
    bmap = (seg ^ east) | (seg ^ south) | (seg ^ south_east)
    bmap[-1, :] = seg[-1, :] ^ east[-1, :]
    bmap[:, -1] = seg[:, -1] ^ south[:, -1]
    bmap[-1, -1] = False
    return bmap


def disk(radius: int) -> np.ndarray:
    """Disk structuring element (``skimage.morphology.disk``).

    Args:
        radius (int): Radius in pixels.

    Returns:
        np.ndarray: ``uint8`` array of shape (2r + 1, 2r + 1), 1 where
        ``x ** 2 + y ** 2 <= r ** 2``.
    """
    coords = np.arange(-radius, radius + 1)
    return (coords[None, :]**2 + coords[:, None]**2 <= radius**2).astype(
        np.uint8)


def db_eval_boundary(gt_mask: np.ndarray,
                     pred_mask: np.ndarray,
                     void_mask: Optional[np.ndarray] = None,
                     bound_th: float = 0.008) -> float:
    """Boundary F-measure F of one object in one frame.

    Args:
        gt_mask (np.ndarray): Binary ground truth, shape (H, W).
        pred_mask (np.ndarray): Binary prediction, shape (H, W).
        void_mask (np.ndarray, optional): Pixels to ignore, shape (H, W).
        bound_th (float): Boundary tolerance; a fraction of the image
            diagonal when < 1 (``ceil(bound_th * sqrt(H^2 + W^2))`` pixels),
            else pixels. Defaults to 0.008.

    Returns:
        float: ``2PR / (P + R)`` of the boundary precision P and recall R;
        1.0 when both masks are empty, 0.0 when exactly one is.
    """
    valid = np.ones(gt_mask.shape, dtype=bool) if void_mask is None \
        else ~void_mask.astype(bool)
    bound_pix = int(bound_th if bound_th >= 1 else np.ceil(
        bound_th * np.linalg.norm(gt_mask.shape)))
    pred_boundary = seg2bmap(pred_mask.astype(bool) & valid)
    gt_boundary = seg2bmap(gt_mask.astype(bool) & valid)
    kernel = disk(bound_pix)
    pred_dilated = cv2.dilate(pred_boundary.astype(np.uint8), kernel) > 0
    gt_dilated = cv2.dilate(gt_boundary.astype(np.uint8), kernel) > 0

    num_pred = np.sum(pred_boundary)
    num_gt = np.sum(gt_boundary)
    if num_pred == 0 and num_gt == 0:
        return 1.0
    if num_pred == 0 or num_gt == 0:
        # precision 1 / recall 0, or precision 0 / recall 1
        return 0.0
    precision = np.sum(pred_boundary & gt_dilated) / num_pred
    recall = np.sum(gt_boundary & pred_dilated) / num_gt
    if precision + recall == 0:
        return 0.0
    return float(2 * precision * recall / (precision + recall))


class FrameScores(NamedTuple):
    """J and F of the objects visible in one frame.

    Attributes:
        gt_objects (frozenset[int]): Object ids present in the ground truth.
        scores (dict[int, tuple[float, float]]): ``(J, F)`` of every object
            present in the ground truth or in the prediction; an object
            absent from both has J = F = 1 and is not stored.
    """
    gt_objects: FrozenSet[int]
    scores: Dict[int, Tuple[float, float]]


def frame_scores(gt_ids: np.ndarray,
                 pred_ids: np.ndarray,
                 void_label: Optional[int] = 255,
                 bound_th: float = 0.008) -> FrameScores:
    """Score every object of one frame given two object-id maps.

    Args:
        gt_ids (np.ndarray): Ground-truth object ids, shape (H, W); 0 is
            background, ``void_label`` marks ignored pixels.
        pred_ids (np.ndarray): Predicted object ids, shape (H, W); 0 is
            background.
        void_label (int, optional): Void id of the ground truth, or None.
            Defaults to 255.
        bound_th (float): See :func:`db_eval_boundary`. Defaults to 0.008.

    Returns:
        FrameScores: The objects of the ground truth and their J / F.

    Raises:
        ValueError: If the shapes differ.
    """
    if gt_ids.shape != pred_ids.shape or gt_ids.ndim != 2:
        raise ValueError('Ground-truth and predicted id maps must be (H, W) '
                         f'of the same shape, but got {gt_ids.shape} and '
                         f'{pred_ids.shape}.')
    void_mask = None if void_label is None else gt_ids == void_label
    gt_objects = set(np.unique(gt_ids).tolist()) - {0, void_label}
    pred_objects = set(np.unique(pred_ids).tolist()) - {0}
    scores = {}
    for obj_id in sorted(gt_objects | pred_objects):
        gt_mask, pred_mask = gt_ids == obj_id, pred_ids == obj_id
        scores[obj_id] = (db_eval_iou(gt_mask, pred_mask, void_mask),
                          db_eval_boundary(gt_mask, pred_mask, void_mask,
                                           bound_th))
    return FrameScores(frozenset(gt_objects), scores)


def video_object_scores(
        frames: Iterable[FrameScores],
        video_name: str = '') -> Dict[int, Tuple[np.ndarray, np.ndarray]]:
    """Per-object J and F over the evaluated frames of one video.

    Object ``k`` first appearing in the ground truth at frame ``a_k`` is
    scored on frames ``a_k < t < T - 1``; for objects of frame 0 these are
    DAVIS's frames 1..T-2. On a frame where the object is absent from both
    the ground truth and the prediction, J = F = 1.

    Args:
        frames (Iterable[FrameScores]): The frames of the video, in order.
        video_name (str): Used in error messages.

    Returns:
        dict[int, tuple[np.ndarray, np.ndarray]]: Object id -> (J, F), each of
        shape (num_evaluated_frames, ); empty for an object that first appears
        in one of the last two frames.

    Raises:
        ValueError: If a predicted object id never occurs in the ground truth
            (the DAVIS toolkit also rejects those).
    """
    frames = list(frames)
    first_frame: Dict[int, int] = {}
    for t, frame in enumerate(frames):
        for obj_id in frame.gt_objects:
            first_frame.setdefault(obj_id, t)
    predicted = {obj_id for frame in frames for obj_id in frame.scores}
    unknown = predicted - set(first_frame)
    if unknown:
        raise ValueError(f'Video {video_name!r}: predicted object ids '
                         f'{sorted(unknown)} never occur in its ground truth.')
    results = {}
    for obj_id, start in sorted(first_frame.items()):
        scores = [
            frames[t].scores.get(obj_id, (1.0, 1.0))
            for t in range(start + 1,
                           len(frames) - 1)
        ]
        # shape (num_evaluated_frames, 2)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1, 2)
        results[obj_id] = (scores[:, 0], scores[:, 1])
    return results


def evaluate_video(
        gt_video: np.ndarray,
        pred_video: np.ndarray,
        void_label: Optional[int] = 255,
        bound_th: float = 0.008,
        video_name: str = '') -> Dict[int, Tuple[np.ndarray, np.ndarray]]:
    """Per-object J and F of a whole video given as id-map stacks.

    Args:
        gt_video (np.ndarray): Ground-truth object ids, shape (T, H, W).
        pred_video (np.ndarray): Predicted object ids, shape (T, H, W).
        void_label (int, optional): Void id of the ground truth, or None.
            Defaults to 255.
        bound_th (float): See :func:`db_eval_boundary`. Defaults to 0.008.
        video_name (str): Used in error messages.

    Returns:
        dict[int, tuple[np.ndarray, np.ndarray]]: See
        :func:`video_object_scores`.

    Raises:
        ValueError: If the frame counts differ.
    """
    if len(gt_video) != len(pred_video):
        raise ValueError(f'Video {video_name!r}: {len(gt_video)} ground-truth '
                         f'frames but {len(pred_video)} predicted frames.')
    return video_object_scores(
        (frame_scores(gt, pred, void_label, bound_th)
         for gt, pred in zip(gt_video, pred_video)), video_name)


def jf_summary(
        object_scores: Iterable[Tuple[np.ndarray, np.ndarray]]
) -> Dict[str, float]:
    """Dataset-level J, F and J&F as the DAVIS toolkit reports them.

    Args:
        object_scores (Iterable[tuple[np.ndarray, np.ndarray]]): ``(J, F)``
            per-frame arrays of every object of every video. Objects without
            an evaluated frame are skipped.

    Returns:
        dict[str, float]: ``J`` and ``F`` (means over objects of the
        per-object frame means), ``J&F = (J + F) / 2``, and ``num_objects``
        (objects averaged).

    Raises:
        ValueError: If no object has an evaluated frame.
    """
    j_means, f_means = [], []
    for j_scores, f_scores in object_scores:
        if len(j_scores):
            j_means.append(np.mean(j_scores))
            f_means.append(np.mean(f_scores))
    if not j_means:
        raise ValueError('No object has an evaluated frame; J&F is undefined.')
    j_mean, f_mean = float(np.mean(j_means)), float(np.mean(f_means))
    return {
        'J': j_mean,
        'F': f_mean,
        'J&F': (j_mean + f_mean) / 2,
        'num_objects': float(len(j_means))
    }
