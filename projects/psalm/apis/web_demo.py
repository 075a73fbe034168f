# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""The browser demo of PSALM: a local Gradio app on :class:`PSALMInferencer`.

Shape legend: H, W = original image size.

Two layers, so the logic is testable without a browser:

* :class:`PSALMWebDemo` (no Gradio): loads the model, knows which tasks the
  checkpoint was trained on, encodes each image once (``set_image``; a few
  images are kept per process, so several browser tabs do not re-encode
  each other's images) and runs one prompt per call (``predict``), returning
  the overlay, the answer and a json-ready result. User mistakes (empty
  prompt, prompt outside the image, untrained task) raise
  :class:`DemoError` with a message meant for the page.
* :func:`build_app`: the Gradio ``Blocks`` page around it (Gradio is
  imported there only; ``requirements/demo.txt``).

Prompts on the page: a referring expression, a category list or a question
typed in the text box; points (every click, one object), a box (two clicks:
opposite corners), a scribble (clicks are the vertices of a polyline, then
*Run*) on the image; or a mask painted with the brush of the *Paint* editor.

Everything is served from the local machine: Gradio's analytics are turned
off before it is imported and its default theme uses the fonts bundled with
the package.
"""
import ast
import atexit
import collections
import itertools
import json
import os
import os.path as osp
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import cv2
import mmengine
import numpy as np

from ..datasets.coco_interactive import encode_rle
from .inferencer import REPO_ROOT, PSALMInferencer

__all__ = [
    'DemoError', 'DemoExample', 'DemoResult', 'PSALMWebDemo', 'TASKS',
    'TASK_PROMPTS', 'VISUAL_PROMPTS', 'build_app', 'dataset_task',
    'default_checkpoint', 'draw_clicks', 'painted_mask',
    'shapesworld_examples', 'trained_tasks'
]

#: Tasks of the page, in menu order.
TASKS = ('referring', 'gres', 'panoptic', 'semantic', 'instance',
         'interactive', 'vqa')
#: What the text box holds for each task (``interactive``: nothing, the
#: prompt is drawn on the image).
TASK_PROMPTS = dict(
    referring='text',
    gres='text',
    panoptic='categories',
    semantic='categories',
    instance='categories',
    interactive='visual',
    vqa='question')
#: Visual prompts of the ``interactive`` task.
VISUAL_PROMPTS = ('point', 'box', 'scribble', 'mask')
#: Tasks that run zero-shot when their base task was trained (PSALM's
#: semantic and instance outputs come from the panoptic queries; gres is the
#: referring task that may answer "no target").
ZERO_SHOT_BASE = dict(semantic='panoptic', instance='panoptic',
                      gres='referring')
#: Tasks drawn with every mask, whatever its score (one mask per prompt).
_SINGLE_MASK_TASKS = ('referring', 'gres', 'interactive')
_QUICKSTART_POINTER = 'work_dirs/quickstart/last_checkpoint'
DEFAULT_CONFIG = 'configs/shapesworld/psalm_tiny_2xb2-5k_shapesworld.py'
#: Colours (RGB) of the clicks drawn on the image.
_CLICK_COLOR = (255, 255, 255)
_CLICK_EDGE = (20, 20, 20)


class DemoError(ValueError):
    """A problem with the user's input, worded for the page."""


@dataclass
class DemoExample:
    """One row of the page's examples.

    Attributes:
        image (str): Image path.
        task (str): Task selected with it.
        text (str): Text prompt of the task ('' for ``interactive``).
        label (str): Short description shown on the page.
    """
    image: str
    task: str = 'interactive'
    text: str = ''
    label: str = ''


@dataclass
class DemoResult:
    """What one prompt gives back to the page.

    Attributes:
        picture (np.ndarray): ``(H, W, 3)`` uint8 RGB overlay (masks with
            their labels and scores, visual prompts outlined) or the image
            with the question and answer.
        answer (str): The text answer (``vqa``), else ''.
        status (str): One-line summary (task, prompt, masks, time).
        summary (dict): Readable result: ``task`` and per mask its label,
            score, area and box, or the ``answer``.
        prediction (dict): :meth:`PSALMInferencer.pred2dict` output with RLE
            masks (json-ready), plus ``prompt``.
        warning (str): A note on the task (zero-shot), else ''.
    """
    picture: np.ndarray
    answer: str = ''
    status: str = ''
    summary: Dict[str, Any] = field(default_factory=dict)
    prediction: Dict[str, Any] = field(default_factory=dict)
    warning: str = ''


# ----------------------------------------------------------------------
# checkpoint, tasks and examples
# ----------------------------------------------------------------------
def _repo_path(path: str) -> str:
    """``path`` as given when it exists, else relative to the repository."""
    if osp.isabs(path) or osp.exists(path):
        return path
    candidate = osp.join(REPO_ROOT, path)
    return candidate if osp.exists(candidate) else path


def default_checkpoint(pointer: str = _QUICKSTART_POINTER) -> str:
    """The checkpoint of the ShapesWorld quickstart.

    Args:
        pointer (str): The ``last_checkpoint`` file of the quickstart's work
            dir (mmengine writes the checkpoint path into it).

    Returns:
        str: The checkpoint path.

    Raises:
        FileNotFoundError: If the quickstart has not been run (or its
            checkpoint was removed), with what to do.
    """
    advice = ('run `bash tools/quickstart.sh` (it trains the tiny PSALM on '
              'ShapesWorld) or pass --checkpoint PATH')
    pointer_path = _repo_path(pointer)
    if not osp.isfile(pointer_path):
        raise FileNotFoundError(
            f'no checkpoint given and no quickstart checkpoint found '
            f'({pointer} does not exist): {advice}')
    with open(pointer_path) as f:
        checkpoint = f.read().strip()
    if not osp.isabs(checkpoint) and not osp.isfile(checkpoint):
        checkpoint = osp.join(osp.dirname(osp.abspath(pointer_path)),
                              osp.basename(checkpoint))
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(
            f'{pointer} names {checkpoint!r}, which does not exist: '
            f'{advice}')
    return checkpoint


def dataset_task(dataset_cfg: dict) -> Optional[str]:
    """The PSALM task of one (non-wrapper) dataset config.

    The task is the config's ``task`` argument, else the dataset class's
    ``TASK`` attribute, else the default of its ``task`` argument (the
    panoptic dataset serves three tasks), else a known class name.

    Args:
        dataset_cfg (dict): A dataset config with ``type``.

    Returns:
        str | None: The task, or None when it cannot be told.
    """
    import inspect

    from mmdet.registry import DATASETS
    if dataset_cfg.get('task'):
        return str(dataset_cfg['task'])
    dataset_type = dataset_cfg.get('type')
    cls = dataset_type if isinstance(dataset_type, type) else \
        DATASETS.get(str(dataset_type)) if dataset_type else None
    if cls is None:
        return None
    task = getattr(cls, 'TASK', None)
    if task is None:
        parameter = inspect.signature(cls.__init__).parameters.get('task')
        if parameter is not None and isinstance(parameter.default, str):
            task = parameter.default
    return task


def _collect_tasks(node: Any, tasks: List[str]) -> None:
    """Append the task of every leaf dataset below ``node``."""
    if isinstance(node, (list, tuple)):
        for child in node:
            _collect_tasks(child, tasks)
    elif isinstance(node, dict):
        if 'datasets' in node:  # ConcatDataset and the like
            _collect_tasks(node['datasets'], tasks)
        elif 'dataset' in node:  # RepeatDataset, ClassBalancedDataset
            _collect_tasks(node['dataset'], tasks)
        else:
            task = dataset_task(node)
            if task is not None:
                tasks.append(task)


def trained_tasks(cfg: Any) -> Optional[Tuple[str, ...]]:
    """The tasks of a config's training data.

    PSALM's tasks are data: a checkpoint can do what its training
    dataloader's sub-datasets asked of it. A sub-dataset of the top
    concatenation that the ``MultiTaskBatchSampler`` never draws (its
    ``task_ratios`` entry is 0) does not count.

    Args:
        cfg (Config | dict): A config (its ``train_dataloader``).

    Returns:
        tuple[str] | None: The tasks in config order, or None when the
        config has no training dataloader.
    """
    loader = cfg.get('train_dataloader') if cfg is not None else None
    if not loader or not loader.get('dataset'):
        return None
    dataset = loader['dataset']
    ratios = (loader.get('batch_sampler') or {}).get('task_ratios')
    children = dataset.get('datasets') if isinstance(dataset, dict) else None
    if ratios is not None and isinstance(children, (list, tuple)) and len(
            ratios) == len(children):
        dataset = [d for d, r in zip(children, ratios) if float(r) > 0]
    tasks: List[str] = []
    _collect_tasks(dataset, tasks)
    return tuple(dict.fromkeys(tasks)) or None


def shapesworld_examples(data_root: str = 'data/shapesworld',
                         num: int = 4) -> List[DemoExample]:
    """Example rows from the ShapesWorld val split, when it is generated.

    The first images get, in turn, a referring expression (the colour and
    shape of an object no other object of the image shares), a click
    (interactive), the category list (panoptic) and a question of the VQA
    val file.

    Args:
        data_root (str): Root of the ShapesWorld tree
            (``tools/dataset_converters/generate_shapesworld.py``).
        num (int): Number of examples.

    Returns:
        list[DemoExample]: The examples ([] without the val images).
    """
    data_root = _repo_path(data_root)
    image_dir = osp.join(data_root, 'coco', 'val2017')
    if not osp.isdir(image_dir):
        return []
    names = sorted(n for n in os.listdir(image_dir)
                   if n.lower().endswith(('.jpg', '.jpeg', '.png')))[:num]
    instances = _load_json(
        osp.join(data_root, 'coco', 'annotations',
                 'instances_val2017.json'))
    panoptic = _load_json(
        osp.join(data_root, 'coco', 'annotations', 'panoptic_val2017.json'))
    questions = _load_json(osp.join(data_root, 'vqa', 'vqav2_val.json'))
    image_ids = {img['file_name']: img['id']
                 for img in (instances or {}).get('images', [])}
    examples = []
    for index, name in enumerate(names):
        path = osp.join(image_dir, name)
        image_id = image_ids.get(name)
        kind = ('referring', 'interactive', 'panoptic', 'vqa')[index % 4]
        example = DemoExample(path, 'interactive', '',
                              'click an object')
        if kind == 'referring' and instances and image_id is not None:
            text = _unique_object_text(instances['annotations'], image_id)
            if text:
                example = DemoExample(path, 'referring', text, text)
        elif kind == 'panoptic' and panoptic:
            text = ', '.join(c['name'] for c in panoptic['categories'])
            example = DemoExample(path, 'panoptic', text, 'all categories')
        elif kind == 'vqa' and questions and image_id is not None:
            asked = [q['question'] for q in questions
                     if q.get('image_id') == image_id]
            if asked:
                example = DemoExample(path, 'vqa', asked[-1], asked[-1])
        examples.append(example)
    return examples


def _load_json(path: str) -> Any:
    return mmengine.load(path) if osp.isfile(path) else None


def _unique_object_text(annotations: List[dict],
                        image_id: int) -> Optional[str]:
    """'the <colour> <shape>' of the largest object of an image whose
    colour and shape no other object there has."""
    objects = [a['shapesworld'] for a in annotations
               if a['image_id'] == image_id and 'shapesworld' in a]
    keys = [(o.get('colour'), o.get('shape')) for o in objects]
    unique = [o for o, k in zip(objects, keys)
              if keys.count(k) == 1 and all(k)]
    if not unique:
        return None
    best = max(unique, key=lambda o: o.get('area', 0))
    return f'the {best["colour"]} {best["shape"]}'


# ----------------------------------------------------------------------
# prompts drawn on the image
# ----------------------------------------------------------------------
def draw_clicks(image: np.ndarray, clicks: Sequence[Sequence[float]],
                visual: str) -> np.ndarray:
    """Draw the clicks of a visual prompt on the image.

    Args:
        image (np.ndarray): ``(H, W, 3)`` uint8 RGB image.
        clicks (Sequence): ``(x, y)`` clicks.
        visual (str): ``'point'`` (dots), ``'box'`` (a corner, then the
            rectangle of the two corners) or ``'scribble'`` (the polyline).

    Returns:
        np.ndarray: A new ``(H, W, 3)`` uint8 picture.
    """
    canvas = np.ascontiguousarray(image.copy())
    radius = max(3, round(min(canvas.shape[:2]) / 64))
    points = [(int(round(x)), int(round(y))) for x, y in clicks]
    if visual == 'box' and len(points) == 2:
        cv2.rectangle(canvas, points[0], points[1], _CLICK_EDGE, 3)
        cv2.rectangle(canvas, points[0], points[1], _CLICK_COLOR, 1)
    elif visual == 'scribble' and len(points) > 1:
        line = np.int32(points).reshape(-1, 1, 2)
        cv2.polylines(canvas, [line], False, _CLICK_EDGE, 4, cv2.LINE_AA)
        cv2.polylines(canvas, [line], False, _CLICK_COLOR, 2, cv2.LINE_AA)
    for point in points:
        cv2.circle(canvas, point, radius + 1, _CLICK_EDGE, -1, cv2.LINE_AA)
        cv2.circle(canvas, point, radius, _CLICK_COLOR, -1, cv2.LINE_AA)
    return canvas


def painted_mask(editor_value: Any,
                 shape: Tuple[int, int]) -> Optional[np.ndarray]:
    """The region painted in the Gradio image editor.

    Args:
        editor_value (dict | None): The editor's value (``layers``: RGBA
            arrays; painted pixels have a non-zero alpha).
        shape (tuple[int, int]): ``(H, W)`` of the image.

    Returns:
        np.ndarray | None: ``(H, W)`` bool mask, None when nothing is
        painted.
    """
    layers = (editor_value or {}).get('layers') or []
    mask = np.zeros(shape, dtype=bool)
    for layer in layers:
        if layer is None:
            continue
        layer = np.asarray(layer)
        alpha = layer[..., 3] if layer.ndim == 3 and layer.shape[-1] == 4 \
            else (layer.max(axis=-1) if layer.ndim == 3 else layer)
        painted = (alpha > 0).astype(np.uint8)
        if painted.shape != shape:  # editor canvas of another size
            painted = cv2.resize(painted, (shape[1], shape[0]),
                                 interpolation=cv2.INTER_NEAREST)
        mask |= painted.astype(bool)
    return mask if mask.any() else None


def _parse_categories(text: str) -> List[str]:
    """'a, b; c' (or one per line) -> unique names in order."""
    for separator in (';', '\n'):
        text = text.replace(separator, ',')
    return list(dict.fromkeys(n.strip() for n in text.split(',')
                              if n.strip()))


def _literal(node: ast.AST) -> Any:
    """The value of a config expression made of literals and ``dict(...)``
    calls; raises ValueError for anything else (nothing is executed)."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
            and node.func.id == 'dict' and not node.args \
            and all(k.arg for k in node.keywords):
        return {k.arg: _literal(k.value) for k in node.keywords}
    if isinstance(node, ast.Dict):
        return {
            _literal(key): _literal(value)
            for key, value in zip(node.keys, node.values)
        }
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(e) for e in node.elts]
    return ast.literal_eval(node)


def _literal_assignment(text: str, name: str) -> Any:
    """The value of ``name = ...`` in a dumped config text (None when it is
    missing or not made of literals). The text is parsed, never run: it
    comes from a checkpoint."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return None
    for statement in tree.body:
        if isinstance(statement, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == name
                for t in statement.targets):
            try:
                return _literal(statement.value)
            except (ValueError, TypeError, SyntaxError):
                return None
    return None


# ----------------------------------------------------------------------
# the model side
# ----------------------------------------------------------------------
class _DemoInferencer(PSALMInferencer):
    """:class:`PSALMInferencer` that keeps the checkpoint's ``meta``."""

    #: ``meta`` of the loaded checkpoint (set while loading it)
    checkpoint_meta: Optional[Dict[str, Any]] = None

    def _load_weights_to_model(self, model, checkpoint, cfg) -> None:
        meta = (checkpoint or {}).get('meta') or {}
        self.checkpoint_meta = dict(meta) if isinstance(meta, dict) else {}
        super()._load_weights_to_model(model, checkpoint, cfg)


class PSALMWebDemo:
    """The model behind the web page: one image encoded once, many prompts.

    Args:
        config (str | Config): Model config (also read for its training
            data when the checkpoint has no config in its meta).
        checkpoint (str): Checkpoint path.
        device (str, optional): e.g. ``'cpu'`` or ``'cuda:0'``; CUDA when
            available by default.
        tasks (Sequence[str], optional): The trained tasks; by default
            read from the checkpoint's config (``meta['cfg']``), else from
            ``config``'s ``train_dataloader``.
        strict_tasks (bool): Refuse the tasks the checkpoint was not
            trained on (zero-shot tasks of a trained base task always run,
            with a note). Defaults to True.
        cache_size (int): Encoded images kept (LRU). Defaults to 4.
    """

    def __init__(self,
                 config: Any,
                 checkpoint: str,
                 device: Optional[str] = None,
                 tasks: Optional[Sequence[str]] = None,
                 strict_tasks: bool = True,
                 cache_size: int = 4) -> None:
        if cache_size < 1:
            raise ValueError(f'cache_size must be >= 1, got {cache_size}')
        if isinstance(config, str):
            config = _repo_path(config)
        self.inferencer = _DemoInferencer(config, checkpoint, device=device)
        self.checkpoint = checkpoint
        self.strict_tasks = strict_tasks
        self.cache_size = cache_size
        self._cache: 'collections.OrderedDict[str, Any]' = \
            collections.OrderedDict()
        self._lock = threading.RLock()
        #: Number of images encoded (Swin + projector + pixel decoder).
        self.encode_count = 0
        if tasks is not None:
            unknown = sorted(set(tasks) - set(TASKS) - {'vos', 'caption'})
            if unknown:
                raise ValueError(f'unknown tasks {unknown}; PSALM tasks are '
                                 f'{", ".join(TASKS)}')
            self.trained, self.tasks_source = tuple(tasks), 'the given tasks'
        else:
            self.trained, self.tasks_source = self._find_trained_tasks()

    def _find_trained_tasks(self) -> Tuple[Optional[Tuple[str, ...]], str]:
        """Trained tasks and where they were read."""
        meta_cfg = (self.inferencer.checkpoint_meta or {}).get('cfg')
        if isinstance(meta_cfg, str):
            loader = _literal_assignment(meta_cfg, 'train_dataloader')
            tasks = trained_tasks(dict(train_dataloader=loader)) \
                if isinstance(loader, dict) else None
            if tasks:
                return tasks, 'the checkpoint\'s training config'
        tasks = trained_tasks(self.inferencer.cfg)
        if tasks:
            return tasks, 'the config\'s train_dataloader'
        return None, 'unknown'

    # -- tasks ---------------------------------------------------------
    def task_note(self, task: str) -> str:
        """Why a task may not work, or '' when it was trained.

        Raises:
            DemoError: For an unknown task, or (``strict_tasks``) a task the
                checkpoint was not trained on and cannot run zero-shot.
        """
        if task not in TASKS:
            raise DemoError(f'unknown task {task!r}; choose one of '
                            f'{", ".join(TASKS)}')
        if self.trained is None or task in self.trained:
            return ''
        trained = ', '.join(self.trained)
        base = ZERO_SHOT_BASE.get(task)
        if base in self.trained:
            return (f'zero-shot: this checkpoint was not trained on '
                    f'{task!r}, only on {trained}; PSALM runs it from '
                    f'{base!r}, results may be poorer')
        message = (f'this checkpoint was not trained on the {task!r} task '
                   f'(its training data, from {self.tasks_source}, has '
                   f'{trained}); choose one of those tasks or load a '
                   f'checkpoint trained with {task} data')
        if self.strict_tasks:
            raise DemoError(message)
        return message

    def task_label(self, task: str) -> str:
        """Menu label of a task: marked when untrained or zero-shot."""
        try:
            note = self.task_note(task)
        except DemoError:
            return f'{task} (not trained)'
        return f'{task} (zero-shot)' if note.startswith('zero-shot') \
            else (f'{task} (not trained)' if note else task)

    # -- images --------------------------------------------------------
    @staticmethod
    def image_key(image: np.ndarray) -> str:
        """A digest of an RGB image (its cache key)."""
        import hashlib
        digest = hashlib.sha1(np.ascontiguousarray(image).tobytes())
        return f'{image.shape[1]}x{image.shape[0]}-{digest.hexdigest()}'

    def set_image(self, image: np.ndarray) -> Tuple[str, bool]:
        """Encode an RGB image unless it is cached.

        Args:
            image (np.ndarray): ``(H, W, 3)`` uint8 RGB (or ``(H, W)``).

        Returns:
            tuple[str, bool]: The image key and whether it was encoded now.
        """
        image = self.check_image(image)
        key = self.image_key(image)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return key, False
            # the encoded image (features, LLM prefixes), kept to switch
            # back without encoding again
            self._cache[key] = self.inferencer.set_image(
                np.ascontiguousarray(image[..., ::-1]))
            self.encode_count += 1
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
            return key, True

    @staticmethod
    def check_image(image: Any) -> np.ndarray:
        """An RGB(A) or grey image as ``(H, W, 3)`` uint8 RGB.

        Raises:
            DemoError: For no image or an array of another shape.
        """
        if image is None:
            raise DemoError('no image: upload one or pick an example')
        image = np.asarray(image)
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=-1)
        if image.ndim != 3 or image.shape[-1] not in (3, 4):
            raise DemoError(f'cannot use an image of shape {image.shape}; '
                            'upload an RGB picture')
        return image[..., :3].astype(np.uint8)

    # -- prompts -------------------------------------------------------
    def prompt_kwargs(self,
                      task: str,
                      shape: Tuple[int, int],
                      text: str = '',
                      clicks: Sequence[Sequence[float]] = (),
                      visual: str = 'point',
                      mask: Optional[np.ndarray] = None) -> Dict[str, Any]:
        """The :meth:`PSALMInferencer.predict` prompt of the page's inputs.

        Raises:
            DemoError: For an empty prompt or one outside the image.
        """
        kind = TASK_PROMPTS.get(task)
        text = (text or '').strip()
        if kind == 'text':
            if not text:
                raise DemoError('the prompt is empty: type a referring '
                                'expression, e.g. "the red triangle"')
            return dict(text=text, task=task)
        if kind == 'categories':
            names = _parse_categories(text)
            if not names:
                raise DemoError('the prompt is empty: type the categories, '
                                'comma-separated, e.g. "circle, square, sky"')
            return dict(categories=names, task=task)
        if kind == 'question':
            if not text:
                raise DemoError('the prompt is empty: type a question, '
                                'e.g. "How many circles are there?"')
            return dict(question=text, task=task)
        if visual not in VISUAL_PROMPTS:
            raise DemoError(f'unknown visual prompt {visual!r}; choose one '
                            f'of {", ".join(VISUAL_PROMPTS)}')
        height, width = shape
        if visual == 'mask':
            if mask is None or not np.asarray(mask).any():
                raise DemoError('the prompt is empty: paint the object with '
                                'the brush of the Paint editor, then Run')
            mask = np.asarray(mask).astype(bool)
            if mask.shape != (height, width):
                raise DemoError(f'the painted mask is {mask.shape[1]}x'
                                f'{mask.shape[0]} but the image is {width}x'
                                f'{height}')
            return dict(mask=mask, task=task)
        needed = dict(point=1, box=2, scribble=2)[visual]
        if len(clicks) < needed:
            hint = dict(
                point='click on the object',
                box='click two opposite corners of a box around the object',
                scribble='click at least two points along the object, '
                'then Run')[visual]
            raise DemoError(f'the {visual} prompt is empty: {hint}')
        for x, y in clicks:
            if not (0 <= x < width and 0 <= y < height):
                raise DemoError(f'the click ({x:g}, {y:g}) lies outside the '
                                f'{width}x{height} image')
        points = [(float(x), float(y)) for x, y in clicks]
        if visual == 'point':
            return dict(points=points, task=task)
        if visual == 'scribble':
            return dict(scribble=points, task=task)
        (x1, y1), (x2, y2) = points[-2:]
        left, right = sorted((x1, x2))
        top, bottom = sorted((y1, y2))
        # the clicked pixels are inside the box: edges around them
        return dict(box=(left, top, right + 1, bottom + 1), task=task)

    def predict(self,
                image: np.ndarray,
                task: str,
                text: str = '',
                clicks: Sequence[Sequence[float]] = (),
                visual: str = 'point',
                mask: Optional[np.ndarray] = None,
                score_thr: float = 0.3) -> DemoResult:
        """Run one prompt of the page on an image (encoded once).

        Args:
            image (np.ndarray): ``(H, W, 3)`` uint8 RGB image.
            task (str): One of :data:`TASKS`.
            text (str): Referring expression, comma-separated categories or
                question, by task.
            clicks (Sequence): ``(x, y)`` clicks of a point, box or
                scribble prompt (``interactive``).
            visual (str): One of :data:`VISUAL_PROMPTS` (``interactive``).
            mask (np.ndarray, optional): ``(H, W)`` painted mask (``visual=
                'mask'``).
            score_thr (float): Instance masks scored lower are not drawn
                (the single mask of a referring or interactive prompt is
                always drawn).

        Returns:
            DemoResult: The overlay, answer and result.

        Raises:
            DemoError: For an empty prompt, a prompt outside the image, or
                a task the checkpoint cannot run.
        """
        image = self.check_image(image)
        note = self.task_note(task)
        prompt = self.prompt_kwargs(task, image.shape[:2], text, clicks,
                                    visual, mask)
        thr = 0.0 if task in _SINGLE_MASK_TASKS else float(score_thr)
        with self._lock:
            key, encoded = self.set_image(image)
            self.inferencer.use_image(self._cache[key])
            start = time.perf_counter()
            try:
                output = self.inferencer.predict(
                    pred_score_thr=thr, mask_format='array', **prompt)
            except ValueError as error:  # what parse_prompt refuses
                raise DemoError(str(error)) from error
            seconds = time.perf_counter() - start
        pred = output['predictions']
        return self._result(pred, output['visualization'], task, prompt,
                            thr, seconds, encoded, note)

    @staticmethod
    def _prompt_record(prompt: Dict[str, Any]) -> Dict[str, Any]:
        """The prompt, json-ready (a mask prompt as RLE)."""
        record = {}
        for key, value in prompt.items():
            if key == 'mask':
                value = encode_rle(value)
            elif isinstance(value, tuple):
                value = list(value)
            record[key] = value
        return record

    def _result(self, pred: Dict[str, Any], picture: np.ndarray, task: str,
                prompt: Dict[str, Any], thr: float, seconds: float,
                encoded: bool, note: str) -> DemoResult:
        reuse = 'image encoded now' if encoded else 'image features reused'
        prompt_record = self._prompt_record(prompt)
        if 'answer' in pred:
            answer = pred['answer']
            return DemoResult(
                picture=picture,
                answer=answer,
                status=(f'{task}: answered in {seconds:.2f} s ({reuse})'),
                summary=dict(task=task, answer=answer),
                prediction=dict(prompt=prompt_record, **pred),
                warning=note)
        masks = pred['masks']
        items = []
        for mask, name, score in zip(masks, pred['label_names'],
                                     pred['scores']):
            if score is not None and score < thr:
                continue
            ys, xs = np.nonzero(mask)
            box = [int(xs.min()), int(ys.min()), int(xs.max()) + 1,
                   int(ys.max()) + 1] if len(xs) else None
            items.append(
                dict(label=name,
                     score=None if score is None else round(score, 4),
                     area=int(mask.sum()),
                     box=box))
        prediction = dict(prompt=prompt_record, **pred)
        prediction['masks'] = [encode_rle(m) for m in masks]
        shown = len(items)
        status = (f'{task}: {shown} mask{"s" * (shown != 1)} in '
                  f'{seconds:.2f} s ({reuse})')
        if shown == 0:
            status += ('; nothing found' if task != 'gres' else
                       '; no target (gres may answer "nothing")')
        return DemoResult(
            picture=picture,
            status=status,
            summary=dict(task=task, masks=items),
            prediction=prediction,
            warning=note)


