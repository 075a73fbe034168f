# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Known-answer tests of the PSALM inference post-processing."""
import math
from typing import List, Tuple

import pytest
import torch
from mmdet.evaluation.functional import INSTANCE_OFFSET

from projects.psalm.models.inference import postprocess
from projects.psalm.models.inference.postprocess import (
    category_inference, gres_inference, referring_inference,
    resize_mask_logits, unique_visual_prompt_inference,
    visual_prompt_inference)

IN, OUT = 5.0, -5.0  # mask logits inside / outside a hand-drawn mask
# no resizing at all: mask logits already at the original resolution
SAME_8x8 = ((8, 8), (8, 8), (8, 8))
SAME_8x12 = ((8, 12), (8, 12), (8, 12))
# 4x4 logits for a 16x16 padded input whose top half is the image, shown
# at 4x8
PADDED = ((16, 16), (8, 16), (4, 8))


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def softmax_max(logit: float, num_conditions: int) -> float:
    """Probability of one logit against ``num_conditions - 1`` zeros."""
    return math.exp(logit) / (math.exp(logit) + num_conditions - 1)


def block_masks(shape: Tuple[int, int],
                blocks: List[Tuple[int, int, int, int]]) -> torch.Tensor:
    """Mask logits IN on rows [r0, r1) x cols [c0, c1), OUT elsewhere."""
    masks = torch.full((len(blocks), *shape), OUT)
    for q, (r0, r1, c0, c1) in enumerate(blocks):
        masks[q, r0:r1, c0:c1] = IN
    return masks


# ---------------------------------------------------------------- category
# classes: 0 person (thing), 1 sky (stuff), 2 dog (thing), 3 background
IS_THING = [True, False, True]
VOID = 3
CLS_LOGITS = torch.tensor([
    [10., 0., 0., 0.],  # q0 person
    [0., 9., 0., 0.],  # q1 sky, left half
    [0., 8., 0., 0.],  # q2 sky, right half (same class: merged)
    [0., 0., 0., 10.],  # q3 background
    [0., 0., 1., 0.],  # q4 dog with a low score (0.475)
    [0., 0., 3., 0.],  # q5 dog (0.870), mostly hidden by q0
    [0., 0., 9.5, 0.],  # q6 dog
])
MASK_LOGITS = block_masks(
    (8, 12),
    [
        (0, 4, 0, 4),  # q0
        (4, 8, 0, 4),  # q1
        (4, 8, 4, 8),  # q2
        (0, 4, 4, 8),  # q3
        (0, 4, 4, 8),  # q4
        (0, 4, 0, 6),  # q5
        (0, 8, 8, 12),  # q6
    ])


def expected_pan_seg(with_low_score_pixels: bool = False) -> torch.Tensor:
    pan_seg = torch.full((8, 12), VOID, dtype=torch.long)
    pan_seg[0:4, 0:4] = 0 + 1 * INSTANCE_OFFSET  # person, instance 1
    pan_seg[4:8, 0:8] = 1  # sky: both queries merged, instance id 0
    pan_seg[:, 8:12] = 2 + 2 * INSTANCE_OFFSET  # dog, instance 2
    if with_low_score_pixels:
        # pixels no kept query covers go to the best-scoring query (q0)
        pan_seg[0:4, 6:8] = 0 + 1 * INSTANCE_OFFSET
    return pan_seg


def test_panoptic_known_answer():
    results = category_inference(
        CLS_LOGITS,
        MASK_LOGITS,
        *SAME_8x12,
        is_thing=IS_THING,
        instance=False,
        semantic=False)
    assert set(results) == {'pan_seg'}
    pan_seg = results['pan_seg']
    assert pan_seg.dtype == torch.long
    # q3 (background) and q4 (score <= 0.8) are dropped; q5 only wins
    # 8 of its 24 pixels (< 0.8) and is dropped: its pixels become void
    assert torch.equal(pan_seg, expected_pan_seg())
    assert set(pan_seg.unique().tolist()) == {1, VOID, 1000, 2002}


