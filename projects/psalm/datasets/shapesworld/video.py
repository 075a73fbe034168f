# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""ShapesWorld videos for DAVIS-2017-style semi-supervised VOS.

Shape legend: T = frames, H = W = ``image_size``.

A video is a static stuff background (:func:`~.scene.sample_stuff_layout`)
with 2-4 objects of distinct colour + shape that drift smoothly (1.5-4 px
per frame at 256 px, bouncing off the image border, slowly rotating) and
exactly ONE object that enters late: it is absent on frames ``< t0``
(``t0 >= 2``) and slides in from a border on top of the others, its leading
edge ``v_in`` px inside on frame ``t0`` (``v_in`` = half its radius, at
least 4 px), so its first ground-truth mask (the reference DAVIS-2017 gives
on the frame of first appearance) is a clear part of it; once inside it
slows down to the drift speed. Object ids are the z order + 1 (the late
object has the largest id). Every object is visible on every frame from its
first appearance on (at least 40% of it, and at least ``min_visible_pixels``
on the entry frames); a draw that breaks this is redrawn.
"""
from dataclasses import dataclass, field
from typing import List, Tuple

import numpy as np

from .scene import (COLOURS, THING_CLASSES, SceneObject, draw_object,
                    rasterise_shape, render_stuff, sample_object,
                    sample_stuff_layout, shape_extent)

__all__ = ['Video', 'sample_video']

_REFERENCE_SIZE = 256
_SIDES = ('left', 'right', 'top', 'bottom')


@dataclass
class Video:
    """A rendered video.

    Attributes:
        frames (list[np.ndarray]): T (H, W, 3) uint8 RGB frames.
        masks (list[np.ndarray]): T (H, W) uint8 object-id maps (0 =
            background).
        objects (list[dict]): Per object: ``id``, ``shape``, ``colour``,
            ``size``, ``first_frame``.
        stuff (list[str]): Background bands, top to bottom.
    """
    frames: List[np.ndarray] = field(repr=False)
    masks: List[np.ndarray] = field(repr=False)
    objects: List[dict]
    stuff: List[str]


def _bounce(value: float, low: float, high: float) -> float:
    """Reflect ``value`` into ``[low, high]`` (a triangle wave)."""
    span = high - low
    if span <= 0:
        return (low + high) / 2
    phase = (value - low) % (2 * span)
    return low + (phase if phase <= span else 2 * span - phase)


def _drift(rng: np.random.Generator, scale: float) -> Tuple[float, float]:
    """A velocity of 1.5-4 px / frame (at 256 px) in a random direction."""
    angle = rng.uniform(0, 2 * np.pi)
    speed = rng.uniform(1.5, 4.0) * scale
    return float(speed * np.cos(angle)), float(speed * np.sin(angle))


def sample_video(rng: np.random.Generator,
                 image_size: int = 256,
                 num_frames: Tuple[int, int] = (10, 16),
                 num_objects: Tuple[int, int] = (2, 4),
                 min_visible_fraction: float = 0.4,
                 min_visible_pixels: float = 80.0,
                 max_tries: int = 100) -> Video:
    """Sample and render one video (see the module docstring).

    Args:
        rng (np.random.Generator): Random generator.
        image_size (int): H = W. Defaults to 256.
        num_frames (tuple[int, int]): Range of T (inclusive), T >= 4.
        num_objects (tuple[int, int]): Range of the drifting objects
            (inclusive; the late object comes on top).
        min_visible_fraction (float): Least visible fraction of an object
            (after its entry).
        min_visible_pixels (float): Least visible pixels at 256 px (scaled
            with the image area).
        max_tries (int): Draws before giving up.

    Returns:
        Video: The frames, id maps and objects.

    Raises:
        ValueError: For bad ranges.
        RuntimeError: If no draw satisfies the visibility rules.
    """
    if not 4 <= num_frames[0] <= num_frames[1]:
        raise ValueError(f'num_frames must be (low, high) with 4 <= low <= '
                         f'high, got {num_frames}')
    if not 1 <= num_objects[0] <= num_objects[1]:
        raise ValueError(f'num_objects must be (low, high) with 1 <= low <= '
                         f'high, got {num_objects}')
    height = width = image_size
    scale = image_size / _REFERENCE_SIZE
    min_pixels = min_visible_pixels * scale**2
    num = int(rng.integers(num_frames[0], num_frames[1] + 1))
    for _ in range(max_tries):
        video = _draw_video(rng, height, width, num, num_objects, scale,
                            min_visible_fraction, min_pixels)
        if video is not None:
            return video
    raise RuntimeError(f'no video met the visibility rules in {max_tries} '
                       'draws')


def _draw_video(rng, height, width, num, num_objects, scale, min_fraction,
                min_pixels):
    """One draw of :func:`sample_video`; None if an object is hidden."""
    regions = sample_stuff_layout(rng, height, width)
    background = render_stuff(regions, rng, height, width)
    count = int(rng.integers(num_objects[0], num_objects[1] + 1))
    combos = rng.permutation(len(THING_CLASSES) * len(COLOURS))[:count + 1]
    tracks = []  # (object template, positions per frame or None)
    for k in range(count):
        shape = THING_CLASSES[int(combos[k]) % len(THING_CLASSES)]
        colour = tuple(COLOURS)[int(combos[k]) // len(THING_CLASSES)]
        obj = sample_object(rng, height, width, shape, colour)
        margin = shape_extent(obj.shape, obj.radius) + 1.0
        vx, vy = _drift(rng, scale)
        spin = float(rng.uniform(-2.0, 2.0))
        states = []
        for t in range(num):
            x = _bounce(obj.center[0] + vx * t, margin, width - margin)
            y = _bounce(obj.center[1] + vy * t, margin, height - margin)
            states.append((x, y, obj.rotation + spin * t))
        tracks.append((obj, states))

    # the late object: slides in from a border from frame t0 on
    shape = THING_CLASSES[int(combos[count]) % len(THING_CLASSES)]
    colour = tuple(COLOURS)[int(combos[count]) // len(THING_CLASSES)]
    size = ('medium', 'large')[int(rng.integers(2))]
    late = sample_object(rng, height, width, shape, colour, size)
    extent = shape_extent(late.shape, late.radius)
    margin = extent + 1.0
    t0 = int(rng.integers(2, max(3, num // 2 + 1)))
    side = _SIDES[int(rng.integers(len(_SIDES)))]
    v_in = max(0.5 * late.radius, 4.0 * scale)
    v_slow = float(rng.uniform(1.5, 3.0)) * scale
    lateral_speed = float(rng.uniform(-1.5, 1.5)) * scale
    along_size = width if side in ('left', 'right') else height
    across_size = height if side in ('left', 'right') else width
    across0 = float(rng.uniform(margin, across_size - margin))
    states = []
    for t in range(num):
        if t < t0:
            states.append(None)
            continue
        # distance of the centre from the entry border
        depth = -extent + v_in * (t - t0 + 1)
        if depth > margin:  # inside: slow drift, bouncing
            t_in = t0 - 1 + (margin + extent) / v_in
            depth = _bounce(margin + v_slow * (t - t_in), margin,
                            along_size - margin)
        across = _bounce(across0 + lateral_speed * (t - t0), margin,
                         across_size - margin)
        along = depth if side in ('left', 'top') else along_size - depth
        if side in ('left', 'right'):
            states.append((along, across, late.rotation))
        else:
            states.append((across, along, late.rotation))
    tracks.append((late, states))

    frames, masks = [], []
    for t in range(num):
        objects = []
        for obj, track in tracks:
            if track[t] is None:
                objects.append(None)
                continue
            x, y, rotation = track[t]
            mask = rasterise_shape(obj.shape, (x, y), obj.radius, rotation,
                                   height, width)
            objects.append(
                SceneObject(obj.shape, obj.colour, obj.size, (x, y),
                            obj.radius, rotation, mask))
        covered = np.zeros((height, width), dtype=bool)
        ids = np.zeros((height, width), dtype=np.uint8)
        for k in reversed(range(len(objects))):
            obj = objects[k]
            if obj is None:
                continue
            obj.visible = obj.mask & ~covered
            covered |= obj.mask
            visible = int(obj.visible.sum())
            is_late = k == len(objects) - 1
            entering = is_late and not _inside(obj, height, width)
            need = min_pixels if entering else max(
                min_fraction * obj.mask.sum(), min_pixels)
            if visible < need:
                return None
            ids[obj.visible] = k + 1
        canvas = background.copy()
        for obj in objects:
            if obj is not None:
                draw_object(canvas, obj, rng)
        frames.append(np.clip(np.round(canvas), 0, 255).astype(np.uint8))
        masks.append(ids)
    info = [
        dict(id=k + 1, shape=obj.shape, colour=obj.colour, size=obj.size,
             first_frame=t0 if k == count else 0)
        for k, (obj, _) in enumerate(tracks)
    ]
    return Video(frames, masks, info, [region.name for region in regions])


def _inside(obj: SceneObject, height: int, width: int) -> bool:
    """Whether the whole shape lies inside the image."""
    extent = shape_extent(obj.shape, obj.radius)
    x, y = obj.center
    return (extent <= x <= width - extent) and (extent <= y <= height -
                                                extent)
