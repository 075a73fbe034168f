# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Draw a packed PSALM sample (pipeline output) for dataset browsing.

Shape legend: h, w = size of the (resized, unpadded) input image; K = GT
masks / visual prompts.

The picture (BGR) has one or two image panels side by side and a text panel
below them:

* the input image with the GT masks (``gt_instances.masks``) blended in, one
  palette colour per target (alpha 0.5);
* only when the sample has visual prompts (``prompt_masks``): the input image
  again with the prompts filled with the solid colour :data:`PROMPT_COLOR`
  and outlined (1 px, on the prompt's own border) in the colour of their
  target, so that a prompt and its target share a colour; a separate panel
  keeps large box / mask prompts from hiding the targets;
* the white text panel with the prompt: the task, then the class names,
  sentences, question / answer or the region types.
"""
from typing import List, Sequence

import cv2
import numpy as np
import torch
from torch import Tensor

from mmdet.structures import DetDataSample

#: BGR fill colour of the visual prompts (pure magenta).
PROMPT_COLOR = (255, 0, 255)
#: BGR colours of the GT masks and prompt outlines (none is
#: :data:`PROMPT_COLOR`).
PALETTE = ((0, 200, 255), (255, 160, 0), (80, 255, 80), (255, 255, 64),
           (64, 64, 255), (200, 128, 255), (255, 96, 128), (128, 255, 255),
           (0, 128, 128), (160, 96, 0), (96, 160, 96), (200, 200, 200))

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_FONT_SCALE = 0.45
_LINE_HEIGHT = 18


def _as_bool_array(masks) -> np.ndarray:
    """BitmapMasks / Tensor / array -> (K, h, w) bool array."""
    if hasattr(masks, 'to_ndarray'):
        masks = masks.to_ndarray()
    elif isinstance(masks, Tensor):
        masks = masks.detach().cpu().numpy()
    return np.asarray(masks).astype(bool)


def prompt_lines(metainfo: dict) -> List[str]:
    """The prompt text of a sample, one str per item.

    Args:
        metainfo (dict): The data sample's metainfo (``prompt``,
            ``prompt_type``).

    Returns:
        list[str]: e.g. ``['task: interactive', 'regions: 0 point, 1 box']``
        (long lines are wrapped when drawn).
    """
    prompt = metainfo.get('prompt', {})
    lines = [f'task: {prompt.get("task")}']
    if prompt.get('class_names'):
        lines.append('classes: ' + ', '.join(prompt['class_names']))
    for sentence in prompt.get('sentences', ()):
        lines.append(f'sentence: {sentence}')
    for turn in prompt.get('conversations', ())[:2]:
        role = 'question' if turn.get('from') == 'human' else 'answer'
        lines.append(f'{role}: {turn.get("value", "")}')
    prompt_type = metainfo.get('prompt_type')
    if prompt_type is not None:
        lines.append('regions: ' + ', '.join(
            f'{k} {t}' for k, t in enumerate(prompt_type)))
    return lines


def _wrap(text: str, width: int) -> List[str]:
    """Split ``text`` into lines that fit ``width`` pixels."""
    lines, line = [], ''
    for word in text.replace('\n', ' ').split(' '):
        candidate = f'{line} {word}'.strip()
        fits = cv2.getTextSize(candidate, _FONT, _FONT_SCALE, 1)[0][0] < width
        if line and not fits:
            lines.append(line)
            line = word
        else:
            line = candidate
    return lines + [line]


def draw_text_panel(lines: Sequence[str], width: int) -> np.ndarray:
    """A white panel with the lines wrapped to ``width`` pixels.

    Args:
        lines (Sequence[str]): Text lines.
        width (int): Panel width in pixels.

    Returns:
        np.ndarray: (panel height, width, 3) uint8 BGR.
    """
    wrapped = [part for line in lines for part in _wrap(line, width - 8)]
    panel = np.full((_LINE_HEIGHT * len(wrapped) + 6, width, 3), 255,
                    dtype=np.uint8)
    for i, line in enumerate(wrapped):
        cv2.putText(panel, line, (4, _LINE_HEIGHT * (i + 1)), _FONT,
                    _FONT_SCALE, (0, 0, 0), 1, cv2.LINE_AA)
    return panel


def draw_psalm_sample(inputs: Tensor, data_sample: DetDataSample,
                      alpha: float = 0.5) -> np.ndarray:
    """Draw one packed sample: GT masks, visual prompts, prompt text.

    Args:
        inputs (Tensor): (3, h, w) uint8 BGR image (``PackPSALMInputs``).
        data_sample (DetDataSample): Its data sample; ``gt_instances``
            (masks (K, h, w)) and ``prompt_masks`` ((K, h, w) bool) are drawn
            when present.
        alpha (float): Opacity of the GT masks.

    Returns:
        np.ndarray: (h + text height, w, 3) uint8 BGR picture, or
        (h + text height, 2 * w, 3) with visual prompts (GT left, prompts
        right).

    Raises:
        TypeError: If ``inputs`` is not a (3, h, w) uint8 tensor.
        ValueError: If masks do not have the image size.
    """
    if (not isinstance(inputs, Tensor) or inputs.dtype != torch.uint8
            or inputs.ndim != 3 or inputs.shape[0] != 3):
        raise TypeError('expected the (3, h, w) uint8 image tensor of '
                        'PackPSALMInputs, got '
                        f'{getattr(inputs, "shape", type(inputs))}')
    # shape (3, h, w) -> (h, w, 3)
    image = inputs.permute(1, 2, 0).cpu().numpy().astype(np.float32)
    height, width = image.shape[:2]
    name = data_sample.metainfo.get('img_path', 'sample')
    gt_masks = np.zeros((0, height, width), dtype=bool)
    if 'gt_instances' in data_sample and 'masks' in data_sample.gt_instances:
        gt_masks = _as_bool_array(data_sample.gt_instances.masks)
    prompt_masks = np.zeros((0, height, width), dtype=bool)
    if 'prompt_masks' in data_sample:
        prompt_masks = _as_bool_array(data_sample.prompt_masks)
    for kind, masks in (('GT masks', gt_masks), ('prompt masks',
                                                 prompt_masks)):
        if masks.shape[1:] != (height, width):
            raise ValueError(f'{name}: {kind} are {masks.shape[1:]} but the '
                             f'image is {(height, width)}')
    for k, mask in enumerate(gt_masks):
        color = np.array(PALETTE[k % len(PALETTE)], dtype=np.float32)
        image[mask] = (1 - alpha) * image[mask] + alpha * color
    panels = [np.round(image).astype(np.uint8)]
    if len(prompt_masks):
        # shape (3, h, w) -> (h, w, 3), contiguous for cv2
        canvas = np.ascontiguousarray(inputs.permute(1, 2, 0).cpu().numpy())
        for mask in prompt_masks:
            canvas[mask] = PROMPT_COLOR
        for k, mask in enumerate(prompt_masks):
            contours, _ = cv2.findContours(
                mask.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(canvas, contours, -1, PALETTE[k % len(PALETTE)],
                             1)
        panels.append(canvas)
    # shape P x (h, w, 3) -> (h, P * w, 3)
    picture = np.concatenate(panels, axis=1)
    text = draw_text_panel(
        prompt_lines(data_sample.metainfo), picture.shape[1])
    return np.concatenate([picture, text], axis=0)
