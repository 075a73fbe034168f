# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Draw predictions on an image (inferencer and demo).

Shape legend: H, W = image size; N = predicted masks; K = visual prompts.

Every function takes a ``(H, W, 3)`` uint8 image in any channel order
(colours are triplets in that order) and returns a new image of the same
size; the input is never modified.
"""
from typing import Optional, Sequence, Tuple

import cv2
import numpy as np

# the font and text wrapping of the browse panel, shared
from .browse import (_FONT, _FONT_SCALE, _LINE_HEIGHT, PALETTE, PROMPT_COLOR,
                     _wrap)

__all__ = ['draw_masks', 'draw_prompt_outlines', 'draw_answer']


def _check_image(image: np.ndarray) -> None:
    if (not isinstance(image, np.ndarray) or image.dtype != np.uint8
            or image.ndim != 3 or image.shape[-1] != 3):
        raise TypeError('expected a (H, W, 3) uint8 image, got '
                        f'{getattr(image, "shape", type(image))}')


def _check_masks(masks: np.ndarray, image: np.ndarray, name: str) -> None:
    if masks.ndim != 3 or masks.shape[1:] != image.shape[:2]:
        raise ValueError(f'{name} must be (N, H, W) with the image size '
                         f'{image.shape[:2]}, got shape {masks.shape}')


def _put_label(canvas: np.ndarray, text: str, origin: Tuple[int, int],
               color: Sequence[int]) -> None:
    """A label on a filled box of ``color``, kept inside the image."""
    (width, height), baseline = cv2.getTextSize(text, _FONT, _FONT_SCALE, 1)
    x = int(np.clip(origin[0], 0, max(canvas.shape[1] - width - 2, 0)))
    y = int(np.clip(origin[1], height + baseline, canvas.shape[0] - 1))
    cv2.rectangle(canvas, (x, y - height - baseline), (x + width + 2, y),
                  tuple(int(c) for c in color), thickness=-1)
    text_color = (0, 0, 0) if np.mean(color) > 127 else (255, 255, 255)
    cv2.putText(canvas, text, (x + 1, y - baseline), _FONT, _FONT_SCALE,
                text_color, 1, cv2.LINE_AA)


def draw_masks(image: np.ndarray,
               masks: np.ndarray,
               labels: Optional[Sequence[str]] = None,
               alpha: float = 0.5) -> np.ndarray:
    """Blend masks into an image, outline them and write their labels.

    Args:
        image (np.ndarray): ``(H, W, 3)`` uint8 image.
        masks (np.ndarray): ``(N, H, W)`` bool masks; mask ``i`` gets palette
            colour ``i``.
        labels (Sequence[str], optional): N texts (e.g. ``'dog 0.87'``),
            written at the top-left corner of each non-empty mask.
        alpha (float): Opacity of the mask colours.

    Returns:
        np.ndarray: ``(H, W, 3)`` uint8 picture.
    """
    _check_image(image)
    masks = np.asarray(masks).astype(bool)
    _check_masks(masks, image, 'masks')
    if labels is not None and len(labels) != len(masks):
        raise ValueError(f'{len(labels)} labels for {len(masks)} masks')
    blended = image.astype(np.float32)
    for i, mask in enumerate(masks):
        color = np.array(PALETTE[i % len(PALETTE)], dtype=np.float32)
        blended[mask] = (1 - alpha) * blended[mask] + alpha * color
    canvas = np.ascontiguousarray(np.round(blended).astype(np.uint8))
    for i, mask in enumerate(masks):
        if not mask.any():
            continue
        color = PALETTE[i % len(PALETTE)]
        contours, _ = cv2.findContours(
            mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(canvas, contours, -1, color, 1)
        if labels is not None and labels[i]:
            rows = np.flatnonzero(mask.any(axis=1))
            cols = np.flatnonzero(mask.any(axis=0))
            _put_label(canvas, labels[i], (int(cols[0]), int(rows[0])),
                       color)
    return canvas


def draw_prompt_outlines(image: np.ndarray,
                         prompt_masks: np.ndarray,
                         color: Sequence[int] = PROMPT_COLOR) -> np.ndarray:
    """Outline visual prompts (2 px) in the prompt colour.

    Args:
        image (np.ndarray): ``(H, W, 3)`` uint8 image.
        prompt_masks (np.ndarray): ``(K, H, W)`` bool prompt masks.
        color (Sequence[int]): Outline colour.

    Returns:
        np.ndarray: ``(H, W, 3)`` uint8 picture.
    """
    _check_image(image)
    prompt_masks = np.asarray(prompt_masks).astype(bool)
    _check_masks(prompt_masks, image, 'prompt_masks')
    canvas = image.copy()
    for mask in prompt_masks:
        contours, _ = cv2.findContours(
            mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(canvas, contours, -1, tuple(color), 2)
    return canvas


def draw_answer(image: np.ndarray, question: str, answer: str,
                alpha: float = 0.75) -> np.ndarray:
    """Write a question and its answer on a light band at the image top.

    Lines that do not fit the image height are dropped.

    Args:
        image (np.ndarray): ``(H, W, 3)`` uint8 image.
        question (str): The question.
        answer (str): The generated answer.
        alpha (float): Opacity of the band.

    Returns:
        np.ndarray: ``(H, W, 3)`` uint8 picture.
    """
    _check_image(image)
    height, width = image.shape[:2]
    lines = (_wrap(f'Q: {question}', width - 8) +
             _wrap(f'A: {answer}', width - 8))
    lines = lines[:max((height - 6) // _LINE_HEIGHT, 1)]
    band = min(_LINE_HEIGHT * len(lines) + 6, height)
    canvas = image.copy()
    canvas[:band] = np.round((1 - alpha) * canvas[:band].astype(np.float32) +
                             alpha * 255).astype(np.uint8)
    for i, line in enumerate(lines):
        cv2.putText(canvas, line, (4, _LINE_HEIGHT * (i + 1)), _FONT,
                    _FONT_SCALE, (0, 0, 0), 1, cv2.LINE_AA)
    return canvas
