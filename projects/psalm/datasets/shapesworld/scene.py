# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""ShapesWorld scenes: sampling and rasterisation.

Shape legend: H, W = image height and width (``image_size``, square).

A scene is 2-3 horizontal *stuff* bands (sky on top, then one or two of
grass / water / sand, separated by wavy borders and filled with seeded noise
textures) and 3-8 *thing* objects drawn on top of them in z order (later
objects occlude earlier ones). An object is a shape (circle, square,
triangle, star, hexagon, ring) of one of six flat colours and one of three
size classes, with a darker outline. Its *visible* mask is its full shape
minus the full shapes of the later objects; an object is kept only if its
visible mask is at least ``min_visible_fraction`` of its full shape and at
least ``min_visible_pixels`` pixels (scaled with the image area), so every
ground-truth object can be seen. Masks are binary (no anti-aliasing), so the
image colours and the masks agree pixel for pixel (up to JPEG noise).

Everything random is drawn from the ``np.random.Generator`` passed in, in a
fixed order, so a scene depends only on the generator's seed.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

__all__ = [
    'THING_CLASSES', 'STUFF_CLASSES', 'COLOURS', 'SIZE_CLASSES',
    'SceneObject', 'StuffRegion', 'Scene', 'shape_extent', 'rasterise_shape',
    'sample_object', 'sample_stuff_layout', 'render_stuff', 'draw_object',
    'compose_scene', 'sample_scene', 'object_attributes', 'scene_id_map'
]

#: Thing categories (shapes), in category-id order.
THING_CLASSES = ('circle', 'square', 'triangle', 'star', 'hexagon', 'ring')
#: Stuff categories (textured regions), in category-id order.
STUFF_CLASSES = ('sky', 'grass', 'water', 'sand')
#: Object colour name -> RGB fill. Saturated, unlike the stuff textures.
COLOURS: Dict[str, Tuple[int, int, int]] = {
    'red': (225, 30, 35),
    'green': (35, 205, 55),
    'blue': (35, 60, 235),
    'yellow': (250, 220, 25),
    'purple': (150, 45, 195),
    'white': (248, 248, 248),
}
#: Size class -> range of the nominal radius r in px at a 256 image.
SIZE_CLASSES: Dict[str, Tuple[float, float]] = {
    'small': (11.0, 14.0),
    'medium': (18.0, 23.0),
    'large': (28.0, 36.0),
}
# circumradius of each shape in units of its nominal radius r (the shapes
# of one size class then have similar areas)
_CIRCUMRADIUS = {
    'circle': 1.0,
    'ring': 1.05,
    'square': 1.2,
    'triangle': 1.35,
    'star': 1.35,
    'hexagon': 1.08,
}
_RING_INNER = 0.55  # inner / outer radius of a ring
_STAR_INNER = 0.5  # inner / outer radius of a star
_SHIFT = 4  # cv2 fixed-point bits (1/16 px vertices)
_REFERENCE_SIZE = 256


@dataclass
class SceneObject:
    """One thing object.

    Attributes:
        shape (str): One of :data:`THING_CLASSES`.
        colour (str): One of :data:`COLOURS`.
        size (str): One of :data:`SIZE_CLASSES`.
        center (tuple[float, float]): ``(x, y)`` of the shape centre (px).
        radius (float): Nominal radius r (px).
        rotation (float): Rotation in degrees (counter-clockwise).
        mask (np.ndarray): (H, W) bool full shape.
        visible (np.ndarray, optional): (H, W) bool visible part (set by
            :func:`compose_scene`).
    """
    shape: str
    colour: str
    size: str
    center: Tuple[float, float]
    radius: float
    rotation: float
    mask: np.ndarray = field(repr=False)
    visible: Optional[np.ndarray] = field(default=None, repr=False)


@dataclass
class StuffRegion:
    """One stuff band.

    Attributes:
        name (str): One of :data:`STUFF_CLASSES`.
        mask (np.ndarray): (H, W) bool band before the objects.
        visible (np.ndarray, optional): (H, W) bool band minus all objects.
    """
    name: str
    mask: np.ndarray = field(repr=False)
    visible: Optional[np.ndarray] = field(default=None, repr=False)


@dataclass
class Scene:
    """A rendered scene.

    Attributes:
        image (np.ndarray): (H, W, 3) uint8 RGB image.
        stuff (list[StuffRegion]): Bands from top to bottom.
        objects (list[SceneObject]): Objects in z order (last on top).
    """
    image: np.ndarray = field(repr=False)
    stuff: List[StuffRegion]
    objects: List[SceneObject]

    @property
    def height(self) -> int:
        return self.image.shape[0]

    @property
    def width(self) -> int:
        return self.image.shape[1]


