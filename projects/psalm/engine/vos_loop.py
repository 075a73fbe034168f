# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Semi-supervised video object segmentation with PSALM (paper Sec. 4.5).

The official DAVIS protocol (reference Sec. 5): frames are segmented one by
one; the visual prompts of a frame are the previous frame's predicted
masks, pooled from the previous frame's image tokens (the PROMPT image),
starting from the reference (ground-truth) masks; each object takes its own
query (unique assignment); the masks are fused into one DAVIS id map.
"""
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple, Union

import mmcv
import numpy as np
import torch
import torch.nn.functional as F
from mmengine.dist import get_world_size
from mmengine.evaluator import Evaluator
from mmengine.model import is_model_wrapper
from mmengine.runner import TestLoop
from mmengine.runner.amp import autocast
from mmengine.structures import PixelData
from torch import Tensor
from torch.utils.data import DataLoader

from mmdet.registry import LOOPS
from mmdet.structures import DetDataSample
from ..models.inference import unique_visual_prompt_inference

__all__ = ['VOSTestLoop', 'fuse_object_masks']


def fuse_object_masks(masks: Tensor, object_ids: Sequence[int],
                      scores: Tensor) -> Tensor:
    """Fuse per-object binary masks into one DAVIS object-id map.

    Where masks overlap, the pixel goes to the object with the higher score
    (masks are painted in increasing score order).

    Args:
        masks (Tensor): ``[K, H, W]`` bool masks.
        object_ids (Sequence[int]): The DAVIS id of every mask (1..254).
        scores (Tensor): ``[K]`` scores.

    Returns:
        Tensor: ``[H, W]`` uint8 ids, 0 = background.
    """
    if len(masks) != len(object_ids) or len(scores) != len(object_ids):
        raise ValueError(f'{len(masks)} masks, {len(scores)} scores and '
                         f'{len(object_ids)} object ids must match')
    if any(not 0 < obj_id < 255 for obj_id in object_ids):
        raise ValueError(f'object ids must lie in [1, 254], got {object_ids}')
    fused = torch.zeros(masks.shape[-2:], dtype=torch.uint8,
                        device=masks.device)
    for k in torch.argsort(scores.float(), stable=True).tolist():
        fused[masks[k]] = object_ids[k]
    return fused


def _pair_iou(masks: Tensor) -> Tensor:
    """``[K, K]`` IoU between bool masks ``[K, H, W]`` (0 on the diagonal)."""
    flat = masks.flatten(1).float()
    inter = flat @ flat.t()
    area = flat.sum(1)
    union = area[:, None] + area[None, :] - inter
    iou = torch.where(union > 0, inter / union.clamp(min=1),
                      torch.zeros_like(inter))
    return iou.fill_diagonal_(0)


@LOOPS.register_module()
class VOSTestLoop(TestLoop):
    """Test loop that segments each video frame by frame (batch size 1).

    The dataset gives, for every frame (in order), the image, the ground
    truth and the references of the objects seen so far
    (:class:`~projects.psalm.datasets.PSALMDAVISDataset` +
    :class:`~projects.psalm.datasets.LoadDAVISAnnotations`). Per object the
    loop keeps a memory: a frame (its preprocessed image) and the object's
    mask on it.

    * An object's memory starts as its reference: the GT mask on the frame
      where it first appears (frame 0, or later for objects that appear
      later). On that frame its output is the reference itself (the given
      mask), and it takes no part in the model pass.
    * On the following frames the memory masks are the visual prompts,
      pooled from the tokens of their memory frame (the model's
      ``prompt_inputs``): the current frame is the LLM image, the prompts
      live on the previous frame. Each object takes the best of its
      ``topk`` queries that no earlier object took
      (:func:`unique_visual_prompt_inference`); the masks are fused into one
      id map (:func:`fuse_object_masks`).
    * The fused mask of an object becomes its memory for the next frame
      (so the previous frame is the prompt image). It is kept unchanged
      when the object's fused mask is empty (nothing to pool) or when two
      predicted masks overlap with IoU above ``consistency_iou_thr``
      (official: an inconsistent prediction does not replace the memory).

    The outputs are data samples with ``pred_sem_seg`` (``[1, H, W]`` DAVIS
    ids at the original size) for :class:`VOSMetric` (J, F, J&F and the
    DAVIS-palette PNGs).

    Frames must arrive in order, one per batch, and a video must not be
    split across processes: the loop runs in a single process.

    Args:
        runner (Runner): The runner.
        dataloader (DataLoader | dict): Batch size 1, no shuffling.
        evaluator (Evaluator | dict | list): Usually ``VOSMetric``.
        fp16 (bool): Run the model under autocast. Defaults to False.
        topk (int): Candidate queries per object. Defaults to 10.
        consistency_iou_thr (float): Above this IoU between two predicted
            masks the memories are not updated. Defaults to 0.4.
    """

    def __init__(self,
                 runner,
                 dataloader: Union[DataLoader, Dict],
                 evaluator: Union[Evaluator, Dict, List],
                 fp16: bool = False,
                 topk: int = 10,
                 consistency_iou_thr: float = 0.4) -> None:
        super().__init__(runner, dataloader, evaluator, fp16)
        batch_size = self.dataloader.batch_size
        if batch_size != 1:
            raise ValueError(f'VOSTestLoop runs frame by frame: the test '
                             f'dataloader needs batch_size=1, got '
                             f'{batch_size}')
        self.topk = topk
        self.consistency_iou_thr = consistency_iou_thr
        self._reset(None)

    def _reset(self, video: Optional[str]) -> None:
        """Forget the memories; start ``video``."""
        self._video = video
        self._next_frame = 0
        # object id -> (memory frame id, [H, W] bool mask on that frame)
        self._memory: Dict[int, Tuple[int, Tensor]] = {}
        # frame id -> [1, 3, H, W] preprocessed image, for memory frames
        self._frames: Dict[int, Tensor] = {}

    def run(self) -> dict:
        """Run every video; single process only."""
        if get_world_size() > 1:
            raise RuntimeError('VOSTestLoop runs videos frame by frame in one '
                               'process; launch the VOS test without '
                               'distribution')
        self._reset(None)
        return super().run()

    @torch.no_grad()
    def run_iter(self, idx: int, data_batch: dict) -> None:
        """Segment one frame and evaluate it.

        Args:
            idx (int): Batch index.
            data_batch (dict): One frame (``inputs``, ``data_samples``).
        """
        self.runner.call_hook(
            'before_test_iter', batch_idx=idx, data_batch=data_batch)
        with autocast(enabled=self.fp16):
            outputs = self.predict_frame(data_batch)
        self.evaluator.process(data_samples=outputs, data_batch=data_batch)
        self.runner.call_hook(
            'after_test_iter',
            batch_idx=idx,
            data_batch=data_batch,
            outputs=outputs)

    def _model(self):
        """The model without its wrapper."""
        model = self.runner.model
        return model.module if is_model_wrapper(model) else model

    def _start_frame(self, sample: DetDataSample) -> int:
        """Check the frame order; reset at a video's first frame."""
        meta = sample.metainfo
        video = osp.basename(osp.dirname(meta['img_path']))
        frame_id = int(meta['frame_id'])
        if frame_id == 0:
            self._reset(video)
        elif video != self._video or frame_id != self._next_frame:
            raise ValueError(
                f'{meta["img_path"]}: frame {frame_id} of video {video!r} '
                f'arrived after frame {self._next_frame - 1} of video '
                f'{self._video!r}; VOS needs the frames of each video in '
                'order (batch size 1, no shuffling)')
        self._next_frame = frame_id + 1
        return frame_id

    def predict_frame(self, data_batch: dict) -> List[DetDataSample]:
        """Segment one frame and update the memories.

        Args:
            data_batch (dict): One frame from the dataloader.

        Returns:
            list[DetDataSample]: The frame's sample with ``pred_sem_seg``.
        """
        if len(data_batch['data_samples']) != 1:
            raise ValueError('VOSTestLoop needs one frame per batch, got '
                             f'{len(data_batch["data_samples"])}')
        model = self._model()
        data = model.data_preprocessor(data_batch, False)
        inputs, sample = data['inputs'], data['data_samples'][0]
        meta = sample.metainfo
        frame_id = self._start_frame(sample)
        object_ids = [int(o) for o in meta['object_ids']]
        ref_frames = [int(f) for f in meta['ref_frame_ids']]
        if any(f > frame_id for f in ref_frames):
            raise ValueError(f'{meta["img_path"]}: a reference lies after '
                             f'frame {frame_id}: {ref_frames}')
        tracked = [o for o, f in zip(object_ids, ref_frames) if f < frame_id]
        new = [(k, o) for k, (o, f) in enumerate(zip(object_ids, ref_frames))
               if f == frame_id]
        lost = [o for o in tracked if o not in self._memory]
        if lost:
            raise ValueError(f'{meta["img_path"]}: objects {lost} have no '
                             'memory; the earlier frames were not run')

        gt_ids = sample.gt_sem_seg.sem_seg[0]  # [H, W] at the original size
        fused = torch.zeros_like(gt_ids, dtype=torch.uint8)
        if tracked:
            masks, scores = self._track(model, inputs, sample, tracked)
            fused = fuse_object_masks(masks, tracked, scores)
            self._update_memory(fused, masks, tracked, frame_id, meta,
                                inputs.shape[-2:])
        for _, obj_id in new:  # the given reference masks
            fused[gt_ids == obj_id] = obj_id
        references = sample.prompt_masks  # [K, H_in, W_in], padded
        for k, obj_id in new:
            self._memory[obj_id] = (frame_id, references[k])
        self._keep_frames(frame_id, inputs)

        sample.pred_sem_seg = PixelData(sem_seg=fused[None])
        return [sample]

    def _track(self, model, inputs: Tensor, sample: DetDataSample,
               object_ids: List[int]) -> Tuple[Tensor, Tensor]:
        """Run the model with the memories as visual prompts.

        Returns:
            tuple[Tensor, Tensor]: ``[K, H, W]`` bool masks at the original
            size and ``[K]`` scores of the tracked objects.
        """
        frames = sorted({self._memory[o][0] for o in object_ids})
        meta = sample.metainfo
        query = DetDataSample(metainfo=meta)
        query.prompt_masks = torch.stack(
            [self._memory[o][1] for o in object_ids])
        query.prompt_inputs = torch.cat([self._frames[f] for f in frames])
        query.prompt_image_ids = torch.tensor(
            [frames.index(self._memory[o][0]) for o in object_ids],
            device=inputs.device)
        all_cls, all_masks = model(inputs, [query], mode='tensor')
        masks, scores, _ = unique_visual_prompt_inference(
            all_cls[-1][0],
            all_masks[-1][0],
            inputs.shape[-2:],
            meta['img_shape'],
            meta['ori_shape'],
            topk=self.topk)
        return masks, scores

    def _update_memory(self, fused: Tensor, masks: Tensor,
                       object_ids: List[int], frame_id: int, meta: dict,
                       pad_shape: Sequence[int]) -> None:
        """This frame's fused masks become the memories (see class doc)."""
        if len(masks) > 1 and float(
                _pair_iou(masks).max()) > self.consistency_iou_thr:
            return
        img_h, img_w = meta['img_shape']
        pad_h, pad_w = pad_shape
        for obj_id in object_ids:
            mask = (fused == obj_id).cpu().numpy().astype(np.uint8)
            # nearest resize to the network input, as the references
            mask = mmcv.imresize(mask, (img_w, img_h), interpolation='nearest')
            if not mask.any():
                continue
            prompt = F.pad(
                torch.from_numpy(mask).to(fused.device).bool(),
                (0, pad_w - img_w, 0, pad_h - img_h))
            self._memory[obj_id] = (frame_id, prompt)

    def _keep_frames(self, frame_id: int, inputs: Tensor) -> None:
        """Cache this frame's input if a memory uses it; drop unused ones."""
        used = {frame for frame, _ in self._memory.values()}
        if frame_id in used:
            self._frames[frame_id] = inputs
        self._frames = {f: x for f, x in self._frames.items() if f in used}