# ----------------------------------------------------------------------
# the page
# ----------------------------------------------------------------------
_TEXT_LABELS = dict(
    text=('Referring expression', 'e.g. the red triangle left of the ring'),
    categories=('Categories (comma-separated)',
                'e.g. circle, square, triangle, sky, grass'),
    question=('Question', 'e.g. How many circles are there?'),
    visual=('Text (not used: click or paint on the image)', ''))
_VISUAL_HINTS = dict(
    point='Click on the object (every click adds a point of the same '
    'object).',
    box='Click two opposite corners of a box around the object.',
    scribble='Click the vertices of a line along the object, then Run.',
    mask='Paint the object in the Paint editor, then Run.')


class _ClickStore:
    """The clicks of the current visual prompt of each page session.

    Kept on the server (not in a ``gr.State``, whose value an event reads
    when it is triggered): clicks made while an earlier one is still running
    are queued and each one sees the clicks before it.

    Args:
        max_sessions (int): Sessions kept (least recently used dropped).
    """

    def __init__(self, max_sessions: int = 1000) -> None:
        self._clicks: 'collections.OrderedDict[str, List[List[float]]]' = \
            collections.OrderedDict()
        self._lock = threading.Lock()
        self.max_sessions = max_sessions

    def get(self, session: str) -> List[List[float]]:
        with self._lock:
            return list(self._clicks.get(session, []))

    def set(self, session: str, clicks: List[List[float]]) -> None:
        with self._lock:
            self._clicks[session] = list(clicks)
            self._clicks.move_to_end(session)
            while len(self._clicks) > self.max_sessions:
                self._clicks.popitem(last=False)