def test_panoptic_without_low_score_filter():
    pan_seg = category_inference(
        CLS_LOGITS,
        MASK_LOGITS,
        *SAME_8x12,
        is_thing=IS_THING,
        instance=False,
        semantic=False,
        filter_low_score=False)['pan_seg']
    assert torch.equal(pan_seg, expected_pan_seg(with_low_score_pixels=True))


def test_panoptic_nothing_kept_is_void():
    cls_logits = torch.zeros(2, 4)
    cls_logits[:, -1] = 10.  # every query says background
    pan_seg = category_inference(
        cls_logits,
        MASK_LOGITS[:2],
        *SAME_8x12,
        is_thing=IS_THING,
        instance=False,
        semantic=False)['pan_seg']
    assert torch.equal(pan_seg, torch.full((8, 12), VOID, dtype=torch.long))


def test_instance_topk_order_and_scores():
    instances = category_inference(
        CLS_LOGITS,
        MASK_LOGITS,
        *SAME_8x12,
        max_per_image=3,
        panoptic=False,
        semantic=False)['instances']
    # the 3 best (query, class) pairs: q0/person, q6/dog, q1/sky
    assert instances.labels.tolist() == [0, 2, 1]
    expected_scores = [
        softmax_max(logit, 4) * sigmoid(IN) for logit in (10., 9.5, 9.)
    ]
    assert instances.scores.tolist() == pytest.approx(expected_scores)
    assert instances.masks.dtype == torch.bool
    assert torch.equal(instances.masks, MASK_LOGITS[[0, 6, 1]] > 0)
    assert instances.bboxes.tolist() == [[0., 0., 4., 4.], [8., 0., 12., 8.],
                                         [0., 4., 4., 8.]]


def test_instance_keeps_things_only_in_panoptic_mode():
    instances = category_inference(
        CLS_LOGITS,
        MASK_LOGITS,
        *SAME_8x12,
        is_thing=IS_THING,
        max_per_image=5,
        semantic=False)['instances']
    # top-5: q0/person, q6/dog, q1/sky, q2/sky, q5/dog -> things only
    assert instances.labels.tolist() == [0, 2, 2]
    expected_scores = [
        softmax_max(logit, 4) * sigmoid(IN) for logit in (10., 9.5, 3.)
    ]
    assert instances.scores.tolist() == pytest.approx(expected_scores)
    assert torch.equal(instances.masks, MASK_LOGITS[[0, 6, 5]] > 0)


def test_semantic_scores_and_argmax():
    sem_seg = category_inference(
        CLS_LOGITS, MASK_LOGITS, *SAME_8x12, panoptic=False,
        instance=False)['sem_seg']
    assert sem_seg.shape == (3, 8, 12)
    class_map = torch.empty(8, 12, dtype=torch.long)
    class_map[0:4, 0:4] = 0  # person
    class_map[0:4, 4:8] = 2  # dog (q4 and q5; q3 is background)
    class_map[4:8, 0:8] = 1  # sky
    class_map[:, 8:12] = 2  # dog (q6)
    assert torch.equal(sem_seg.argmax(0), class_map)
    # one pixel by hand: sum over queries of p(class) * sigmoid(mask)
    probs = CLS_LOGITS.softmax(-1)
    for c in range(3):
        expected = sum(
            float(probs[q, c]) * sigmoid(float(MASK_LOGITS[q, 0, 5]))
            for q in range(7))
        assert float(sem_seg[c, 0, 5]) == pytest.approx(expected)


def test_category_outputs_at_original_size():
    torch.manual_seed(0)
    cls_logits = torch.randn(20, 6) * 4
    cls_logits[:3, 0] = 20.  # a few confident things
    mask_logits = torch.randn(20, 64, 64)
    results = category_inference(
        cls_logits,
        mask_logits, (256, 256), (192, 256), (150, 200),
        is_thing=[True, True, False, False, True],
        max_per_image=10)
    assert results['pan_seg'].shape == (150, 200)
    assert results['sem_seg'].shape == (5, 150, 200)
    instances = results['instances']
    assert instances.masks.shape[1:] == (150, 200)
    assert len(instances) <= 10
    assert set(instances.labels.tolist()) <= {0, 1, 4}
    # every panoptic value decodes to a real class or void
    labels = results['pan_seg'] % INSTANCE_OFFSET
    assert set(labels.unique().tolist()) <= {0, 1, 2, 3, 4, 5}