# ----------------------------------------------------------------------
# shapes
# ----------------------------------------------------------------------
def _regular_polygon(num: int, radius: float, rotation: float,
                     start: float = 90.0) -> np.ndarray:
    """(num, 2) vertices around the origin, first one at ``start`` deg
    (image y axis points down, so 90 deg is straight up)."""
    angles = np.deg2rad(start + rotation + 360.0 * np.arange(num) / num)
    return np.stack([radius * np.cos(angles), -radius * np.sin(angles)], 1)


def shape_extent(shape: str, radius: float) -> float:
    """Circumradius of a shape of nominal radius ``radius`` (px).

    Args:
        shape (str): One of :data:`THING_CLASSES`.
        radius (float): Nominal radius r.

    Returns:
        float: Radius of a disk containing the shape.
    """
    if shape not in _CIRCUMRADIUS:
        raise ValueError(f'unknown shape {shape!r}; expected one of '
                         f'{THING_CLASSES}')
    return _CIRCUMRADIUS[shape] * radius


def rasterise_shape(shape: str, center: Tuple[float, float], radius: float,
                    rotation: float, height: int, width: int) -> np.ndarray:
    """Binary mask of one shape (1/16 px vertex precision, no
    anti-aliasing).

    Args:
        shape (str): One of :data:`THING_CLASSES`.
        center (tuple[float, float]): ``(x, y)`` in px.
        radius (float): Nominal radius r in px.
        rotation (float): Rotation in degrees.
        height (int): H.
        width (int): W.

    Returns:
        np.ndarray: (H, W) bool mask (may be empty if off the image).
    """
    outer = shape_extent(shape, radius)
    mask = np.zeros((height, width), dtype=np.uint8)
    scale = 1 << _SHIFT
    cx, cy = center
    fixed_center = (int(round(cx * scale)), int(round(cy * scale)))
    if shape in ('circle', 'ring'):
        cv2.circle(mask, fixed_center, int(round(outer * scale)), 1, -1,
                   cv2.LINE_8, _SHIFT)
        if shape == 'ring':
            cv2.circle(mask, fixed_center,
                       int(round(outer * _RING_INNER * scale)), 0, -1,
                       cv2.LINE_8, _SHIFT)
        return mask.astype(bool)
    if shape == 'square':
        points = _regular_polygon(4, outer, rotation, start=45.0)
    elif shape == 'triangle':
        points = _regular_polygon(3, outer, rotation)
    elif shape == 'hexagon':
        points = _regular_polygon(6, outer, rotation)
    else:  # star: 5 outer and 5 inner vertices, alternating
        tips = _regular_polygon(5, outer, rotation)
        notches = _regular_polygon(5, outer * _STAR_INNER, rotation,
                                   start=90.0 + 36.0)
        points = np.stack([tips, notches], 1).reshape(10, 2)
    points = np.round((points + np.array([cx, cy])) * scale).astype(np.int32)
    cv2.fillPoly(mask, [points], 1, cv2.LINE_8, _SHIFT)
    return mask.astype(bool)


def _rotation(shape: str, rng: np.random.Generator) -> float:
    """Rotation of a new shape: upright-ish triangles and stars, any
    square / hexagon orientation (circles and rings draw nothing)."""
    if shape in ('circle', 'ring'):
        return 0.0
    if shape in ('triangle', 'star'):
        return float(rng.uniform(-15.0, 15.0))
    if shape == 'square':
        return float(rng.uniform(-20.0, 20.0))
    return float(rng.uniform(0.0, 60.0))


