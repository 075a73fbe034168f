# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""PSALM inference on images: mmdet ``DetInferencer`` style, plus a
SAM-like "set the image once, prompt many times" API.

Shape legend: H, W = original image size; h, w = resized image size; N =
predicted masks; K = visual-prompt regions.

Samples are built as the evaluation pipelines build them: load the image,
``Resize`` (long side to the model's fixed input size, aspect kept), for
visual prompts :class:`LoadVisualPrompts` (dilation) and
:class:`ResizeVisualPrompts`, then :class:`PackPSALMInputs`; the model's data
preprocessor pads and normalises.
"""
import copy
import os.path as osp
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import mmcv
import numpy as np
import torch
from mmcv.transforms import Compose
from mmengine.config import ConfigDict
from mmengine.dataset import pseudo_collate
from mmengine.infer import BaseInferencer
from mmengine.infer.infer import ModelType

from mmdet.evaluation.functional import INSTANCE_OFFSET
from mmdet.registry import TRANSFORMS
from mmdet.structures import DetDataSample
from mmdet.utils import register_all_modules
from ..datasets.coco_interactive import encode_rle
from ..datasets.transforms import PSALM_META_KEYS
from ..models.psalm import ImageCache
from ..visualization.overlay import (draw_answer, draw_masks,
                                     draw_prompt_outlines)
from .prompts import PromptRequest, parse_prompt, visual_prompt_instances

__all__ = ['PSALMInferencer', 'ImageState']

ImageType = Union[str, np.ndarray]
#: Repository root: relative tokenizer paths of the configs are resolved
#: against it when they do not exist relative to the working directory.
REPO_ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..', '..'))
_IMAGE_META_KEYS = ('img_path', 'ori_shape', 'img_shape', 'scale_factor')


@dataclass
class ImageState:
    """The image of :meth:`PSALMInferencer.set_image`."""
    source: ImageType
    results: Dict[str, Any]  # loaded and resized pipeline results
    cache: ImageCache


class PSALMInferencer(BaseInferencer):
    """Segment (or answer questions about) images with PSALM prompts.

    Call it on images with exactly one kind of prompt::

        inferencer = PSALMInferencer('configs/...py', 'model.pth')
        result = inferencer('demo.jpg', text='the dog on the left')
        result = inferencer('demo.jpg', categories=['person', 'dog'])
        result = inferencer('demo.jpg', points=[(120, 80)])
        result = inferencer('demo.jpg', question='What is the dog doing?')

    or set one image and prompt it many times; the image features and the
    LLM prefix are computed once (:meth:`PSALM.encode_image`)::

        inferencer.set_image('demo.jpg')
        for text in ('the dog', 'the man', 'the red car'):
            result = inferencer.predict(text=text)

    Args:
        model (str | dict | Config): A config path or config whose ``model``
            is a :class:`PSALM`.
        weights (str, optional): Checkpoint path. Without it the model is
            randomly initialised (a warning is issued).
        device (str, optional): Device, e.g. ``'cpu'`` or ``'cuda:0'``;
            defaults to CUDA when available.
        scope (str): Registry scope. Defaults to ``'mmdet'``.
        show_progress (bool): Show a progress bar in :meth:`__call__`.
    """

    preprocess_kwargs: set = {'prompt'}
    forward_kwargs: set = set()
    visualize_kwargs: set = {'show', 'wait_time', 'pred_score_thr', 'alpha'}
    postprocess_kwargs: set = {'mask_format'}

    def __init__(self,
                 model: ModelType,
                 weights: Optional[str] = None,
                 device: Optional[str] = None,
                 scope: str = 'mmdet',
                 show_progress: bool = False) -> None:
        import projects.psalm  # noqa: F401  (registers the PSALM modules)
        register_all_modules(init_default_scope=True)
        if isinstance(model, str) and not osp.isfile(model):
            raise FileNotFoundError(f'config file {model!r} does not exist')
        if weights is not None and not osp.isfile(weights):
            raise FileNotFoundError(f'checkpoint {weights!r} does not exist')
        self._image: Optional[ImageState] = None
        super().__init__(
            model=model,
            weights=weights,
            device=device,
            scope=scope,
            show_progress=show_progress)

    # ------------------------------------------------------------------
    # set-up
    # ------------------------------------------------------------------
    def _init_model(self, cfg: ConfigDict, weights: Optional[str],
                    device: str = 'cpu') -> torch.nn.Module:
        """Build the model; a relative tokenizer path that does not exist
        from the working directory is taken relative to the repository."""
        language_model = cfg.model.get('language_model', {})
        tokenizer = language_model.get('tokenizer')
        if (isinstance(tokenizer, str) and not osp.isabs(tokenizer)
                and not osp.isdir(tokenizer)
                and osp.isdir(osp.join(REPO_ROOT, tokenizer))):
            language_model['tokenizer'] = osp.join(REPO_ROOT, tokenizer)
        return super()._init_model(cfg, weights, device)

    def _init_pipeline(self, cfg: ConfigDict) -> Compose:
        """The image part of the test pipeline; the prompt parts are kept in
        ``self._prompt_pipelines``.

        ``Resize`` brings the long side to the model's fixed input size (the
        data preprocessor then pads), as every PSALM evaluation pipeline.
        """
        height, width = cfg.model.data_preprocessor.get(
            'fixed_size', (1024, 1024))
        build = TRANSFORMS.build
        pack = dict(type='PackPSALMInputs', meta_keys=PSALM_META_KEYS)
        self._prompt_pipelines = dict(
            visual=Compose([
                build(dict(type='LoadVisualPrompts')),
                build(dict(type='ResizeVisualPrompts', skip_empty=False)),
                build(pack)
            ]),
            other=Compose([build(pack)]))
        self._pack_image = build(
            dict(type='mmdet.PackDetInputs', meta_keys=_IMAGE_META_KEYS))
        return Compose([
            build(dict(type='mmdet.InferencerLoader')),
            build(
                dict(
                    type='mmdet.Resize', scale=(width, height),
                    keep_ratio=True))
        ])

    def _init_collate(self, cfg: ConfigDict) -> Callable:
        """mmengine's ``pseudo_collate`` (the data preprocessor stacks)."""
        return pseudo_collate

    def _init_visualizer(self, cfg: ConfigDict) -> None:
        """Pictures are drawn by :mod:`projects.psalm.visualization.overlay`;
        no mmengine visualizer is created."""
        return None

    # ------------------------------------------------------------------
    # inputs
    # ------------------------------------------------------------------
    def _load_image(self, image: ImageType) -> Dict[str, Any]:
        """Load and resize one image (path or ``(H, W, 3)`` BGR array)."""
        if isinstance(image, str):
            if not osp.isfile(image):
                raise FileNotFoundError(f'image file {image!r} does not '
                                        'exist')
            try:
                return self.pipeline(dict(img_path=image))
            except Exception as error:  # undecodable file
                raise ValueError(f'cannot read image {image!r}: '
                                 f'{type(error).__name__}: {error}') from error
        if isinstance(image, np.ndarray):
            if image.ndim == 2:
                image = np.repeat(image[..., None], 3, axis=-1)
            if image.ndim != 3 or image.shape[-1] != 3:
                raise ValueError('an image array must be (H, W, 3) BGR or '
                                 f'(H, W) grey, got shape {image.shape}')
            return self.pipeline(dict(img=image.astype(np.uint8)))
        raise TypeError('an image must be a file path or a numpy array, got '
                        f'{type(image).__name__}')

    def _check_text_length(self, request: PromptRequest) -> None:
        """Refuse a text that alone exceeds the LLM context (the model
        refuses any longer prompt too, counting the image and template)."""
        if request.kind == 'text':
            text = request.prompt['sentences'][0]
        elif request.kind == 'question':
            text = request.prompt['conversations'][0]['value']
        else:
            return
        limit = self.model.input_schema.max_length
        num_tokens = len(
            self.model.language_model.tokenizer(
                text, add_special_tokens=False, verbose=False)['input_ids'])
        if num_tokens >= limit:
            raise ValueError(f'the {request.kind} has {num_tokens} tokens and '
                             'exceeds the language model context of '
                             f'{limit} tokens (max_length, shared with the '
                             'image and the prompt template); shorten it')

    def _pack(self, results: Dict[str, Any],
              request: PromptRequest) -> Dict[str, Any]:
        """Add the prompt to loaded image results and pack them."""
        results = dict(results)  # keys are added, nothing is modified
        results['prompt'] = copy.deepcopy(request.prompt)
        if request.is_thing is not None:
            results['is_thing'] = list(request.is_thing)
        if request.prompt_type is not None:
            results.update(
                visual_prompt_instances(request,
                                        tuple(results['ori_shape'])))
            return self._prompt_pipelines['visual'](results)
        return self._prompt_pipelines['other'](results)

    def preprocess(self,
                   inputs: List[ImageType],
                   batch_size: int = 1,
                   prompt: Optional[PromptRequest] = None):
        """Build the batches of the images with the prompt.

        Args:
            inputs (list[str | np.ndarray]): Images.
            batch_size (int): Images per batch.
            prompt (PromptRequest): The prompt (:func:`parse_prompt`).

        Yields:
            dict: Collated ``inputs`` and ``data_samples``.
        """
        if not isinstance(prompt, PromptRequest):
            raise TypeError('preprocess needs prompt=parse_prompt(...), got '
                            f'{type(prompt).__name__}')
        packed = (self._pack(self._load_image(image), prompt)
                  for image in inputs)
        yield from map(self.collate_fn,
                       self._get_chunk_data(packed, batch_size))

    # ------------------------------------------------------------------
    # calls
    # ------------------------------------------------------------------
    def __call__(self,
                 inputs: Union[ImageType, Sequence[ImageType]],
                 text: Optional[str] = None,
                 categories: Optional[Sequence[str]] = None,
                 points: Optional[Sequence] = None,
                 box: Optional[Sequence] = None,
                 scribble: Optional[Sequence] = None,
                 mask: Any = None,
                 question: Optional[str] = None,
                 task: Optional[str] = None,
                 is_thing: Optional[Sequence[bool]] = None,
                 batch_size: int = 1,
                 return_datasamples: bool = False,
                 pred_score_thr: float = 0.3,
                 mask_format: str = 'rle',
                 show: bool = False,
                 wait_time: float = 0.) -> Dict[str, list]:
        """Run one prompt on images.

        Args:
            inputs (str | np.ndarray | Sequence): An image path, a
                ``(H, W, 3)`` BGR array, a folder, or a list of them.
            text (str, optional): Referring expression (task
                ``'referring'``; ``task='gres'`` allows an empty answer).
            categories (Sequence[str], optional): Class names, any
                vocabulary (task ``'panoptic'``, ``'semantic'`` or
                ``'instance'``; default panoptic).
            points (Sequence, optional): ``(x, y)`` clicks of one region, or
                a list of regions (task ``'interactive'``, one mask each).
            box (Sequence, optional): ``(x1, y1, x2, y2)``, or a list.
            scribble (Sequence, optional): A polyline ``[(x, y), ...]``, or a
                list of polylines.
            mask (np.ndarray | str | Sequence, optional): ``(H, W)`` mask or
                mask image path, or a list of them.
            question (str, optional): Visual question (task ``'vqa'``).
            task (str, optional): Task of the prompt (see above).
            is_thing (Sequence[bool], optional): Thing flags of the
                categories (default: all things).
            batch_size (int): Images per batch.
            return_datasamples (bool): Return the data samples instead of
                dicts as predictions.
            pred_score_thr (float): Masks with a lower score are not drawn.
            mask_format (str): ``'rle'`` (COCO RLE dicts, json-ready) or
                ``'array'`` (``(N, H, W)`` bool arrays).
            show (bool): Show the pictures in a window.
            wait_time (float): Seconds a shown picture stays.

        Returns:
            dict: ``predictions`` (per image, see :meth:`pred2dict`) and
            ``visualization`` (per image, ``(H, W, 3)`` uint8 RGB).
        """
        request = parse_prompt(text, categories, points, box, scribble, mask,
                               question, task, is_thing)
        self._check_text_length(request)
        return super().__call__(
            inputs,
            return_datasamples=return_datasamples,
            batch_size=batch_size,
            prompt=request,
            pred_score_thr=pred_score_thr,
            mask_format=mask_format,
            show=show,
            wait_time=wait_time)

    @property
    def is_image_set(self) -> bool:
        """bool: Whether :meth:`set_image` was called."""
        return self._image is not None

    @property
    def image_cache(self) -> ImageCache:
        """ImageCache: The cached features of the set image."""
        return self._state().cache

    def set_image(self, image: ImageType) -> ImageState:
        """Encode an image once for many :meth:`predict` calls.

        Runs Swin, the projector and the pixel decoder now; the LLM prefix
        of a task is computed at its first prompt and reused after.

        Args:
            image (str | np.ndarray): Image path or ``(H, W, 3)`` BGR array.

        Returns:
            ImageState: The encoded image; :meth:`use_image` switches back to
            it later without encoding again.
        """
        results = self._load_image(image)
        packed = self._pack_image(results)
        data = self.model.data_preprocessor(
            pseudo_collate([packed]), False)  # inputs [1, 3, H, W]
        self._image = ImageState(
            source=image,
            results=results,
            cache=self.model.encode_image(data['inputs']))
        return self._image

    def use_image(self, state: ImageState) -> None:
        """Make an image encoded earlier by :meth:`set_image` the current
        one (its features and LLM prefixes are reused)."""
        if not isinstance(state, ImageState):
            raise TypeError('use_image needs the ImageState returned by '
                            f'set_image, got {type(state).__name__}')
        self._image = state

    def reset_image(self) -> None:
        """Forget the image of :meth:`set_image`."""
        self._image = None

    def _state(self) -> ImageState:
        if self._image is None:
            raise RuntimeError('an image must be set with `.set_image(...)` '
                               'before `.predict(...)`')
        return self._image

    @torch.no_grad()
    def predict(self,
                text: Optional[str] = None,
                categories: Optional[Sequence[str]] = None,
                points: Optional[Sequence] = None,
                box: Optional[Sequence] = None,
                scribble: Optional[Sequence] = None,
                mask: Any = None,
                question: Optional[str] = None,
                task: Optional[str] = None,
                is_thing: Optional[Sequence[bool]] = None,
                return_datasamples: bool = False,
                pred_score_thr: float = 0.3,
                mask_format: str = 'rle',
                show: bool = False,
                wait_time: float = 0.) -> Dict[str, Any]:
        """Run one prompt on the image of :meth:`set_image`.

        Same prompts and options as :meth:`__call__`; the image is not
        encoded again (:meth:`PSALM.predict_prompts`).

        Returns:
            dict: ``predictions`` (one dict, or one data sample) and
            ``visualization`` (``(H, W, 3)`` uint8 RGB) of the image.
        """
        state = self._state()
        request = parse_prompt(text, categories, points, box, scribble, mask,
                               question, task, is_thing)
        self._check_text_length(request)
        packed = self._pack(state.results, request)
        data = self.model.data_preprocessor(pseudo_collate([packed]), False)
        preds = self.model.predict_prompts(state.cache, data['data_samples'])
        visualization = self.visualize([state.source],
                                       preds,
                                       show=show,
                                       wait_time=wait_time,
                                       pred_score_thr=pred_score_thr)
        results = self.postprocess(
            preds, visualization, return_datasamples, mask_format=mask_format)
        return dict(
            predictions=results['predictions'][0],
            visualization=results['visualization'][0])

    # ------------------------------------------------------------------
    # outputs
    # ------------------------------------------------------------------
    @staticmethod
    def _original_rgb(image: ImageType) -> np.ndarray:
        """The input image as ``(H, W, 3)`` uint8 RGB."""
        if isinstance(image, str):
            return mmcv.imread(image, channel_order='rgb')
        if image.ndim == 2:
            image = np.repeat(image[..., None], 3, axis=-1)
        return np.ascontiguousarray(image[..., ::-1]).astype(np.uint8)

    def visualize(self,
                  inputs: List[ImageType],
                  preds: List[DetDataSample],
                  show: bool = False,
                  wait_time: float = 0.,
                  pred_score_thr: float = 0.3,
                  alpha: float = 0.5) -> List[np.ndarray]:
        """Draw the predictions on the original images.

        Masks are blended in with their label name and score; masks scored
        below ``pred_score_thr`` are left out (unscored panoptic / semantic
        segments are always drawn). Visual prompts are outlined; answers
        are written on the image.

        Returns:
            list[np.ndarray]: ``(H, W, 3)`` uint8 RGB pictures.
        """
        pictures = []
        for image, pred in zip(inputs, preds):
            picture = self._original_rgb(image)
            result = self.pred2dict(pred, mask_format='array')
            if 'answer' in result:
                question = pred.metainfo['prompt']['conversations'][0][
                    'value'].replace('<image>', '').strip()
                picture = draw_answer(picture, question, result['answer'])
            else:
                keep = [
                    score is None or score >= pred_score_thr
                    for score in result['scores']
                ]
                labels = [
                    name if score is None else f'{name} {score:.2f}'
                    for name, score in zip(result['label_names'],
                                           result['scores'])
                ]
                picture = draw_masks(
                    picture, result['masks'][keep],
                    [label for label, k in zip(labels, keep) if k], alpha)
                if 'prompt_masks' in pred:
                    picture = draw_prompt_outlines(
                        picture, self._original_prompt_masks(pred))
            if show:
                mmcv.imshow(picture[..., ::-1], 'PSALM', int(wait_time * 1000))
            pictures.append(picture)
        return pictures

    @staticmethod
    def _original_prompt_masks(pred: DetDataSample) -> np.ndarray:
        """``(K, H, W)`` visual prompts at the original size (nearest)."""
        height, width = pred.metainfo['img_shape']
        ori_h, ori_w = pred.metainfo['ori_shape']
        masks = pred.prompt_masks[:, :height, :width].cpu().numpy()
        return np.stack([
            mmcv.imresize(m.astype(np.uint8), (ori_w, ori_h),
                          interpolation='nearest') for m in masks
        ]).astype(bool)

    @staticmethod
    def _label_names(pred: DetDataSample) -> List[str]:
        """The name of each label index of a prediction."""
        prompt = pred.metainfo['prompt']
        if 'class_names' in prompt:
            return list(prompt['class_names'])
        if 'sentences' in prompt:
            return [' '.join(prompt['sentences'])]
        prompt_types = pred.metainfo.get('prompt_type') or ['region'] * len(
            pred.prompt_masks)
        return [f'{t} {k}' for k, t in enumerate(prompt_types)]

    def pred2dict(self, pred: DetDataSample,
                  mask_format: str = 'rle') -> Dict[str, Any]:
        """One prediction as a dict of basic types.

        Args:
            pred (DetDataSample): A predicted sample.
            mask_format (str): ``'rle'`` or ``'array'``.

        Returns:
            dict: ``task``, and either ``answer`` (str; ``vqa``) or
            ``masks`` (N RLE dicts, or a ``(N, H, W)`` bool array, at the
            original size), ``labels`` (N int), ``label_names`` (N str) and
            ``scores`` (N float; None for panoptic and semantic segments,
            which the fusion does not score). Panoptic: one mask per
            segment; semantic: one per present class; instance: every kept
            query; referring / gres: one mask; interactive: one per region.
        """
        if mask_format not in ('rle', 'array'):
            raise ValueError("mask_format must be 'rle' or 'array', got "
                             f'{mask_format!r}')
        task = pred.metainfo['prompt']['task']
        if 'pred_text' in pred:
            return dict(task=task, answer=pred.pred_text)
        scores: List[Optional[float]]
        panoptic = 'pred_panoptic_seg' in pred
        semantic = 'pred_sem_seg' in pred and 'pred_instances' not in pred
        if panoptic or semantic:
            seg = (pred.pred_panoptic_seg if panoptic else
                   pred.pred_sem_seg).sem_seg[0].cpu().numpy()  # (H, W)
            num_classes = len(pred.metainfo['prompt']['class_names'])
            ids = [i for i in np.unique(seg).tolist() if i != num_classes]
            masks = np.stack([seg == i for i in ids]) if ids else np.zeros(
                (0, ) + seg.shape, dtype=bool)
            labels = [i % INSTANCE_OFFSET for i in ids]
            scores = [None] * len(ids)
        else:
            instances = pred.pred_instances
            masks = instances.masks.cpu().numpy().astype(bool)
            scores = [float(s) for s in instances.scores.cpu()]
            labels = (instances.labels.cpu().tolist()
                      if 'labels' in instances else [0] * len(masks))
        names = self._label_names(pred)
        return dict(
            task=task,
            masks=[encode_rle(m) for m in masks]
            if mask_format == 'rle' else masks,
            labels=[int(label) for label in labels],
            label_names=[names[label] for label in labels],
            scores=scores)

    def postprocess(self,
                    preds: List[DetDataSample],
                    visualization: List[np.ndarray],
                    return_datasample: bool = False,
                    mask_format: str = 'rle') -> Dict[str, list]:
        """Pack predictions (dicts or data samples) and pictures.

        Returns:
            dict: ``predictions`` and ``visualization``, one entry per image.
        """
        predictions = preds if return_datasample else [
            self.pred2dict(pred, mask_format) for pred in preds
        ]
        return dict(predictions=predictions, visualization=visualization)