def test_category_resizes_only_needed_queries(monkeypatch):
    resized = []

    def counting_resize(mask_logits, *args):
        resized.append(mask_logits.shape[0])
        return resize_mask_logits(mask_logits, *args)

    monkeypatch.setattr(postprocess, 'resize_mask_logits', counting_resize)
    category_inference(
        CLS_LOGITS,
        MASK_LOGITS,
        *SAME_8x12,
        is_thing=IS_THING,
        instance=False,
        semantic=False)
    assert resized == [5]  # q0, q1, q2, q5, q6
    category_inference(CLS_LOGITS, MASK_LOGITS, *SAME_8x12, is_thing=IS_THING)
    assert resized[-1] == 7  # semantic needs every query
    referring_inference(CLS_LOGITS[:, :1], MASK_LOGITS, *SAME_8x12)
    assert resized[-1] == 1


@pytest.mark.parametrize(
    'kwargs',
    [
        dict(is_thing=IS_THING, mask_logits=MASK_LOGITS[:3]),  # N mismatch
        dict(is_thing=[True, False]),  # is_thing of the wrong length
        dict(is_thing=None),  # panoptic without thing flags
    ])
def test_category_rejects_inconsistent_inputs(kwargs):
    mask_logits = kwargs.pop('mask_logits', MASK_LOGITS)
    with pytest.raises(ValueError):
        category_inference(CLS_LOGITS, mask_logits, *SAME_8x12, **kwargs)


# ------------------------------------------------------------------ resize
def test_resize_crops_padding_before_resizing():
    mask_logits = torch.full((2, 4, 4), -10.)
    mask_logits[0, 2:] = 10.  # q0: only in the padded bottom half
    mask_logits[1, :2] = 10.  # q1: only in the image
    resized = resize_mask_logits(mask_logits, *PADDED)
    assert resized.shape == (2, 4, 8)
    # hand-computed bilinear values per output row (constant along width)
    assert resized[0, :, 0].tolist() == pytest.approx([-10, -10, -10, -5])
    assert resized[1, :, 0].tolist() == pytest.approx([10, 10, 10, 5])
    assert not (resized[0] > 0).any()  # the padded mask disappears
    assert (resized[1] > 0).all()


def test_resize_rejects_image_larger_than_padding():
    with pytest.raises(ValueError):
        resize_mask_logits(torch.zeros(1, 4, 4), (16, 16), (20, 16), (4, 4))


# --------------------------------------------------------------- referring
def test_referring_uses_class_and_mask_score():
    cls_logits = torch.tensor([[2.], [3.], [-1.]])
    mask_logits = torch.full((3, 8, 8), OUT)
    mask_logits[0, :4] = 6.  # confident mask
    mask_logits[1, 4:] = 0.5  # higher sentence logit but a weak mask
    mask_logits[2, :, :4] = IN
    mask, score = referring_inference(cls_logits, mask_logits, *SAME_8x8)
    assert torch.equal(mask, mask_logits[0] > 0)
    assert score == pytest.approx(sigmoid(2.) * sigmoid(6.))


def test_referring_mask_score_ignores_padding():
    cls_logits = torch.tensor([[1.], [1.]])
    mask_logits = torch.empty(2, 4, 4)
    mask_logits[0, :2], mask_logits[0, 2:] = 2., 10.  # strong in padding
    mask_logits[1, :2], mask_logits[1, 2:] = 2.5, -10.
    mask, score = referring_inference(cls_logits, mask_logits, *PADDED)
    assert score == pytest.approx(sigmoid(1.) * sigmoid(2.5))
    assert mask.shape == (4, 8)
    # q1 after resizing: rows 0-2 at 2.5, row 3 at -0.625
    assert mask[:3].all() and not mask[3].any()


# ---------------------------------------------------------- generalized ref
GRES_CLS = torch.tensor([[3.], [2.], [-1.], [0.2]])
GRES_MASKS = block_masks((8, 8), [(0, 4, 0, 8), (4, 6, 0, 8), (6, 8, 0, 8),
                                  (0, 8, 0, 2)])