def sample_object(rng: np.random.Generator,
                  height: int,
                  width: int,
                  shape: Optional[str] = None,
                  colour: Optional[str] = None,
                  size: Optional[str] = None,
                  center: Optional[Tuple[float, float]] = None) -> SceneObject:
    """Sample (the missing attributes of) one object, fully inside the
    image.

    Draw order: shape, colour, size, radius, rotation, centre (each drawn
    even when given, so the stream does not depend on the arguments).

    Args:
        rng (np.random.Generator): Random generator.
        height (int): H.
        width (int): W.
        shape (str, optional): Fixed shape.
        colour (str, optional): Fixed colour.
        size (str, optional): Fixed size class.
        center (tuple[float, float], optional): Fixed centre.

    Returns:
        SceneObject: The object with its full mask (``visible`` unset).
    """
    drawn_shape = THING_CLASSES[int(rng.integers(len(THING_CLASSES)))]
    drawn_colour = tuple(COLOURS)[int(rng.integers(len(COLOURS)))]
    drawn_size = tuple(SIZE_CLASSES)[int(rng.integers(len(SIZE_CLASSES)))]
    shape = shape or drawn_shape
    colour = colour or drawn_colour
    size = size or drawn_size
    for name, value, choices in (('shape', shape, THING_CLASSES),
                                 ('colour', colour, tuple(COLOURS)),
                                 ('size', size, tuple(SIZE_CLASSES))):
        if value not in choices:
            raise ValueError(f'unknown {name} {value!r}; expected one of '
                             f'{choices}')
    scale = min(height, width) / _REFERENCE_SIZE
    low, high = SIZE_CLASSES[size]
    radius = float(rng.uniform(low, high)) * scale
    rotation = _rotation(shape, rng)
    margin = shape_extent(shape, radius) + 1.0
    drawn_center = (float(rng.uniform(margin, width - margin)),
                    float(rng.uniform(margin, height - margin)))
    center = drawn_center if center is None else tuple(center)
    mask = rasterise_shape(shape, center, radius, rotation, height, width)
    return SceneObject(shape, colour, size, center, radius, rotation, mask)


# ----------------------------------------------------------------------
# stuff
# ----------------------------------------------------------------------
def _smooth_noise(rng: np.random.Generator, height: int, width: int,
                  cell: float) -> np.ndarray:
    """(H, W) float32 smooth noise of unit-ish amplitude with features of
    about ``cell`` px (bicubic upsampling of a coarse normal grid)."""
    grid = rng.standard_normal(
        (int(height / cell) + 2, int(width / cell) + 2)).astype(np.float32)
    return cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)


def _texture(name: str, rng: np.random.Generator, height: int,
             width: int) -> np.ndarray:
    """(H, W, 3) float32 RGB texture of a stuff class over the whole
    image."""
    scale = min(height, width) / _REFERENCE_SIZE
    ys = np.arange(height, dtype=np.float32)[:, None, None]
    fine = rng.standard_normal((height, width, 1)).astype(np.float32)
    if name == 'sky':  # deep blue at the top, pale near the horizon, clouds
        t = np.clip(ys / (0.6 * height), 0, 1)
        top = np.array([95, 155, 222], np.float32)
        bottom = np.array([178, 210, 240], np.float32)
        image = top * (1 - t) + bottom * t
        clouds = np.clip(_smooth_noise(rng, height, width, 40 * scale) - 0.4,
                         0, None)[..., None]
        return image + 45 * clouds + 2 * fine
    if name == 'grass':  # olive green, blades (vertical streaks), speckle
        base = np.array([80, 132, 52], np.float32)
        patches = _smooth_noise(rng, height, width, 24 * scale)[..., None]
        blades = cv2.resize(
            rng.standard_normal((max(2, int(height / (10 * scale))),
                                 width)).astype(np.float32), (width, height),
            interpolation=cv2.INTER_LINEAR)[..., None]
        return base * (1 + 0.1 * patches + 0.12 * blades + 0.12 * fine)
    if name == 'water':  # teal blue with horizontal ripples
        base = np.array([38, 92, 148], np.float32)
        period = float(rng.uniform(7, 12)) * scale
        warp = 2.5 * _smooth_noise(rng, height, width, 32 * scale)[..., None]
        ripple = np.sin(2 * np.pi * ys / period + warp)
        return base + np.array([5, 12, 16], np.float32) * ripple + 3 * fine
    if name == 'sand':  # beige with grains
        base = np.array([214, 192, 140], np.float32)
        dunes = _smooth_noise(rng, height, width, 16 * scale)[..., None]
        grains = (rng.random((height, width, 1)) < 0.03).astype(np.float32)
        return base + 7 * dunes + 9 * fine - 35 * grains
    raise ValueError(f'unknown stuff class {name!r}; expected one of '
                     f'{STUFF_CLASSES}')


