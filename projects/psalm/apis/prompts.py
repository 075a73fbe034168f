# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""User prompts of the inferencer -> the PSALM data-sample prompt.

Shape legend: H, W = original image size; K = visual-prompt regions.

A request holds exactly one kind of prompt:

* ``text``: a referring expression (task ``'referring'``, or ``'gres'``,
  which may answer "no target");
* ``categories``: class names, any vocabulary (``'panoptic'`` by default,
  ``'semantic'`` or ``'instance'``);
* ``points`` / ``box`` / ``scribble`` / ``mask``: visual prompts (task
  ``'interactive'``), one region or a list of regions (one mask each);
* ``question``: a visual question (task ``'vqa'``, a text answer).

Visual prompts are drawn the way the COCO-Interactive builder stores them
(:mod:`projects.psalm.datasets.coco_interactive`): one pixel per point, a
1-px polyline for a scribble, a filled box rounded to pixel edges, the mask
itself, all at the original size and as RLE. :class:`LoadVisualPrompts`
then dilates points and scribbles and :class:`ResizeVisualPrompts` resizes
them with the image, exactly as in the evaluation pipelines.
"""
import numbers
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import cv2
import mmcv
import numpy as np

from ..datasets.coco_interactive import encode_rle
from ..datasets.llava import move_image_marker

__all__ = ['PROMPT_KINDS', 'KIND_TASKS', 'PromptRequest', 'parse_prompt',
           'visual_prompt_instances']

#: The prompt keyword arguments, one of which a request holds.
PROMPT_KINDS = ('text', 'categories', 'points', 'box', 'scribble', 'mask',
                'question')
#: Tasks each kind of prompt can run, the default first.
KIND_TASKS: Dict[str, Tuple[str, ...]] = {
    'text': ('referring', 'gres'),
    'categories': ('panoptic', 'semantic', 'instance'),
    'points': ('interactive', ),
    'box': ('interactive', ),
    'scribble': ('interactive', ),
    'mask': ('interactive', ),
    'question': ('vqa', ),
}
#: COCO-Interactive prompt type of each visual kind.
_PROMPT_TYPES = dict(points='point', box='box', scribble='scribble',
                     mask='mask')


@dataclass
class PromptRequest:
    """A validated prompt, independent of the image.

    Attributes:
        kind (str): One of :data:`PROMPT_KINDS`.
        task (str): The PSALM task.
        prompt (dict): ``metainfo['prompt']`` (``task`` and ``sentences`` /
            ``class_names`` / ``conversations``; visual tasks: only
            ``task``).
        regions (list): Visual kinds: one entry per region (a list of
            ``(x, y)`` for points and scribbles, ``(x1, y1, x2, y2)`` for a
            box, a ``(H, W)`` bool array for a mask).
        is_thing (list[bool], optional): Category kind: the thing flag of
            every class name.
    """
    kind: str
    task: str
    prompt: Dict[str, Any]
    regions: List[Any] = field(default_factory=list)
    is_thing: Optional[List[bool]] = None

    @property
    def prompt_type(self) -> Optional[str]:
        """The COCO-Interactive prompt type of a visual request."""
        return _PROMPT_TYPES.get(self.kind)

    @property
    def label_names(self) -> List[str]:
        """A name per predicted label: class names, the text, or
        ``'<type> <k>'`` per region."""
        if self.kind == 'categories':
            return list(self.prompt['class_names'])
        if self.kind == 'text':
            return list(self.prompt['sentences'])
        return [f'{self.prompt_type} {k}' for k in range(len(self.regions))]


def parse_prompt(text: Optional[str] = None,
                 categories: Optional[Sequence[str]] = None,
                 points: Optional[Sequence] = None,
                 box: Optional[Sequence] = None,
                 scribble: Optional[Sequence] = None,
                 mask: Any = None,
                 question: Optional[str] = None,
                 task: Optional[str] = None,
                 is_thing: Optional[Sequence[bool]] = None) -> PromptRequest:
    """Validate one prompt of the inferencer.

    Args:
        text (str, optional): Referring expression.
        categories (Sequence[str], optional): Class names.
        points (Sequence, optional): ``(x, y)`` pixel coordinates of one
            region's clicks, or a list of such lists (one per region).
        box (Sequence, optional): ``(x1, y1, x2, y2)`` in pixel-edge
            coordinates, or a list of boxes.
        scribble (Sequence, optional): A polyline ``[(x, y), ...]``, or a
            list of polylines.
        mask (np.ndarray | str | Sequence, optional): A ``(H, W)`` mask
            (non-zero = inside) or the path of a mask image, or a list of
            them, or a ``(K, H, W)`` array.
        question (str, optional): Visual question.
        task (str, optional): Task of the prompt (see :data:`KIND_TASKS`);
            defaults to the first task of the kind.
        is_thing (Sequence[bool], optional): With ``categories``: the thing
            flag of each class (panoptic fusion merges the segments of a
            stuff class); defaults to all things.

    Returns:
        PromptRequest: The prompt.

    Raises:
        ValueError: For no prompt or several kinds, an empty text, question
            or category list, a task the kind cannot run, a malformed
            visual prompt or ``is_thing`` of the wrong length.
    """
    given = {
        kind: value
        for kind, value in zip(PROMPT_KINDS, (text, categories, points, box,
                                              scribble, mask, question))
        if value is not None
    }
    if len(given) != 1:
        got = ', '.join(given) if given else 'none'
        raise ValueError('give exactly one kind of prompt among '
                         f'{", ".join(PROMPT_KINDS)}; got {got}')
    kind, value = given.popitem()
    tasks = KIND_TASKS[kind]
    task = tasks[0] if task is None else task
    if task not in tasks:
        raise ValueError(f'a {kind} prompt runs task {" or ".join(tasks)}, '
                         f'got task={task!r}')
    if is_thing is not None and kind != 'categories':
        raise ValueError('is_thing only goes with categories')
    if kind in ('text', 'question'):
        if not isinstance(value, str):
            raise TypeError(f'{kind} must be a str, got {type(value)}')
        if not value.strip():
            raise ValueError(f'{kind} is empty; give a non-empty {kind}')
        if kind == 'text':
            return PromptRequest(kind, task,
                                 dict(task=task, sentences=[value.strip()]))
        turn = {'from': 'human', 'value': move_image_marker(value.strip())}
        return PromptRequest(kind, task,
                             dict(task=task, conversations=[turn]))
    if kind == 'categories':
        return _parse_categories(value, task, is_thing)
    if kind in ('points', 'scribble'):
        regions = _point_regions(value, kind)
    elif kind == 'box':
        regions = _boxes(value)
    else:
        regions = _masks(value)
    return PromptRequest(kind, task, dict(task=task), regions)


def _parse_categories(names: Any, task: str,
                      is_thing: Optional[Sequence[bool]]) -> PromptRequest:
    """Validated class names (and thing flags)."""
    if isinstance(names, str) or not isinstance(names, Sequence):
        raise TypeError('categories must be a list of class names, got '
                        f'{names!r}')
    if len(names) == 0:
        raise ValueError('categories is empty; give at least one class name')
    names = list(names)
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f'empty or non-str class name {name!r} in '
                             'categories')
    names = [name.strip() for name in names]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f'categories repeat {duplicates}')
    if is_thing is None:
        is_thing = [True] * len(names)
    elif len(is_thing) != len(names):
        raise ValueError(f'is_thing has {len(is_thing)} flags for '
                         f'{len(names)} categories')
    return PromptRequest('categories', task,
                         dict(task=task, class_names=names),
                         is_thing=[bool(flag) for flag in is_thing])


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_xy(value: Any) -> bool:
    return (isinstance(value, (Sequence, np.ndarray))
            and not isinstance(value, str) and len(value) == 2
            and all(_is_number(v) for v in value))


Region = List[Tuple[float, float]]


def _point_regions(value: Any, kind: str) -> List[Region]:
    """One region ``[(x, y), ...]`` or a list of them -> list of regions."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    is_seq = isinstance(value, Sequence) and not isinstance(value, str)
    if _is_xy(value):  # a single point
        return [[tuple(float(v) for v in value)]]
    if is_seq and value and all(_is_xy(p) for p in value):
        return [[tuple(float(v) for v in p) for p in value]]
    if is_seq and value and all(
            isinstance(r, (Sequence, np.ndarray)) and len(r) > 0
            and all(_is_xy(p) for p in r) for r in value):
        return [[tuple(float(v) for v in p) for p in r] for r in value]
    layout = 'polyline' if kind == 'scribble' else 'region'
    raise ValueError(f'{kind} must be (x, y) pixel pairs: one {layout} '
                     f'[(x, y), ...] or a list of them, got {value!r}')