def build_app(demo: PSALMWebDemo,
              examples: Sequence[DemoExample] = (),
              title: str = 'PSALM demo') -> Any:
    """The Gradio page of a :class:`PSALMWebDemo`.

    Page state, per browser session: the RGB image (encoded when it is
    loaded) and the clicks of the current visual prompt; prompts only run
    :meth:`PSALMWebDemo.predict`.

    Args:
        demo (PSALMWebDemo): The model side.
        examples (Sequence[DemoExample]): Example rows; the first one is
            loaded and run when the page opens.
        title (str): Page title.

    Returns:
        gradio.Blocks: The app; launch it with ``app.queue().launch(...)``.
    """
    os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')
    import gradio as gr

    examples = list(examples)
    first = examples[0] if examples else DemoExample('', 'referring')
    result_dir = tempfile.mkdtemp(prefix='psalm_web_demo_')
    atexit.register(shutil.rmtree, result_dir, True)
    counter = itertools.count(1)
    store = _ClickStore()
    keep = gr.update()

    def prompt_widgets(task: str, visual: str) -> Tuple[Any, Any, Any]:
        """Updates of (text box, visual radio, paint editor) for a task."""
        label, placeholder = _TEXT_LABELS[TASK_PROMPTS[task]]
        interactive = task == 'interactive'
        return (gr.update(label=label, placeholder=placeholder),
                gr.update(visible=interactive, value=visual),
                gr.update(visible=interactive and visual == 'mask'))

    def failure(message: str) -> Tuple[Any, ...]:
        """Run outputs of a refused prompt: a toast and the status."""
        gr.Warning(message)
        return keep, '', f'**Error:** {message}', keep, keep

    def run_prompt(image: Optional[np.ndarray], task: str, text: str,
                   clicks: List[List[float]], visual: str, editor: Any,
                   score_thr: float) -> Tuple[Any, ...]:
        """Outputs: result picture, answer, status, summary, json file."""
        try:
            if image is None:
                raise DemoError('no image: upload one or pick an example')
            mask = painted_mask(editor, image.shape[:2]) \
                if task == 'interactive' and visual == 'mask' else None
            result = demo.predict(image, task, text, clicks, visual, mask,
                                  score_thr)
        except DemoError as error:
            return failure(str(error))
        number = next(counter)
        path = osp.join(result_dir, f'psalm_result_{number}.json')
        with open(path, 'w') as f:
            json.dump(result.prediction, f)
        status = f'Run {number}. {result.status}'
        if result.warning:
            status += f'  \n*Note: {result.warning}*'
        return (result.picture, result.answer, status, result.summary, path)

    def on_run(image, task, text, visual, editor, score_thr,
               request: gr.Request):
        return run_prompt(image, task, text, store.get(request.session_hash),
                          visual, editor, score_thr)

    def load_image(image: Optional[np.ndarray],
                   session: str) -> Tuple[Any, ...]:
        """Outputs: image state, canvas, editor, then the run outputs
        (cleared)."""
        store.set(session, [])
        if image is None:
            return (None, None, None, None, '',
                    'Upload an image or pick an example.', None, None)
        try:
            image = demo.check_image(image)
            start = time.perf_counter()
            _, encoded = demo.set_image(image)
        except DemoError as error:
            return (None, keep, None) + failure(str(error))
        height, width = image.shape[:2]
        how = (f'encoded in {time.perf_counter() - start:.2f} s'
               if encoded else 'features cached')
        editor = dict(background=image, layers=[], composite=image)
        return (image, image, editor, None, '',
                f'Image {width}x{height} ready ({how}): type a prompt or '
                'click on the image.', None, None)

    def on_upload(image, request: gr.Request):
        return load_image(image, request.session_hash)

    def on_remove(request: gr.Request):
        return load_image(None, request.session_hash)

    def on_example(image, task, text, request: gr.Request):
        """Load an example (and run its text prompt).

        Outputs: the load outputs, then text box and visual radio.
        """
        loaded = list(load_image(image, request.session_hash))
        text_update, visual_update, _ = prompt_widgets(task, 'point')
        if isinstance(loaded[2], dict):  # the editor, hidden (point)
            loaded[2] = gr.update(value=loaded[2], visible=False)
        if loaded[0] is not None and TASK_PROMPTS[task] == 'visual':
            loaded[5] = _VISUAL_HINTS['point']
        elif loaded[0] is not None:
            loaded[3:] = run_prompt(loaded[0], task, text, [], 'point', None,
                                    0.3)
        return tuple(loaded) + (text_update, visual_update)

    def on_click(image, task, visual, text, editor, score_thr,
                 evt: gr.SelectData, request: gr.Request):
        """A click on the image: a point, a box corner or a scribble
        vertex; points and finished boxes run at once.

        Outputs: canvas, task, text, visual, editor, then the run outputs.
        """
        if image is None or evt.index is None or len(evt.index) != 2:
            message = ('no image: upload one or pick an example'
                       if image is None else
                       'the click lies outside the image')
            return (keep, ) * 5 + failure(message)
        session = request.session_hash
        clicks = store.get(session)
        if task != 'interactive':  # a click is a visual prompt
            task, clicks = 'interactive', []
        if visual == 'mask':
            visual, clicks = 'point', []
        if visual == 'box' and len(clicks) >= 2:
            clicks = []  # a third click starts a new box
        clicks.append([float(evt.index[0]), float(evt.index[1])])
        store.set(session, clicks)
        head = (draw_clicks(image, clicks, visual), task) + \
            prompt_widgets(task, visual)
        if visual == 'scribble' or (visual == 'box' and len(clicks) < 2):
            count = f'{len(clicks)} click{"s" * (len(clicks) != 1)}'
            todo = ('click the opposite corner' if visual == 'box' else
                    'click more vertices, then Run')
            return head + (keep, keep, f'{visual}: {count}; {todo}.', keep,
                           keep)
        return head + run_prompt(image, task, text, clicks, visual, editor,
                                 score_thr)

    def on_clear(image, request: gr.Request):
        """Outputs: canvas, editor, picture, answer, status."""
        store.set(request.session_hash, [])
        editor = None if image is None else dict(
            background=image, layers=[], composite=image)
        return image, editor, None, '', 'Prompts cleared.'

    def on_task(task, visual):
        """Outputs: text, visual radio, editor, status."""
        try:
            note = demo.task_note(task)
        except DemoError as error:
            note = f'**Error:** {error}'
        hint = _VISUAL_HINTS[visual] if task == 'interactive' else \
            f'Type the {_TEXT_LABELS[TASK_PROMPTS[task]][0].lower()}, ' \
            'then Run.'
        return prompt_widgets(task, visual) + (
            f'{hint}  \n*Note: {note}*' if note else hint, )

    def on_visual(image, visual, request: gr.Request):
        """Outputs: canvas, editor, status."""
        store.set(request.session_hash, [])
        return (image, gr.update(visible=visual == 'mask'),
                _VISUAL_HINTS[visual])

    trained = ', '.join(demo.trained) if demo.trained else 'unknown'
    checkpoint = osp.abspath(demo.checkpoint)
    if checkpoint.startswith(os.getcwd() + os.sep):
        checkpoint = osp.relpath(checkpoint)
    label, placeholder = _TEXT_LABELS[TASK_PROMPTS[first.task]]
    with gr.Blocks(title=title, analytics_enabled=False) as app:
        gr.Markdown(
            f'## {title}\nUpload an image or pick an example, choose a task, '
            'then type a prompt or click on the image (points run at once; '
            'a box after its second corner). Checkpoint: '
            f'`{checkpoint}`, trained on: {trained}.')
        image_state = gr.State(None)
        with gr.Row():
            with gr.Column():
                canvas = gr.Image(
                    value=first.image or None,
                    label='Image: click for points, box corners or '
                    'scribble vertices',
                    type='numpy',
                    sources=['upload', 'clipboard'],
                    format='png',
                    elem_id='psalm-canvas')
                editor = gr.ImageEditor(
                    label='Paint (mask prompt)',
                    type='numpy',
                    sources=(),
                    transforms=(),
                    layers=False,
                    brush=gr.Brush(colors=['#ff3030'], color_mode='fixed'),
                    format='png',
                    visible=False,
                    elem_id='psalm-paint')
                with gr.Row():
                    task = gr.Dropdown(
                        [(demo.task_label(t), t) for t in TASKS],
                        value=first.task, label='Task',
                        elem_id='psalm-task')
                    visual = gr.Radio(
                        list(VISUAL_PROMPTS), value='point',
                        label='Visual prompt',
                        visible=first.task == 'interactive',
                        elem_id='psalm-visual')
                text = gr.Textbox(
                    value=first.text, label=label, placeholder=placeholder,
                    elem_id='psalm-text')
                with gr.Row():
                    run = gr.Button(
                        'Run', variant='primary', elem_id='psalm-run')
                    clear = gr.Button('Clear prompts', elem_id='psalm-clear')
            with gr.Column():
                result = gr.Image(
                    label='Result', type='numpy', format='png',
                    interactive=False, elem_id='psalm-result')
                status = gr.Markdown(
                    'Upload an image or pick an example.',
                    elem_id='psalm-status')
                answer = gr.Textbox(
                    label='Answer', interactive=False,
                    elem_id='psalm-answer')
                score_thr = gr.Slider(
                    0.0, 1.0, value=0.3, step=0.05,
                    label='Score threshold (instance masks)')
                with gr.Accordion('Result details', open=False):
                    summary = gr.JSON(
                        label='Masks / answer', elem_id='psalm-summary')
                    result_file = gr.File(
                        label='Result json (RLE masks)', interactive=False,
                        elem_id='psalm-file')

        run_outputs = [result, answer, status, summary, result_file]
        load_outputs = [image_state, canvas, editor] + run_outputs
        example_outputs = load_outputs + [text, visual]
        if examples:
            gr.Examples(
                examples=[[e.image, e.task, e.text] for e in examples],
                inputs=[canvas, task, text],
                outputs=example_outputs,
                fn=on_example,
                run_on_click=True,
                cache_examples=False,
                example_labels=[
                    f'{e.task}: {e.label}' if e.label else e.task
                    for e in examples
                ],
                label='Examples')
            app.load(
                on_example, inputs=[canvas, task, text],
                outputs=example_outputs)
        canvas.upload(on_upload, inputs=[canvas], outputs=load_outputs)
        canvas.clear(on_remove, outputs=load_outputs)
        canvas.select(
            on_click,
            inputs=[image_state, task, visual, text, editor, score_thr],
            outputs=[canvas, task, text, visual, editor] + run_outputs,
            trigger_mode='multiple')
        run_inputs = [image_state, task, text, visual, editor, score_thr]
        run.click(on_run, inputs=run_inputs, outputs=run_outputs)
        text.submit(on_run, inputs=run_inputs, outputs=run_outputs)
        clear.click(
            on_clear, inputs=[image_state],
            outputs=[canvas, editor, result, answer, status])
        task.input(
            on_task, inputs=[task, visual],
            outputs=[text, visual, editor, status])
        visual.input(
            on_visual, inputs=[image_state, visual],
            outputs=[canvas, editor, status])
    app.psalm_result_dir = result_dir
    return app