def test_gres_union_above_threshold():
    mask, scores = gres_inference(GRES_CLS, GRES_MASKS, *SAME_8x8)
    expected_scores = [sigmoid(x) * sigmoid(IN) for x in (3., 2., -1., .2)]
    assert scores.tolist() == pytest.approx(expected_scores)
    # q0 (0.946) and q1 (0.875) pass 0.6, q2 (0.267) and q3 (0.546) do not
    expected = torch.zeros(8, 8, dtype=torch.bool)
    expected[:6] = True
    assert torch.equal(mask, expected)


def test_gres_no_target_and_official_fallback():
    cls_logits = torch.tensor([[-3.], [-2.], [-4.], [-3.]])
    mask, scores = gres_inference(cls_logits, GRES_MASKS, *SAME_8x8)
    assert float(scores.max()) < 0.6
    assert mask.shape == (8, 8) and not mask.any()
    mask, _ = gres_inference(
        cls_logits, GRES_MASKS, *SAME_8x8, fallback_top1=True)
    assert torch.equal(mask, GRES_MASKS[1] > 0)


def test_referring_rejects_several_conditions():
    with pytest.raises(ValueError):
        referring_inference(torch.zeros(4, 2), GRES_MASKS, *SAME_8x8)
    with pytest.raises(ValueError):
        gres_inference(torch.zeros(4, 2), GRES_MASKS, *SAME_8x8)


# ------------------------------------------------------------ visual prompt
VP_CLS = torch.tensor([
    [4., 3.9, -1.],  # q0
    [1., 3.5, 2.],  # q1
    [-2., -2., 6.],  # q2: best logit for region 2 but a weak mask
])
VP_MASKS = torch.full((3, 8, 8), OUT)
VP_MASKS[0, :4] = IN
VP_MASKS[1, 4:] = IN
VP_MASKS[2] = 0.5


def test_visual_prompt_top1_per_region():
    masks, scores, query_index = visual_prompt_inference(
        VP_CLS, VP_MASKS, *SAME_8x8)
    # regions 0 and 1 share q0; region 2 prefers q1 because of q2's mask
    assert query_index.tolist() == [0, 0, 1]
    expected_scores = [
        sigmoid(4.) * sigmoid(IN),
        sigmoid(3.9) * sigmoid(IN),
        sigmoid(2.) * sigmoid(IN)
    ]
    assert scores.tolist() == pytest.approx(expected_scores)
    assert masks.shape == (3, 8, 8)
    assert torch.equal(masks, VP_MASKS[[0, 0, 1]] > 0)


def test_unique_visual_prompt_avoids_taken_queries():
    masks, scores, query_index = unique_visual_prompt_inference(
        VP_CLS, VP_MASKS, *SAME_8x8)
    # region 1 cannot reuse q0 -> q1; region 2 cannot reuse q1 -> q2
    assert query_index.tolist() == [0, 1, 2]
    expected_scores = [
        sigmoid(4.) * sigmoid(IN),
        sigmoid(3.5) * sigmoid(IN),
        sigmoid(6.) * sigmoid(0.5)
    ]
    assert scores.tolist() == pytest.approx(expected_scores)
    assert torch.equal(masks, VP_MASKS > 0)


def test_unique_visual_prompt_falls_back_to_top1():
    _, _, query_index = unique_visual_prompt_inference(
        VP_CLS[:, :2], VP_MASKS, *SAME_8x8, topk=1)
    assert query_index.tolist() == [0, 0]


def test_visual_prompt_cond_mask_drops_padded_regions():
    cond_mask = torch.tensor([True, False, True])
    _, scores, query_index = visual_prompt_inference(
        VP_CLS, VP_MASKS, *SAME_8x8, cond_mask=cond_mask)
    assert query_index.tolist() == [0, 1]
    assert scores.shape == (2, )
    _, _, query_index = unique_visual_prompt_inference(
        VP_CLS, VP_MASKS, *SAME_8x8, cond_mask=cond_mask)
    assert query_index.tolist() == [0, 1]
    with pytest.raises(ValueError):
        visual_prompt_inference(
            VP_CLS, VP_MASKS, *SAME_8x8, cond_mask=torch.ones(2).bool())
