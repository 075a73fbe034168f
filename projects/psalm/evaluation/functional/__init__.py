# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Metric functions that work on arrays, independent of mmengine."""
from .davis import (DAVIS_PALETTE, FrameScores, davis_palette,
                    db_eval_boundary, db_eval_iou, disk, evaluate_video,
                    frame_scores, jf_summary, save_davis_png, seg2bmap,
                    video_object_scores)
from .mask_iou import (cumulative_iou, mask_iou_stats, mean_iou,
                       target_accuracies, to_mask_tensor)
from .panoptic_quality import (OFFSET, VOID, PQStat, PQStatCat,
                               enable_mmdet_panoptic_metric, id2rgb,
                               pq_compute_single_image, rgb2id)
from .vqa import exact_match, normalize_answer, vqa_accuracy

__all__ = [
    'DAVIS_PALETTE', 'FrameScores', 'davis_palette', 'db_eval_boundary',
    'db_eval_iou', 'disk', 'evaluate_video', 'frame_scores', 'jf_summary',
    'save_davis_png', 'seg2bmap', 'video_object_scores', 'cumulative_iou',
    'mask_iou_stats', 'mean_iou', 'target_accuracies', 'to_mask_tensor',
    'OFFSET', 'VOID', 'PQStat', 'PQStatCat', 'enable_mmdet_panoptic_metric',
    'id2rgb', 'pq_compute_single_image', 'rgb2id', 'exact_match',
    'normalize_answer', 'vqa_accuracy'
]