def sample_stuff_layout(rng: np.random.Generator, height: int,
                        width: int) -> List[StuffRegion]:
    """Sky on top of one or two ground bands with wavy borders.

    Args:
        rng (np.random.Generator): Random generator.
        height (int): H.
        width (int): W.

    Returns:
        list[StuffRegion]: 2 or 3 bands, top to bottom, covering the image
        without overlap.
    """
    grounds = ('grass', 'water', 'sand')
    num_bands = 2 + int(rng.integers(2))
    order = rng.permutation(len(grounds))[:num_bands - 1]
    names = ['sky'] + [grounds[int(k)] for k in order]
    xs = np.arange(width, dtype=np.float64)
    ys = np.arange(height, dtype=np.float64)[:, None]
    horizon = rng.uniform(0.28, 0.5) * height
    borders = [horizon]
    if num_bands == 3:
        borders.append(rng.uniform(horizon + 0.2 * height, 0.82 * height))
    band = np.zeros((height, width), dtype=np.int64)
    for level in borders:
        amplitude = rng.uniform(1.5, 7.0) * height / _REFERENCE_SIZE
        wavelength = rng.uniform(0.25, 0.8) * width
        phase = rng.uniform(0, 2 * np.pi)
        curve = level + amplitude * np.sin(2 * np.pi * xs / wavelength +
                                           phase)
        band += (ys >= curve[None, :]).astype(np.int64)
    return [StuffRegion(name, band == k) for k, name in enumerate(names)]


def render_stuff(regions: Sequence[StuffRegion], rng: np.random.Generator,
                 height: int, width: int) -> np.ndarray:
    """(H, W, 3) float32 RGB background: every band's texture.

    Args:
        regions (Sequence[StuffRegion]): The bands.
        rng (np.random.Generator): Random generator (one texture per band,
            in band order).
        height (int): H.
        width (int): W.

    Returns:
        np.ndarray: The background.
    """
    image = np.zeros((height, width, 3), dtype=np.float32)
    for region in regions:
        image[region.mask] = _texture(region.name, rng, height,
                                      width)[region.mask]
    return image


# ----------------------------------------------------------------------
# objects and scenes
# ----------------------------------------------------------------------
def draw_object(image: np.ndarray, obj: SceneObject,
                rng: np.random.Generator) -> None:
    """Paint an object (flat colour, slight noise, darker outline) in
    place.

    Args:
        image (np.ndarray): (H, W, 3) float32 RGB canvas.
        obj (SceneObject): The object (its full mask is painted).
        rng (np.random.Generator): Random generator (the fill noise).
    """
    colour = np.array(COLOURS[obj.colour], np.float32)
    width = max(1, int(round(2 * min(image.shape[:2]) / _REFERENCE_SIZE)))
    inner = cv2.erode(
        obj.mask.astype(np.uint8), np.ones((3, 3), np.uint8),
        iterations=width).astype(bool)
    noise = rng.standard_normal(
        (int(obj.mask.sum()), 1)).astype(np.float32) * 4
    image[obj.mask] = colour * 0.5 + noise
    image[inner] = colour + noise[inner[obj.mask]]


def compose_scene(regions: List[StuffRegion], objects: List[SceneObject],
                  rng: np.random.Generator, height: int,
                  width: int) -> Scene:
    """Render the bands and the objects (z order) and set the visible masks.

    Args:
        regions (list[StuffRegion]): The bands.
        objects (list[SceneObject]): The objects, bottom to top.
        rng (np.random.Generator): Random generator (textures, fill noise).
        height (int): H.
        width (int): W.

    Returns:
        Scene: The scene with an RGB uint8 image.
    """
    canvas = render_stuff(regions, rng, height, width)
    covered = np.zeros((height, width), dtype=bool)
    for obj in reversed(objects):
        obj.visible = obj.mask & ~covered
        covered |= obj.mask
    for region in regions:
        region.visible = region.mask & ~covered
    for obj in objects:
        draw_object(canvas, obj, rng)
    image = np.clip(np.round(canvas), 0, 255).astype(np.uint8)
    return Scene(image, list(regions), list(objects))


def _visible_enough(objects: Sequence[SceneObject], min_fraction: float,
                    min_pixels: float) -> bool:
    """Whether every object keeps enough visible pixels under the later
    ones."""
    covered = None
    for obj in reversed(objects):
        full = int(obj.mask.sum())
        visible = full if covered is None else int(
            (obj.mask & ~covered).sum())
        if full == 0 or visible < max(min_fraction * full, min_pixels):
            return False
        covered = obj.mask.copy() if covered is None else covered | obj.mask
    return True


