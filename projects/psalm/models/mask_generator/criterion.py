# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Matching loss of PSALM (paper Sec. 3.4; official ``PSALM_criterion``).

Per decoder output (final + auxiliary) and image, mask proposals are matched
one-to-one to the ground-truth masks (Hungarian matching on point-sampled
mask BCE + dice costs, plus a class cost for the category condition only).
The matched pairs get a point-sampled mask BCE and dice loss; the class
logits get a condition-specific loss:

* ``category``: softmax cross-entropy over the ``K`` conditions, unmatched
  queries target the background condition (the last real condition of each
  sample, i.e. ``K - 1`` without padding) with class weight
  ``background_weight``; weighted mean.
* ``sentence`` (``K = 1``) and ``visual`` (``K`` regions): BCE-with-logits
  on the ``[B, N, K]`` logits, 1 at (query matched to target ``t``,
  condition of ``t``), over real conditions only, with
  ``pos_weight = (#entries - #positives) / #positives``.
"""
import copy
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmcv.ops import point_sample
from mmdet.models.losses import cross_entropy
from mmdet.models.task_modules.assigners import ClassificationCost
from mmdet.models.utils import get_uncertain_point_coords_with_randomness
from mmdet.registry import MODELS, TASK_UTILS
from mmdet.utils import ConfigType, OptMultiConfig, reduce_mean
from mmengine.model import BaseModule
from mmengine.structures import InstanceData
from torch import Tensor

from .mask_generator import COND_TYPES, PADDED_COND_LOGIT

__all__ = ['PSALMCriterion']

#: Per image, the matched ``(query indices, target indices)``, sorted by
#: target index.
Assignment = List[Tuple[Tensor, Tensor]]


@MODELS.register_module()
class PSALMCriterion(BaseModule):
    """Hungarian matching loss of PSALM with deep supervision.

    Args:
        num_points (int): Points sampled per mask for the matching costs and
            the mask losses. Defaults to 12544.
        oversample_ratio (float): Oversampling of the importance sampling of
            the mask-loss points. Defaults to 3.0.
        importance_sample_ratio (float): Fraction of the mask-loss points
            taken where the prediction is most uncertain. Defaults to 0.75.
        assigner (:obj:`ConfigDict` or dict): ``TASK_UTILS`` assigner config.
            Its ``ClassificationCost`` terms are used for the ``category``
            condition only; the other conditions match on the mask costs
            (as the official matcher). Unused when ``matching=False``.
        loss_cls_weight (float): Weight of the classification loss.
            Defaults to 2.0.
        background_weight (float): Cross-entropy class weight of the
            background condition (category only). Defaults to 0.1.
        loss_mask (:obj:`ConfigDict` or dict): Point-wise mask loss config
            (mmdet sigmoid ``CrossEntropyLoss``), averaged over
            ``num_masks * num_points``.
        loss_dice (:obj:`ConfigDict` or dict): Dice loss config (mmdet
            ``DiceLoss``), averaged over ``num_masks``.
        matching (bool): Hungarian matching (PSALM). False for the
            non-decoupled ablation, where query ``k`` is the prediction for
            condition ``k`` (``N == K``): a target is assigned to the query of
            its condition (``gt_labels``; query 0 for the sentence condition).
            Defaults to True.
        init_cfg (:obj:`ConfigDict` or dict or list, optional):
            Initialisation config. Defaults to None.
    """

    def __init__(self,
                 num_points: int = 12544,
                 oversample_ratio: float = 3.0,
                 importance_sample_ratio: float = 0.75,
                 assigner: ConfigType = dict(
                     type='HungarianAssigner',
                     match_costs=[
                         dict(type='ClassificationCost', weight=2.0),
                         dict(
                             type='CrossEntropyLossCost',
                             weight=5.0,
                             use_sigmoid=True),
                         dict(
                             type='DiceCost',
                             weight=5.0,
                             pred_act=True,
                             eps=1.0)
                     ]),
                 loss_cls_weight: float = 2.0,
                 background_weight: float = 0.1,
                 loss_mask: ConfigType = dict(
                     type='CrossEntropyLoss',
                     use_sigmoid=True,
                     reduction='mean',
                     loss_weight=5.0),
                 loss_dice: ConfigType = dict(
                     type='DiceLoss',
                     use_sigmoid=True,
                     activate=True,
                     reduction='mean',
                     naive_dice=True,
                     eps=1.0,
                     loss_weight=5.0),
                 matching: bool = True,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.num_points = num_points
        self.oversample_ratio = oversample_ratio
        self.importance_sample_ratio = importance_sample_ratio
        self.loss_cls_weight = loss_cls_weight
        self.background_weight = background_weight
        self.matching = matching
        if matching:
            # category condition: every cost
            self.assigner = TASK_UTILS.build(assigner)
            # sentence / visual conditions: mask costs only
            self.mask_assigner = copy.copy(self.assigner)
            self.mask_assigner.match_costs = [
                cost for cost in self.assigner.match_costs
                if not isinstance(cost, ClassificationCost)
            ]
            if not self.mask_assigner.match_costs:
                raise ValueError('The assigner needs at least one mask cost '
                                 'besides ClassificationCost.')
        self.loss_mask = MODELS.build(loss_mask)
        self.loss_dice = MODELS.build(loss_dice)

    def forward(self, all_cls_logits: List[Tensor],
                all_mask_logits: List[Tensor], gt_masks: List[Tensor],
                gt_labels: List[Tensor], cond_type: str,
                cond_mask: Tensor) -> Dict[str, Tensor]:
        """Compute the losses of every decoder output.

        Args:
            all_cls_logits (list[Tensor]): Per output ``[B, N, K]``, the
                last one being the final prediction.
            all_mask_logits (list[Tensor]): Per output ``[B, N, h, w]``.
            gt_masks (list[Tensor]): Per image ``[T_b, H, W]`` bool/uint8
                target masks at the padded input resolution (``T_b`` may be
                0, e.g. gRefCOCO no-target samples).
            gt_labels (list[Tensor]): Per image ``[T_b]`` long. ``category``:
                index of the target's condition, in ``0..K-1`` and not the
                background; ``visual``: index of the target's region
                (distinct within an image); ``sentence``: unused (the single
                condition).
            cond_type (str): ``'category'``, ``'sentence'`` or ``'visual'``.
            cond_mask (Tensor): ``[B, K]`` bool, False at padded conditions.

        Returns:
            dict[str, Tensor]: ``loss_cls``, ``loss_mask``, ``loss_dice`` of
            the final output and ``d{i}.loss_cls`` etc. for the ``i``-th
            auxiliary output (``d0`` = the initial queries).
        """
        background_inds = self._check_inputs(all_cls_logits, all_mask_logits,
                                             gt_masks, gt_labels, cond_type,
                                             cond_mask)
        num_masks = sum(len(labels) for labels in gt_labels)
        num_masks = reduce_mean(all_cls_logits[0].new_tensor(
            float(num_masks))).clamp(min=1)
        # [T_b, H, W] -> float once for all outputs
        gt_masks = [masks.float() for masks in gt_masks]

        losses = {}
        num_outputs = len(all_cls_logits)
        for i, (cls_logits, mask_logits) in enumerate(
                zip(all_cls_logits, all_mask_logits)):
            prefix = '' if i == num_outputs - 1 else f'd{i}.'
            loss_cls, loss_mask, loss_dice = self._loss_single(
                cls_logits, mask_logits, gt_masks, gt_labels, cond_type,
                cond_mask, background_inds, num_masks)
            losses[f'{prefix}loss_cls'] = loss_cls
            losses[f'{prefix}loss_mask'] = loss_mask
            losses[f'{prefix}loss_dice'] = loss_dice
        return losses

    @torch.no_grad()
    def match(self, cls_logits: Tensor, mask_logits: Tensor,
              gt_masks: List[Tensor], gt_labels: List[Tensor], cond_type: str,
              cond_mask: Tensor) -> Assignment:
        """Assign the targets of one decoder output to queries.

        Args:
            cls_logits (Tensor): ``[B, N, K]``.
            mask_logits (Tensor): ``[B, N, h, w]``.
            gt_masks, gt_labels, cond_type, cond_mask: As in :meth:`forward`.

        Returns:
            list[tuple[Tensor, Tensor]]: Per image ``(query_inds,
            target_inds)``, sorted by target index.
        """
        self._check_inputs([cls_logits], [mask_logits], gt_masks, gt_labels,
                           cond_type, cond_mask)
        cls_logits = self._prepare_cls_logits(cls_logits, cond_type, cond_mask)
        return self._assign(cls_logits, mask_logits.float(),
                            [masks.float() for masks in gt_masks], gt_labels,
                            cond_type)

    def _check_inputs(self, all_cls_logits: List[Tensor],
                      all_mask_logits: List[Tensor], gt_masks: List[Tensor],
                      gt_labels: List[Tensor], cond_type: str,
                      cond_mask: Tensor) -> Optional[Tensor]:
        """Raise ``ValueError`` on inconsistent inputs.

        Returns:
            Tensor or None: See :meth:`_check_targets`.
        """
        if cond_type not in COND_TYPES:
            raise ValueError(f'cond_type must be one of {COND_TYPES}, got '
                             f'{cond_type!r}.')
        if not all_cls_logits or len(all_cls_logits) != len(all_mask_logits):
            raise ValueError(
                'all_cls_logits and all_mask_logits must be non-empty lists '
                f'of the same length, got {len(all_cls_logits)} and '
                f'{len(all_mask_logits)}.')
        if all_cls_logits[0].dim() != 3:
            raise ValueError('Class logits must be [B, N, K], got '
                             f'{list(all_cls_logits[0].shape)}.')
        batch_size, num_queries, num_conds = all_cls_logits[0].shape
        for cls_logits, mask_logits in zip(all_cls_logits, all_mask_logits):
            if cls_logits.shape != all_cls_logits[0].shape \
                    or mask_logits.dim() != 4 \
                    or mask_logits.shape[:2] != (batch_size, num_queries):
                raise ValueError(
                    'Every output must have class logits [B, N, K] = '
                    f'{[batch_size, num_queries, num_conds]} and mask logits '
                    f'[B, N, h, w]; got {list(cls_logits.shape)} and '
                    f'{list(mask_logits.shape)}.')
        if cond_mask.dtype != torch.bool \
                or cond_mask.shape != (batch_size, num_conds):
            raise ValueError(
                f'cond_mask must be bool [B, K] = {[batch_size, num_conds]}, '
                f'got {cond_mask.dtype} {list(cond_mask.shape)}.')
        if len(gt_masks) != batch_size or len(gt_labels) != batch_size:
            raise ValueError(
                f'Expected {batch_size} gt_masks and gt_labels, got '
                f'{len(gt_masks)} and {len(gt_labels)}.')
        if cond_type == 'sentence' and num_conds != 1:
            raise ValueError('The sentence condition needs K == 1, got '
                             f'K = {num_conds}.')
        if not self.matching and num_queries != num_conds:
            raise ValueError('Without matching, query k predicts condition '
                             f'k: N ({num_queries}) must equal K '
                             f'({num_conds}).')

        return self._check_targets(gt_masks, gt_labels, cond_type, cond_mask)

    def _check_targets(self, gt_masks: List[Tensor], gt_labels: List[Tensor],
                       cond_type: str, cond_mask: Tensor) -> Optional[Tensor]:
        """Check every image's targets against its real conditions.

        Returns:
            Tensor or None: For ``category``, the background condition of each
            image ``[B]`` (its last real condition); None otherwise.
        """
        cond_mask_cpu = cond_mask.cpu()
        num_conds = cond_mask.shape[1]
        # index of the last real condition of every image
        last_valid = (num_conds - 1 -
                      cond_mask_cpu.flip(1).int().argmax(1)).tolist()
        for b, (masks, labels) in enumerate(zip(gt_masks, gt_labels)):
            if masks.dim() != 3 or labels.dim() != 1 \
                    or masks.shape[0] != labels.shape[0]:
                raise ValueError(
                    f'Image {b}: gt_masks must be [T, H, W] and gt_labels '
                    f'[T] with the same T, got {list(masks.shape)} and '
                    f'{list(labels.shape)}.')
            label_list = labels.tolist()
            valid = cond_mask_cpu[b]
            if cond_type == 'sentence':
                if not self.matching and len(label_list) > 1:
                    raise ValueError(
                        f'Image {b}: without matching the sentence condition '
                        f'has one query, got {len(label_list)} targets.')
                continue
            if cond_type == 'category':
                if not valid.any():
                    raise ValueError(f'Image {b} has no category condition '
                                     '(not even the background).')
                upper = last_valid[b]
                kind = ('category index (0..K-1, excluding the background '
                        f'condition {upper})')
            else:
                upper = num_conds
                kind = f'region index (0..{num_conds - 1})'
                if len(label_list) > valid.sum():
                    raise ValueError(
                        f'Image {b}: {len(label_list)} visual targets but '
                        f'only {int(valid.sum())} regions.')
            for label in label_list:
                if not 0 <= label < upper or not valid[label]:
                    raise ValueError(
                        f'Image {b}: label {label} is not a valid {kind} of '
                        'a real (non-padded) condition.')
            if len(set(label_list)) != len(label_list) and (
                    cond_type == 'visual' or not self.matching):
                raise ValueError(
                    f'Image {b}: labels {label_list} repeat a condition; each '
                    f'{"region" if cond_type == "visual" else "query"} '
                    'prompts at most one target.')
        if cond_type != 'category':
            return None
        return torch.tensor(last_valid, device=cond_mask.device)

    @staticmethod
    def _prepare_cls_logits(cls_logits: Tensor, cond_type: str,
                            cond_mask: Tensor) -> Tensor:
        """Cast to fp32; for the softmax over conditions (category), also
        suppress padded conditions in case the caller did not."""
        cls_logits = cls_logits.float()
        if cond_type == 'category':
            cls_logits = cls_logits.masked_fill(~cond_mask[:, None, :],
                                                PADDED_COND_LOGIT)
        return cls_logits

    def _assign(self, cls_logits: Tensor, mask_logits: Tensor,
                gt_masks: List[Tensor], gt_labels: List[Tensor],
                cond_type: str) -> Assignment:
        """Match one output (fp32 inputs, float ``gt_masks``)."""
        assignment = []
        for b, labels in enumerate(gt_labels):
            num_gts = labels.shape[0]
            gt_inds = torch.arange(num_gts, device=labels.device)
            if not self.matching:
                query_inds = (
                    torch.zeros_like(labels)
                    if cond_type == 'sentence' else labels.clone())
                assignment.append((query_inds, gt_inds))
                continue
            if num_gts == 0:
                assignment.append((gt_inds, gt_inds))
                continue
            num_queries = mask_logits.shape[1]
            # the same uniformly random points for all queries and targets
            point_coords = torch.rand((1, self.num_points, 2),
                                      device=mask_logits.device)
            # [N, 1, h, w] -> [N, num_points]
            pred_points = point_sample(
                mask_logits[b].unsqueeze(1),
                point_coords.expand(num_queries, -1, -1)).squeeze(1)
            # [T, 1, H, W] -> [T, num_points]
            gt_points = point_sample(gt_masks[b].unsqueeze(1),
                                     point_coords.expand(num_gts, -1,
                                                         -1)).squeeze(1)
            pred_instances = InstanceData(masks=pred_points)
            if cond_type == 'category':
                pred_instances.scores = cls_logits[b]
                assigner = self.assigner
            else:
                assigner = self.mask_assigner
            assign_result = assigner.assign(
                pred_instances=pred_instances,
                gt_instances=InstanceData(labels=labels, masks=gt_points))
            query_inds = torch.nonzero(
                assign_result.gt_inds > 0, as_tuple=False).squeeze(1)
            matched_gt_inds = assign_result.gt_inds[query_inds] - 1
            order = matched_gt_inds.argsort()
            assignment.append((query_inds[order], matched_gt_inds[order]))
        return assignment

    def _loss_single(self, cls_logits: Tensor, mask_logits: Tensor,
                     gt_masks: List[Tensor], gt_labels: List[Tensor],
                     cond_type: str, cond_mask: Tensor,
                     background_inds: Optional[Tensor],
                     num_masks: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Losses of one decoder output: ``(loss_cls, loss_mask,
        loss_dice)``."""
        cls_logits = self._prepare_cls_logits(cls_logits, cond_type, cond_mask)
        mask_logits = mask_logits.float()
        with torch.no_grad():
            assignment = self._assign(cls_logits, mask_logits, gt_masks,
                                      gt_labels, cond_type)
        if cond_type == 'category':
            loss_cls = self._category_loss(cls_logits, assignment, gt_labels,
                                           background_inds)
        else:
            loss_cls = self._binary_cls_loss(cls_logits, assignment, gt_labels,
                                             cond_type, cond_mask)
        loss_mask, loss_dice = self._mask_losses(mask_logits, assignment,
                                                 gt_masks, num_masks)
        return loss_cls, loss_mask, loss_dice

    def _category_loss(self, cls_logits: Tensor, assignment: Assignment,
                       gt_labels: List[Tensor],
                       background_inds: Tensor) -> Tensor:
        """Weighted softmax CE; unmatched queries target the background."""
        num_queries = cls_logits.shape[1]
        # [B, N], background by default
        labels = background_inds[:, None].repeat(1, num_queries)
        for b, (query_inds, gt_inds) in enumerate(assignment):
            labels[b, query_inds] = gt_labels[b][gt_inds]
        weights = torch.ones_like(cls_logits[..., 0])
        weights[labels == background_inds[:, None]] = self.background_weight
        loss = cross_entropy(
            cls_logits.flatten(0, 1),
            labels.flatten(),
            weights.flatten(),
            reduction='mean',
            avg_factor=weights.sum())
        return self.loss_cls_weight * loss

    def _binary_cls_loss(self, cls_logits: Tensor, assignment: Assignment,
                         gt_labels: List[Tensor], cond_type: str,
                         cond_mask: Tensor) -> Tensor:
        """Pos-weighted BCE over the real ``(query, condition)`` entries."""
        # [B, N, K]
        targets = torch.zeros_like(cls_logits)
        for b, (query_inds, gt_inds) in enumerate(assignment):
            cond_inds = (
                torch.zeros_like(gt_inds)
                if cond_type == 'sentence' else gt_labels[b][gt_inds])
            targets[b, query_inds, cond_inds] = 1.0
        valid = cond_mask[:, None, :].expand_as(targets).float()
        num_valid = valid.sum().clamp(min=1)
        num_pos = targets.sum()
        # without positives the value is irrelevant
        pos_weight = (num_valid - num_pos) / num_pos.clamp(min=1)
        loss = F.binary_cross_entropy_with_logits(
            cls_logits,
            targets,
            weight=valid,
            pos_weight=pos_weight,
            reduction='sum') / num_valid
        return self.loss_cls_weight * loss

    def _mask_losses(self, mask_logits: Tensor, assignment: Assignment,
                     gt_masks: List[Tensor],
                     num_masks: Tensor) -> Tuple[Tensor, Tensor]:
        """Point-sampled BCE and dice of the matched pairs."""
        # [M, h, w] predictions and [M, H, W] targets of the M matched pairs
        pred_masks = torch.cat([
            mask_logits[b, query_inds]
            for b, (query_inds, _) in enumerate(assignment)
        ])
        target_masks = torch.cat([
            gt_masks[b][gt_inds] for b, (_, gt_inds) in enumerate(assignment)
        ])
        if pred_masks.shape[0] == 0:
            # no target in the batch: zero losses that still touch the graph
            zero = mask_logits.sum() * 0
            return zero, zero
        with torch.no_grad():
            # [M, num_points, 2]
            point_coords = get_uncertain_point_coords_with_randomness(
                pred_masks.unsqueeze(1), None, self.num_points,
                self.oversample_ratio, self.importance_sample_ratio)
            # [M, num_points]
            target_points = point_sample(
                target_masks.unsqueeze(1), point_coords).squeeze(1)
        # [M, num_points]
        pred_points = point_sample(pred_masks.unsqueeze(1),
                                   point_coords).squeeze(1)
        loss_dice = self.loss_dice(
            pred_points, target_points, avg_factor=num_masks)
        loss_mask = self.loss_mask(
            pred_points.reshape(-1),
            target_points.reshape(-1),
            avg_factor=num_masks * self.num_points)
        return loss_mask, loss_dice
