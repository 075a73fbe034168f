# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Supervised pre-training of a visual encoder on annotated objects.

PSALM starts from a *pre-trained* Swin-B (ImageNet, then Mask2Former on COCO
panoptic). Where no such weights exist -- the randomly initialised tiny
Swin of the ShapesWorld quickstart -- this model gives the encoder the same
kind of start on the training split itself: every annotated object's
feature is the average of one backbone level under the object's mask, and a
linear layer classifies it (cross-entropy on the instance labels of a COCO
instances json). Measured on ShapesWorld (model config header): PSALM's own
matching loss does not teach a random Swin the six shapes in a 3000-iteration
joint training (the six class embeddings collapse to one "thing"
direction), while this classifier separates them in 1000 steps.
"""
from typing import Dict, List, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModel
from torch import Tensor

from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.utils import ConfigType, OptConfigType
from .lmm.conditions import pool_visual_prompts

__all__ = ['ObjectClassifier']


@MODELS.register_module()
class ObjectClassifier(BaseModel):
    """A backbone and a linear classifier of mask-pooled object features.

    Args:
        backbone (dict): The encoder to pre-train (its weights are saved
            under ``backbone.``, the prefix a PSALM config's
            ``backbone.init_cfg=dict(type='Pretrained', ...)`` reads).
        num_classes (int): Number of object classes.
        in_channels (int): Channels of the pooled level.
        level (int): Index of the backbone output that is pooled.
        data_preprocessor (dict, optional): Batching and normalisation
            (PSALM's, so that the encoder sees the same inputs).
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 backbone: ConfigType,
                 num_classes: int,
                 in_channels: int,
                 level: int = 1,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptConfigType = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.level = level
        self.classifier = nn.Linear(in_channels, num_classes)

    def pool_objects(self, inputs: Tensor,
                     data_samples: SampleList) -> List[Tensor]:
        """Average the chosen level under each object's mask.

        Args:
            inputs (Tensor): ``[B, 3, H, W]`` normalised, padded images.
            data_samples (list[DetDataSample]): With ``gt_instances.masks``
                (image-sized, top-left aligned in the padded input).

        Returns:
            list[Tensor]: Per image, ``[T_b, C]`` object features.
        """
        feats = self.backbone(inputs)
        if not 0 <= self.level < len(feats):
            raise ValueError(f'level {self.level} is not an output of the '
                             f'backbone ({len(feats)} outputs)')
        feat = feats[self.level]  # [B, C, h, w]
        pooled = []
        for b, sample in enumerate(data_samples):
            masks = sample.gt_instances.masks
            if hasattr(masks, 'to_tensor'):  # BitmapMasks
                masks = masks.to_tensor(torch.float32, inputs.device)
            masks = masks.float()  # [T, H_img, W_img]
            height, width = inputs.shape[-2:]
            if masks.shape[-2] > height or masks.shape[-1] > width:
                raise ValueError(
                    f'the masks of {sample.metainfo.get("img_path")} '
                    f'({tuple(masks.shape[-2:])}) exceed the input '
                    f'({height}, {width})')
            empty = (masks.flatten(1).sum(1) == 0).nonzero().flatten()
            if len(empty):
                raise ValueError(
                    f'{sample.metainfo.get("img_path")}: object(s) '
                    f'{empty.tolist()} have empty masks')
            # zero-pad like the image (bottom / right), then the mask-area
            # weighted mean of the level (the visual-prompt pooling):
            # [T, H, W] x [C, h, w] -> [T, C]
            masks = F.pad(masks, (0, width - masks.shape[-1], 0,
                                  height - masks.shape[-2]))
            pooled.append(pool_visual_prompts(feat[b], masks, 'mask_avg'))
        return pooled

    def forward(self,
                inputs: Tensor,
                data_samples: SampleList = None,
                mode: str = 'tensor'
                ) -> Union[Dict[str, Tensor], SampleList, List[Tensor]]:
        """``'loss'``: cross-entropy and accuracy; ``'predict'``: labels and
        scores per object in ``pred_instances``; ``'tensor'``: logits
        ``[T_b, num_classes]`` per image."""
        if data_samples is None:
            raise ValueError('ObjectClassifier needs data samples with '
                             'gt_instances')
        logits = [
            self.classifier(f) for f in self.pool_objects(inputs, data_samples)
        ]
        if mode == 'tensor':
            return logits
        if mode == 'loss':
            logits_all = torch.cat(logits)  # [T, K]
            labels = torch.cat([
                s.gt_instances.labels.to(inputs.device).long()
                for s in data_samples
            ])
            if not len(labels):
                raise ValueError('a training batch without any object: '
                                 'filter empty images (filter_cfg)')
            acc = (logits_all.argmax(-1) == labels).float().mean()
            return dict(
                loss_cls=F.cross_entropy(logits_all, labels),
                acc=acc.detach())
        if mode == 'predict':
            for sample, logit in zip(data_samples, logits):
                scores, labels = logit.softmax(-1).max(-1)
                sample.pred_instances = sample.gt_instances.new(
                    labels=labels, scores=scores)
            return data_samples
        raise ValueError(f'invalid mode {mode!r}; use loss, predict or tensor')
