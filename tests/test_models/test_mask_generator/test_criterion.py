# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""PSALMCriterion: matching, per-condition class losses, mask losses."""
from typing import List, Tuple

import pytest
import torch
import torch.nn.functional as F
from mmdet.models.task_modules.assigners import ClassificationCost

from projects.psalm.models.mask_generator.criterion import PSALMCriterion
from projects.psalm.models.mask_generator.mask_generator import MaskGenerator

from ._configs import generator_cfg, make_feats

SIZE = 64  # padded input resolution of the targets


def _targets(num: int = 2, size: int = SIZE) -> torch.Tensor:
    """``num`` (<= 3) disjoint rectangles, ``[num, size, size]`` bool."""
    boxes = [(1 / 8, 1 / 2, 1 / 8, 1 / 2), (1 / 2, 7 / 8, 1 / 4, 7 / 8),
             (1 / 8, 3 / 8, 5 / 8, 7 / 8)]
    masks = torch.zeros(num, size, size, dtype=torch.bool)
    for mask, (y0, y1, x0, x1) in zip(masks, boxes):
        mask[int(y0 * size):int(y1 * size), int(x0 * size):int(x1 * size)] = 1
    return masks


def _logits_from_masks(masks: torch.Tensor,
                       value: float = 20.) -> torch.Tensor:
    """``+value`` inside, ``-value`` outside."""
    return (masks.float() * 2 - 1) * value


def _total(losses: dict) -> torch.Tensor:
    return sum(losses.values())


