# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""DAVIS-style video object segmentation metric (J, F, J&F)."""
import logging
import os.path as osp
from collections import defaultdict
from typing import Dict, Optional, Sequence

from mmdet.evaluation.metrics.base_video_metric import BaseVideoMetric
from mmdet.registry import METRICS
from mmengine.logging import print_log

from ..functional.davis import (FrameScores, frame_scores, jf_summary,
                                save_davis_png, video_object_scores)
from .utils import get_field, log_table, sample_name, to_id_map


@METRICS.register_module()
class VOSMetric(BaseVideoMetric):
    """Semi-supervised VOS: region J, boundary F and J&F, DAVIS protocol.

    Accepts mmdet ``TrackDataSample``s (their ``video_data_samples``, a whole
    video or one frame at a time) or plain per-frame data samples. Fields
    read from every frame:

    * ``pred_sem_seg.sem_seg``: predicted object ids, shape (1, H, W) or
      (H, W); 0 is background, k > 0 the DAVIS object id;
    * ``gt_sem_seg.sem_seg``: ground-truth object ids of the same shape,
      ``void_label`` marks ignored pixels (not read with ``format_only``);
    * metainfo ``img_path`` (its parent directory names the video, as in
      ``JPEGImages/480p/<video>/<frame>.jpg``), ``frame_id`` (0-based) and
      ``ori_video_length``.

    A video is scored once all its frames have arrived, so frames of a video
    must not be split across ranks (mmdet's video samplers keep videos
    whole); :meth:`evaluate` raises when a video is incomplete. Scoring
    follows the DAVIS-2017 toolkit (see
    :mod:`projects.psalm.evaluation.functional.davis`): frames 1..T-2, per
    object mean over frames, then mean over all objects of all videos. An
    object that first appears at frame ``a > 0`` is scored on frames
    ``a < t < T - 1`` (from the frame after its reference mask). A predicted
    id that never occurs in the video's ground truth is an error.

    With ``output_dir`` the predictions are written as DAVIS-palette indexed
    PNGs to ``<output_dir>/<video>/<frame_id:05d>.png`` (the layout of the
    DAVIS toolkit's results folder).

    Results (in %): ``J``, ``F``, ``J&F``; plus ``num_objects``.

    Args:
        output_dir (str, optional): Where to write the PNGs. Defaults to None
            (no PNGs).
        format_only (bool): Only write the PNGs, compute nothing (for test
            sets without ground truth). Needs ``output_dir``. Defaults to
            False.
        void_label (int, optional): Void id in the ground truth. Defaults to
            255.
        bound_th (float): Boundary tolerance as a fraction of the image
            diagonal. Defaults to 0.008.
        collect_device (str): Device used to collect results across ranks.
            Defaults to ``'cpu'``.
        prefix (str, optional): Prefix of the metric names. Defaults to
            ``default_prefix``.
    """
    default_prefix: Optional[str] = 'vos'

    def __init__(self,
                 output_dir: Optional[str] = None,
                 format_only: bool = False,
                 void_label: Optional[int] = 255,
                 bound_th: float = 0.008,
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if format_only and output_dir is None:
            raise ValueError('format_only=True needs an output_dir.')
        self.output_dir = output_dir
        self.format_only = format_only
        self.void_label = void_label
        self.bound_th = bound_th
        # video -> frame_id -> scores, until the video is complete
        self._pending: Dict[str, Dict[int, Optional[FrameScores]]] = \
            defaultdict(dict)

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Score (and write) every frame; finish the completed videos.

        Args:
            data_batch (dict): A batch from the dataloader (unused).
            data_samples (Sequence[dict]): ``TrackDataSample``s (as dicts or
                data elements) or per-frame data samples.
        """
        for data_sample in data_samples:
            frames = data_sample.get('video_data_samples') or [data_sample]
            for frame in frames:
                self._process_frame(frame)

    def _process_frame(self, frame: dict) -> None:
        """Score one frame and finish its video when it is complete.

        Args:
            frame (dict | DetDataSample): One frame's data sample.

        Raises:
            ValueError: If the frame id is out of range or seen twice.
        """
        name = sample_name(frame)
        video = osp.basename(osp.dirname(get_field(frame, 'img_path')))
        frame_id = int(get_field(frame, 'frame_id'))
        length = int(get_field(frame, 'ori_video_length'))
        if not 0 <= frame_id < length:
            raise ValueError(f'{name}: frame_id {frame_id} outside a video '
                             f'of {length} frames.')
        pred = to_id_map(
            get_field(frame, 'pred_sem_seg', 'sem_seg'), f'{name} prediction')
        if self.output_dir is not None:
            save_davis_png(
                pred, osp.join(self.output_dir, video, f'{frame_id:05d}.png'))

        frames = self._pending[video]
        if frame_id in frames:
            raise ValueError(f'{name}: frame {frame_id} of video {video!r} '
                             'was processed twice.')
        if self.format_only:
            frames[frame_id] = None
        else:
            gt = to_id_map(
                get_field(frame, 'gt_sem_seg', 'sem_seg'),
                f'{name} ground truth')
            try:
                frames[frame_id] = frame_scores(gt, pred, self.void_label,
                                                self.bound_th)
            except ValueError as error:
                raise ValueError(f'{name}: {error}') from error
        if len(frames) < length:
            return
        del self._pending[video]
        if self.format_only:
            return
        scores = video_object_scores([frames[t] for t in range(length)],
                                     video)
        for obj_id, (j_scores, f_scores) in scores.items():
            self.results.append((video, obj_id, j_scores, f_scores))

    def evaluate(self, size: int = 1) -> dict:
        """Check that every video is complete, then evaluate.

        Args:
            size (int): Unused by video metrics. Defaults to 1.

        Returns:
            dict: The metrics, prefixed.

        Raises:
            RuntimeError: If some video did not receive all its frames.
        """
        if self._pending:
            incomplete = {v: len(f) for v, f in self._pending.items()}
            self._pending.clear()
            raise RuntimeError('Videos with missing frames (video: frames '
                               f'received): {incomplete}.')
        return super().evaluate(size)

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Average J and F over objects.

        Args:
            results (list): ``(video, object_id, J, F)`` per object, with J and
                F of shape (num_evaluated_frames, ).

        Returns:
            dict[str, float]: ``J``, ``F``, ``J&F`` (in %) and
            ``num_objects``; empty with ``format_only``.
        """
        if self.format_only:
            print_log(f'VOS predictions written to {self.output_dir}.',
                      logger='current')
            return {}
        unscored = [f'{video}/{obj_id}' for video, obj_id, j, _ in results
                    if len(j) == 0]
        if unscored:
            print_log(
                f'Objects first appearing in the last two frames have no '
                f'evaluated frame and are left out: {unscored}',
                logger='current',
                level=logging.WARNING)
        summary = jf_summary((j, f) for _, _, j, f in results)

        rows = [['video', 'objects', 'J', 'F', 'J&F']]
        videos = defaultdict(list)
        for video, _, j_scores, f_scores in results:
            if len(j_scores):
                videos[video].append((j_scores, f_scores))
        for video, objects in sorted(videos.items()):
            video_summary = jf_summary(objects)
            rows.append([video, len(objects)] + [
                f'{100 * video_summary[k]:.2f}' for k in ('J', 'F', 'J&F')
            ])
        metrics = {k: 100 * summary[k] for k in ('J', 'F', 'J&F')}
        metrics['num_objects'] = summary['num_objects']
        rows.append(['all', int(summary['num_objects'])] +
                    [f'{metrics[k]:.2f}' for k in ('J', 'F', 'J&F')])
        log_table('Video object segmentation results (DAVIS protocol):', rows)
        return metrics