def _boxes(value: Any) -> List[Tuple[float, float, float, float]]:
    """One ``(x1, y1, x2, y2)`` or a list of them -> list of boxes."""
    if isinstance(value, np.ndarray):
        value = value.tolist()

    def is_box(v: Any) -> bool:
        return (isinstance(v, Sequence) and not isinstance(v, str)
                and len(v) == 4 and all(_is_number(x) for x in v))

    if is_box(value):
        boxes = [value]
    elif (isinstance(value, Sequence) and value
          and all(is_box(v) for v in value)):
        boxes = list(value)
    else:
        raise ValueError('box must be (x1, y1, x2, y2) in pixels or a list '
                         f'of such boxes, got {value!r}')
    for x1, y1, x2, y2 in boxes:
        if not (x1 < x2 and y1 < y2):
            raise ValueError(f'box {(x1, y1, x2, y2)} needs x1 < x2 and '
                             'y1 < y2')
    return [tuple(float(v) for v in b) for b in boxes]


def _read_mask(value: Any) -> np.ndarray:
    """A mask array or image path -> (H, W) bool."""
    if isinstance(value, str):
        image = mmcv.imread(value, flag='unchanged')
        if image is None:
            raise ValueError(f'cannot read the mask image {value!r}')
        if image.ndim == 3:  # colour / alpha: any non-zero channel
            image = image.max(axis=-1)
        return image > 0
    array = np.asarray(value)
    if array.ndim != 2:
        raise ValueError('a mask must be a (H, W) array or an image path, '
                         f'got shape {array.shape}')
    return array.astype(bool)