def sample_scene(rng: np.random.Generator,
                 image_size: int = 256,
                 num_objects: Tuple[int, int] = (3, 8),
                 min_visible_fraction: float = 0.4,
                 min_visible_pixels: float = 80.0,
                 reuse_prob: float = 0.35,
                 max_tries: int = 30) -> Scene:
    """Sample and render one scene.

    The number of objects is drawn from ``num_objects`` (inclusive). Each
    new object copies the shape (or, independently, the colour) of an
    earlier object with probability ``reuse_prob``, so scenes have
    distractors that only a colour, size or position tells apart. A new
    object is redrawn (up to ``max_tries`` times, then dropped) until every
    object, old and new, is visible enough. A scene whose objects hide
    more than 75% of a stuff band is redrawn.

    Args:
        rng (np.random.Generator): Random generator.
        image_size (int): H = W. Defaults to 256.
        num_objects (tuple[int, int]): Range of the object count.
        min_visible_fraction (float): Least visible fraction of a shape.
        min_visible_pixels (float): Least visible pixels at a 256 image
            (scaled with the image area).
        reuse_prob (float): Probability to copy an earlier shape / colour.
        max_tries (int): Draws per object.

    Returns:
        Scene: The rendered scene (at least ``num_objects[0]`` objects).

    Raises:
        ValueError: For a bad ``image_size`` or ``num_objects``.
    """
    if image_size < 64:
        raise ValueError(f'image_size must be >= 64, got {image_size}')
    low, high = num_objects
    if not 1 <= low <= high:
        raise ValueError(f'num_objects must be (low, high) with 1 <= low <= '
                         f'high, got {num_objects}')
    height = width = image_size
    min_pixels = min_visible_pixels * (image_size / _REFERENCE_SIZE)**2
    while True:
        regions = sample_stuff_layout(rng, height, width)
        target = int(rng.integers(low, high + 1))
        objects: List[SceneObject] = []
        for _ in range(target):
            for _ in range(max_tries):
                shape = colour = None
                if objects and rng.random() < reuse_prob:
                    shape = objects[int(rng.integers(len(objects)))].shape
                if objects and rng.random() < reuse_prob:
                    colour = objects[int(rng.integers(len(objects)))].colour
                obj = sample_object(rng, height, width, shape, colour)
                if _visible_enough(objects + [obj], min_visible_fraction,
                                   min_pixels):
                    objects.append(obj)
                    break
        if len(objects) < low:
            continue
        scene = compose_scene(regions, objects, rng, height, width)
        # every band keeps a good part of itself (stuff is visible too)
        if all(region.visible.sum() >= max(0.25 * region.mask.sum(),
                                           min_pixels)
               for region in scene.stuff):
            return scene


def object_attributes(obj: SceneObject, z: int) -> dict:
    """The structured, json-ready attributes of an object.

    ``area``, ``centroid`` and ``bbox`` (COCO ``[x, y, w, h]``, pixel edges)
    are those of the visible mask; ``shape_area`` is the full shape's pixel
    count (what "largest" compares).

    Args:
        obj (SceneObject): A composed object (``visible`` set).
        z (int): Its depth (0 = bottom).

    Returns:
        dict: ``shape``, ``colour``, ``size``, ``area``, ``shape_area``,
        ``centroid``, ``bbox``, ``z``, ``center``, ``radius``, ``rotation``.
    """
    if obj.visible is None:
        raise ValueError(f'{obj}: not composed into a scene (no visible '
                         'mask)')
    rows, cols = np.nonzero(obj.visible)
    if len(rows) == 0:
        raise ValueError(f'{obj}: the object is not visible')
    x0, y0 = int(cols.min()), int(rows.min())
    return dict(
        shape=obj.shape,
        colour=obj.colour,
        size=obj.size,
        area=int(len(rows)),
        shape_area=int(obj.mask.sum()),
        centroid=[
            round(float(cols.mean()) + 0.5, 2),
            round(float(rows.mean()) + 0.5, 2)
        ],
        bbox=[x0, y0,
              int(cols.max()) + 1 - x0,
              int(rows.max()) + 1 - y0],
        z=int(z),
        center=[round(obj.center[0], 2),
                round(obj.center[1], 2)],
        radius=round(obj.radius, 2),
        rotation=round(obj.rotation, 2))


def scene_id_map(scene: Scene, object_ids: Sequence[int],
                 stuff_ids: Sequence[int]) -> np.ndarray:
    """(H, W) int64 map of segment ids: every pixel belongs to exactly one
    visible object or stuff band.

    Args:
        scene (Scene): The scene.
        object_ids (Sequence[int]): Id of every object (z order).
        stuff_ids (Sequence[int]): Id of every band (0 leaves it VOID).

    Returns:
        np.ndarray: The id map.
    """
    ids = np.zeros((scene.height, scene.width), dtype=np.int64)
    for region, seg_id in zip(scene.stuff, stuff_ids):
        ids[region.visible] = seg_id
    for obj, seg_id in zip(scene.objects, object_ids):
        ids[obj.visible] = seg_id
    return ids