def _rand_outputs(num_outputs: int, batch_size: int, num_queries: int,
                  num_conds: int) -> Tuple[List[torch.Tensor], List]:
    cls = [
        torch.randn(batch_size, num_queries, num_conds)
        for _ in range(num_outputs)
    ]
    masks = [
        torch.randn(batch_size, num_queries, SIZE // 4, SIZE // 4)
        for _ in range(num_outputs)
    ]
    return cls, masks


def test_loss_keys_follow_mmdet_deep_supervision_naming() -> None:
    torch.manual_seed(0)
    cls, masks = _rand_outputs(10, 2, 4, 3)
    losses = PSALMCriterion(num_points=64)(
        cls, masks, [_targets(2), _targets(1)],
        [torch.tensor([0, 1]), torch.tensor([1])], 'category',
        torch.ones(2, 3, dtype=torch.bool))
    expected = {'loss_cls', 'loss_mask', 'loss_dice'}
    expected |= {f'd{i}.{k}' for i in range(9) for k in list(expected)}
    assert set(losses) == expected
    assert all(torch.isfinite(v) and v.dim() == 0 for v in losses.values())


def test_perfect_prediction_has_near_zero_losses() -> None:
    """Mask logits +-20 equal to the targets (same resolution) and confident
    correct classes. The bilinear point sampling blurs a 1-pixel band along
    the mask borders, which importance sampling targets, so the mask BCE is
    small but not 0 (it shrinks with the resolution)."""
    torch.manual_seed(0)
    size = 256
    gt_masks = _targets(2, size)
    num_queries, num_conds = 4, 3  # conditions: class 0, class 1, background
    masks = torch.full((1, num_queries, size, size), -20.)
    masks[0, 1] = _logits_from_masks(gt_masks[0])
    masks[0, 3] = _logits_from_masks(gt_masks[1])
    cls = torch.full((1, num_queries, num_conds), -20.)
    cls[0, :, 2] = 20.  # background
    cls[0, 1] = torch.tensor([20., -20., -20.])
    cls[0, 3] = torch.tensor([-20., 20., -20.])
    criterion = PSALMCriterion()
    args = ([gt_masks], [torch.tensor([0, 1])], 'category',
            torch.ones(1, num_conds, dtype=torch.bool))
    perfect = criterion([cls], [masks], *args)
    wrong = criterion([cls.roll(1, dims=-1)], [-masks], *args)
    assert perfect['loss_cls'] < 1e-6
    assert perfect['loss_mask'] < 0.3
    assert perfect['loss_dice'] < 0.1
    for key in perfect:
        assert perfect[key] < 0.05 * wrong[key], key


def test_matching_is_invariant_to_query_permutation() -> None:
    torch.manual_seed(0)
    cls, masks = _rand_outputs(3, 2, 6, 4)
    gt_masks = [_targets(3), _targets(2)]
    gt_labels = [torch.tensor([0, 2, 1]), torch.tensor([1, 0])]
    cond_mask = torch.ones(2, 4, dtype=torch.bool)
    criterion = PSALMCriterion(num_points=256)
    perm = torch.randperm(6)
    torch.manual_seed(1)
    losses = criterion(cls, masks, gt_masks, gt_labels, 'category', cond_mask)
    torch.manual_seed(1)
    permuted = criterion([c[:, perm] for c in cls],
                         [m[:, perm] for m in masks], gt_masks, gt_labels,
                         'category', cond_mask)
    for key in losses:
        torch.testing.assert_close(permuted[key], losses[key])
    # and the matched queries are the permuted ones
    torch.manual_seed(1)
    assignment = criterion.match(cls[-1], masks[-1], gt_masks, gt_labels,
                                 'category', cond_mask)
    torch.manual_seed(1)
    permuted_assignment = criterion.match(cls[-1][:, perm], masks[-1][:, perm],
                                          gt_masks, gt_labels, 'category',
                                          cond_mask)
    for (q, t), (pq, pt) in zip(assignment, permuted_assignment):
        assert torch.equal(t, pt)
        assert torch.equal(perm[pq], q)


def test_class_cost_is_used_for_the_category_condition_only() -> None:
    criterion = PSALMCriterion(num_points=512)
    assert any(
        isinstance(c, ClassificationCost)
        for c in criterion.assigner.match_costs)
    assert not any(
        isinstance(c, ClassificationCost)
        for c in criterion.mask_assigner.match_costs)
    assert len(criterion.mask_assigner.match_costs) == 2
    # query 0 has the better mask (+-20 vs +-5), query 1 the right class
    gt_masks = [_targets(1)]
    masks = torch.stack([
        _logits_from_masks(gt_masks[0][0], 20.),
        _logits_from_masks(gt_masks[0][0], 5.),
        -_logits_from_masks(gt_masks[0][0], 20.)
    ])[None]
    for cond_type, num_conds in (('category', 2), ('sentence', 1), ('visual',
                                                                    2)):
        cls = torch.full((1, 3, num_conds), -10.)
        cls[0, 1, 0] = 10.  # query 1 is confident about condition 0
        if cond_type == 'category':
            cls[0, [0, 2], -1] = 10.  # the others about the background
        (query_inds, gt_inds), = criterion.match(
            cls, masks, gt_masks, [torch.tensor([0])], cond_type,
            torch.ones(1, num_conds, dtype=torch.bool))
        assert gt_inds.tolist() == [0]
        assert query_inds.tolist() == ([1] if cond_type == 'category' else
                                       [0]), cond_type


def test_sentence_loss_pos_weight_and_no_target_sample() -> None:
    """B=2, N=3, K=1; one target in image 0 (best matched by query 2), none
    in image 1 (gRefCOCO no-target): pos_weight = (2*3 - 1) / 1 = 5."""
    torch.manual_seed(0)
    gt_masks = [_targets(1), torch.zeros(0, SIZE, SIZE, dtype=torch.bool)]
    masks = torch.full((2, 3, SIZE, SIZE), -20.)
    masks[0, 2] = _logits_from_masks(gt_masks[0][0])
    cls = torch.randn(2, 3, 1)
    criterion = PSALMCriterion(num_points=256)
    losses = criterion([cls], [masks], gt_masks,
                       [torch.tensor([0]),
                        torch.zeros(0, dtype=torch.long)], 'sentence',
                       torch.ones(2, 1, dtype=torch.bool))
    target = torch.zeros(2, 3, 1)
    target[0, 2, 0] = 1
    per_entry = 5 * target * F.softplus(-cls) + (1 - target) * F.softplus(cls)
    torch.testing.assert_close(losses['loss_cls'], 2.0 * per_entry.mean())
    # the target is matched to query 2 (any other query: dice loss ~5)
    assert losses['loss_dice'] < 1.0


def test_visual_loss_counts_only_real_regions() -> None:
    """Image 0 has 3 regions/targets, image 1 has 1 region (2 padded)."""
    torch.manual_seed(0)
    gt_masks = [_targets(3), _targets(1)]
    gt_labels = [torch.tensor([2, 0, 1]), torch.tensor([0])]
    cond_mask = torch.tensor([[True, True, True], [True, False, False]])
    masks = torch.full((2, 4, SIZE, SIZE), -20.)
    for q, t in zip([3, 0, 1], range(3)):  # target t best matches query q
        masks[0, q] = _logits_from_masks(gt_masks[0][t])
    masks[1, 2] = _logits_from_masks(gt_masks[1][0])
    cls = torch.randn(2, 4, 3)
    criterion = PSALMCriterion(num_points=256)
    losses = criterion([cls], [masks], gt_masks, gt_labels, 'visual',
                       cond_mask)
    target = torch.zeros(2, 4, 3)
    target[0, 3, 2] = target[0, 0, 0] = target[0, 1, 1] = 1
    target[1, 2, 0] = 1
    valid = cond_mask[:, None, :].expand_as(target)
    pos_weight = (valid.sum() - 4) / 4  # (12 + 4 - 4) / 4
    per_entry = pos_weight * target * F.softplus(-cls) + (
        1 - target) * F.softplus(cls)
    torch.testing.assert_close(losses['loss_cls'],
                               2.0 * per_entry[valid].mean())
    # logits of padded regions do not matter
    cls_changed = cls.clone()
    cls_changed[1, :, 1:] = 1e3
    changed = criterion([cls_changed], [masks], gt_masks, gt_labels, 'visual',
                        cond_mask)
    torch.testing.assert_close(changed['loss_cls'], losses['loss_cls'])


def test_category_loss_background_weight() -> None:
    """Hand-computed weighted CE: matched queries weight 1, the others
    target the background (last real condition) with weight 0.1."""
    torch.manual_seed(0)
    gt_masks = [_targets(1), _targets(2)]
    gt_labels = [torch.tensor([1]), torch.tensor([0, 2])]
    # image 0: 3 real conditions (bg = 2) + 1 padded; image 1: bg = 3
    cond_mask = torch.tensor([[True, True, True, False], [True] * 4])
    masks = torch.full((2, 3, SIZE, SIZE), -20.)
    masks[0, 0] = _logits_from_masks(gt_masks[0][0])
    masks[1, 2] = _logits_from_masks(gt_masks[1][0])
    masks[1, 1] = _logits_from_masks(gt_masks[1][1])
    cls = torch.randn(2, 3, 4)
    losses = PSALMCriterion(num_points=256)([cls], [masks], gt_masks,
                                            gt_labels, 'category', cond_mask)
    labels = torch.tensor([[1, 2, 2], [3, 2, 0]])
    weights = torch.tensor([[1, .1, .1], [.1, 1, 1]])
    masked = cls.masked_fill(~cond_mask[:, None], -1e4)
    ce = F.cross_entropy(
        masked.flatten(0, 1), labels.flatten(), reduction='none')
    expected = 2.0 * (ce * weights.flatten()).sum() / weights.sum()
    torch.testing.assert_close(losses['loss_cls'], expected)


def test_batch_without_targets_gives_finite_losses_on_the_graph() -> None:
    empty_masks = [torch.zeros(0, SIZE, SIZE, dtype=torch.bool)] * 2
    empty_labels = [torch.zeros(0, dtype=torch.long)] * 2
    for cond_type, num_conds in (('category', 3), ('sentence', 1), ('visual',
                                                                    2)):
        cls, masks = _rand_outputs(2, 2, 4, num_conds)
        for t in cls + masks:
            t.requires_grad_()
        losses = PSALMCriterion(num_points=64)(cls, masks, empty_masks,
                                               empty_labels, cond_type,
                                               torch.ones(
                                                   2,
                                                   num_conds,
                                                   dtype=torch.bool))
        assert all(torch.isfinite(v) for v in losses.values())
        assert losses['loss_mask'] == 0 and losses['loss_dice'] == 0
        assert losses['loss_cls'] > 0  # only negatives
        _total(losses).backward()
        assert all(m.grad is not None for m in masks)
        assert all(c.grad.abs().sum() > 0 for c in cls)


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_half_precision_logits_with_padding_give_finite_losses(
        dtype: torch.dtype) -> None:
    """Padded conditions carry the finite -1e4 logit of the generator."""
    torch.manual_seed(0)
    cond_mask = torch.tensor([[True, True, True, True],
                              [True, True, False, False]])
    for cond_type, labels in (('category', [[0, 2], [0]]), ('visual', [[3, 1],
                                                                       [0]])):
        cls, masks = _rand_outputs(2, 2, 4, 4)
        cls = [c.masked_fill(~cond_mask[:, None], -1e4).to(dtype) for c in cls]
        losses = PSALMCriterion(num_points=64)(
            cls, [m.to(dtype)
                  for m in masks], [_targets(2), _targets(1)],
            [torch.tensor(x) for x in labels], cond_type, cond_mask)
        for value in losses.values():
            assert value.dtype == torch.float32
            assert torch.isfinite(value)


def test_without_matching_query_k_predicts_condition_k() -> None:
    torch.manual_seed(0)
    gt_masks = [_targets(2)]
    gt_labels = [torch.tensor([1, 0])]
    cond_mask = torch.ones(1, 3, dtype=torch.bool)
    # query 0 draws target 0 (label 1), query 1 draws target 1 (label 0)
    masks = torch.full((1, 3, SIZE, SIZE), -20.)
    masks[0, 0] = _logits_from_masks(gt_masks[0][0])
    masks[0, 1] = _logits_from_masks(gt_masks[0][1])
    cls = torch.randn(1, 3, 3)
    fixed = PSALMCriterion(num_points=256, matching=False)
    matched = PSALMCriterion(num_points=256)
    (query_inds, gt_inds), = fixed.match(cls, masks, gt_masks, gt_labels,
                                         'category', cond_mask)
    assert query_inds.tolist() == [1, 0] and gt_inds.tolist() == [0, 1]
    (query_inds, _), = matched.match(cls, masks, gt_masks, gt_labels,
                                     'category', cond_mask)
    assert query_inds.tolist() == [0, 1]
    args = ([cls], [masks], gt_masks, gt_labels, 'category', cond_mask)
    # fixed pairs swap the two disjoint masks: dice ~1 per mask, weight 5
    assert fixed(*args)['loss_dice'] > 4.0
    assert matched(*args)['loss_dice'] < 1.0
    with pytest.raises(ValueError, match='must equal K'):
        fixed([torch.randn(1, 4, 3)], [torch.randn(1, 4, 16, 16)], gt_masks,
              gt_labels, 'category', cond_mask)


@pytest.mark.parametrize('cond_type', ['category', 'sentence', 'visual'])
def test_optimisation_drives_the_loss_down(cond_type: str) -> None:
    """30 Adam steps on free logits (2 outputs, deep supervision)."""
    torch.manual_seed(0)
    num_conds = 1 if cond_type == 'sentence' else 3
    gt_masks = [_targets(2)]
    gt_labels = [torch.tensor([0, 1])]
    cond_mask = torch.ones(1, num_conds, dtype=torch.bool)
    cls = torch.randn(1, 5, num_conds, requires_grad=True)
    masks = torch.randn(1, 5, SIZE // 4, SIZE // 4, requires_grad=True)
    criterion = PSALMCriterion(num_points=1024)
    optimizer = torch.optim.Adam([cls, masks], lr=0.5)
    history = []
    for _ in range(30):
        loss = _total(
            criterion([cls, 2 * cls], [masks, 2 * masks], gt_masks, gt_labels,
                      cond_type, cond_mask))
        history.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert history[-1] < history[0] / 5


def test_optimising_the_generator_and_its_queries_drives_the_loss_down(
) -> None:
    """15 Adam steps on the queries, conditions and weights of a tiny
    MaskGenerator (2 decoder layers, 3 outputs) through the criterion."""
    torch.manual_seed(0)
    generator = MaskGenerator(**generator_cfg(num_layers=2))
    generator.init_weights()
    feats = make_feats(batch_size=1, size=SIZE)
    queries = torch.randn(1, 6, 32, requires_grad=True)
    cond_embeds = torch.randn(1, 3, 32, requires_grad=True)
    cond_mask = torch.ones(1, 3, dtype=torch.bool)
    criterion = PSALMCriterion(num_points=512)
    optimizer = torch.optim.Adam(
        [queries, cond_embeds, *generator.parameters()], lr=5e-3)
    history = []
    for _ in range(15):
        all_cls, all_masks = generator(feats, queries, cond_embeds, cond_mask,
                                       'category')
        loss = _total(
            criterion(all_cls, all_masks, [_targets(2)],
                      [torch.tensor([0, 1])], 'category', cond_mask))
        history.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert history[-1] < history[0] / 4


def test_inconsistent_inputs_raise() -> None:
    criterion = PSALMCriterion(num_points=64)
    cls, masks = _rand_outputs(1, 1, 4, 3)
    cond_mask = torch.ones(1, 3, dtype=torch.bool)
    gt_masks = [_targets(2)]
    cases = [
        # category labels must be < K and not the background (K - 1)
        (cls, gt_masks, [torch.tensor([0, 3])], 'category', cond_mask,
         'not a valid category'),
        (cls, gt_masks, [torch.tensor([0, 2])], 'category', cond_mask,
         'excluding the background'),
        # visual: more targets than regions / repeated region / padded region
        (cls, [_targets(3)], [torch.tensor([0, 1, 2])], 'visual',
         torch.tensor([[True, True, False]]), 'only 2 regions'),
        (cls, gt_masks, [torch.tensor([1, 1])], 'visual', cond_mask,
         'repeat a condition'),
        (cls, gt_masks, [torch.tensor([0, 2])], 'visual',
         torch.tensor([[True, True, False]]), 'non-padded'),
        # sentence needs K == 1
        (cls, gt_masks, [torch.tensor([0,
                                       0])], 'sentence', cond_mask, 'K == 1'),
        # masks / labels disagree
        (cls, gt_masks, [torch.tensor([0])], 'category', cond_mask, 'same T'),
        (cls, gt_masks * 2, [torch.tensor([0, 1])] * 2, 'category', cond_mask,
         'Expected 1'),
        (cls, gt_masks, [torch.tensor([0, 1])], 'panoptic', cond_mask,
         'cond_type'),
    ]
    for cls_, gt_masks_, gt_labels, cond_type, cond_mask_, message in cases:
        with pytest.raises(ValueError, match=message):
            criterion(cls_, masks, gt_masks_, gt_labels, cond_type, cond_mask_)