def _masks(value: Any) -> List[np.ndarray]:
    """One mask (array / path), a (K, H, W) array or a list -> K masks."""
    if isinstance(value, np.ndarray) and value.ndim == 3:
        return [m.astype(bool) for m in value]
    if isinstance(value, (str, np.ndarray)):
        return [_read_mask(value)]
    if isinstance(value, Sequence) and value:
        return [_read_mask(v) for v in value]
    raise ValueError('mask must be a (H, W) array, a mask image path or a '
                     f'list of them, got {type(value).__name__}')


def _pixel(x: float, y: float, width: int, height: int,
           kind: str) -> Tuple[int, int]:
    """The (row, col) of a point inside the image."""
    if not (0 <= x < width and 0 <= y < height):
        raise ValueError(f'{kind} point ({x:g}, {y:g}) lies outside the '
                         f'{width}x{height} (WxH) image')
    return int(np.floor(y)), int(np.floor(x))


def _draw_region(request: PromptRequest, region: Any,
                 shape: Tuple[int, int]) -> np.ndarray:
    """Rasterise one region at the original size -> (H, W) bool."""
    height, width = shape
    canvas = np.zeros(shape, dtype=np.uint8)
    kind = request.kind
    if kind == 'points':  # one pixel per click (dilated when loaded)
        for x, y in region:
            canvas[_pixel(x, y, width, height, kind)] = 1
    elif kind == 'scribble':  # 1-px 8-connected polyline
        pixels = [
            _pixel(x, y, width, height, kind)[::-1] for x, y in region
        ]
        # shape (n, 2) -> (n, 1, 2) xy, the cv2 polyline layout
        cv2.polylines(canvas, [np.int32(pixels).reshape(-1, 1, 2)],
                      isClosed=False, color=1, thickness=1,
                      lineType=cv2.LINE_8)
    elif kind == 'box':  # edges rounded to the nearest pixel edge
        x1, y1, x2, y2 = region
        if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
            raise ValueError(f'box {region} lies outside the {width}x'
                             f'{height} (WxH) image')
        left, top = int(np.floor(x1 + 0.5)), int(np.floor(y1 + 0.5))
        right = max(left + 1, int(np.floor(x2 + 0.5)))
        bottom = max(top + 1, int(np.floor(y2 + 0.5)))
        canvas[top:bottom, left:right] = 1
    else:
        if region.shape != shape:
            raise ValueError(f'mask is {region.shape[1]}x{region.shape[0]} '
                             f'(WxH) but the image is {width}x{height}')
        canvas[region] = 1
    if not canvas.any():
        raise ValueError(f'the {request.prompt_type} prompt is empty')
    return canvas.astype(bool)


def visual_prompt_instances(request: PromptRequest,
                            shape: Tuple[int, int]) -> Dict[str, Any]:
    """The COCO-Interactive results keys of a visual request on an image.

    Args:
        request (PromptRequest): A visual request.
        shape (tuple[int, int]): ``(H, W)`` of the original image.

    Returns:
        dict: ``instances`` (one per region, with the RLE of its prompt
        under ``visual_prompts``) and ``prompt_type`` (K str), the keys
        :class:`LoadVisualPrompts` reads.

    Raises:
        ValueError: If a region lies outside the image or is empty.
    """
    prompt_type = request.prompt_type
    instances = [
        dict(ann_id=None,
             visual_prompts={
                 prompt_type: encode_rle(_draw_region(request, region, shape))
             }) for region in request.regions
    ]
    return dict(instances=instances,
                prompt_type=[prompt_type] * len(instances))
