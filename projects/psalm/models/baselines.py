# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Trivial baselines, scored by the same post-processing and metrics as PSALM.

A number means little without the score of a rule that needs no learning.
:class:`TrivialBaseline` is a model that runs through ``tools/test.py`` with
any benchmark config (only ``model`` changes), builds query masks and
condition logits by a fixed rule, and hands them to the same per-task
post-processing as PSALM (:func:`fill_prediction`). Rules:

* category tasks (panoptic / semantic / instance):

  - ``'whole_image'``: one segment, the whole image, of the class that
    covers most pixels in the training data;
  - ``'colour_regions'``: one segment per quantised colour (4 levels per
    channel), each of the class whose mean training colour is nearest;

* ``'largest_object'`` (referring, gres): the largest annotated object of
  the image (from a COCO instances json: an oracle segmentation with a
  trivial choice);
* ``'prompt'`` (interactive, vos): every visual prompt's own mask, i.e. the
  clicks / box / scribble / mask themselves, and for VOS (through
  :class:`VOSTestLoop`, which feeds the previous frame's masks back) the
  first-frame masks copied to every frame;
* ``'majority'`` (vqa, caption): the most frequent training answer.
"""
import json
import os.path as osp
from collections import Counter
from typing import Dict, List, Optional, Tuple

import mmcv
import numpy as np
import torch
from mmengine.model import BaseModel
from pycocotools import mask as mask_utils
from torch import Tensor

from mmdet.registry import MODELS
from mmdet.structures import DetDataSample, SampleList
from mmdet.utils import OptConfigType
from ..evaluation.functional.panoptic_quality import rgb2id
from .inference.predictions import CATEGORY_TASKS, fill_prediction

__all__ = ['TrivialBaseline', 'fit_class_colours', 'majority_answer']

RULES = {
    'category': ('whole_image', 'colour_regions'),
    'sentence': ('largest_object', ),
    'visual': ('prompt', ),
    'text': ('majority', ),
}
TASK_KIND = {
    'panoptic': 'category', 'semantic': 'category', 'instance': 'category',
    'referring': 'sentence', 'gres': 'sentence', 'interactive': 'visual',
    'vos': 'visual', 'vqa': 'text', 'caption': 'text'
}
LOGIT = 10.0  # "certain" logit of a chosen query / pixel
DEFAULT_TEST_CFG = dict(
    object_mask_thr=0.5,
    iou_thr=0.8,
    max_per_image=100,
    gres_threshold=0.6,
    gres_fallback_top1=False)


def fit_class_colours(ann_file: str, seg_dir: str, img_dir: str,
                      max_images: int = 200) -> Dict[str, object]:
    """Mean RGB colour and pixel count of every class of a COCO panoptic set.

    Args:
        ann_file (str): COCO panoptic json.
        seg_dir (str): Folder of its PNGs.
        img_dir (str): Folder of its images.
        max_images (int): Use at most this many images (in json order).

    Returns:
        dict: ``names`` (class names in json category order), ``colours``
        (``[C, 3]`` float RGB means, NaN for classes never seen) and
        ``pixels`` (``[C]`` pixel counts).
    """
    with open(ann_file) as f:
        coco = json.load(f)
    names = [cat['name'] for cat in coco['categories']]
    index = {cat['id']: i for i, cat in enumerate(coco['categories'])}
    sums = np.zeros((len(names), 3))
    pixels = np.zeros(len(names))
    images = {img['id']: img for img in coco['images']}
    for ann in coco['annotations'][:max_images]:
        img = images[ann['image_id']]
        rgb = mmcv.imread(osp.join(img_dir, img['file_name']),
                          channel_order='rgb').astype(np.float64)
        ids = rgb2id(mmcv.imread(osp.join(seg_dir, ann['file_name']),
                                 channel_order='rgb'))
        for seg in ann['segments_info']:
            mask = ids == seg['id']
            c = index[seg['category_id']]
            sums[c] += rgb[mask].sum(0)
            pixels[c] += mask.sum()
    with np.errstate(invalid='ignore', divide='ignore'):
        colours = sums / pixels[:, None]
    return dict(names=names, colours=colours, pixels=pixels)


def majority_answer(ann_file: str) -> str:
    """The most frequent (lower-cased) answer of a LLaVA-format json."""
    with open(ann_file) as f:
        records = json.load(f)
    answers = Counter(
        turn['value'].strip().lower() for record in records
        for turn in record['conversations'] if turn['from'] == 'gpt')
    if not answers:
        raise ValueError(f'{ann_file} has no answers (gpt turns)')
    return answers.most_common(1)[0][0]


@MODELS.register_module()
class TrivialBaseline(BaseModel):
    """A segmenter and answerer that follows a fixed rule (module doc).

    Args:
        rules (dict): Rule per condition kind: ``category`` (``'whole_image'``
            or ``'colour_regions'``), ``sentence`` (``'largest_object'``),
            ``visual`` (``'prompt'``), ``text`` (``'majority'``).
        panoptic_train (dict, optional): ``ann_file``, ``seg_dir``,
            ``img_dir`` of a COCO panoptic TRAINING set, for the class
            colours and the majority class (category rules).
        instances_file (str, optional): COCO instances json of the
            evaluated images (``'largest_object'``).
        answers_file (str, optional): LLaVA-format TRAINING json
            (``'majority'``).
        test_cfg (dict, optional): Post-processing settings, as PSALM's.
        data_preprocessor (dict, optional): The evaluated model's data
            preprocessor (same padding, so ``'prompt'`` masks line up).
    """

    def __init__(self,
                 rules: Optional[Dict[str, str]] = None,
                 panoptic_train: Optional[Dict[str, str]] = None,
                 instances_file: Optional[str] = None,
                 answers_file: Optional[str] = None,
                 test_cfg: Optional[Dict] = None,
                 data_preprocessor: OptConfigType = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor)
        self.rules = dict(
            category='colour_regions', sentence='largest_object',
            visual='prompt', text='majority')
        self.rules.update(rules or {})
        for kind, rule in self.rules.items():
            if rule not in RULES.get(kind, ()):
                raise ValueError(f'unknown {kind} rule {rule!r}; choose from '
                                 f'{RULES.get(kind)}')
        self.test_cfg = dict(DEFAULT_TEST_CFG, **(test_cfg or {}))
        self.panoptic_train = panoptic_train
        self.instances_file = instances_file
        self.answers_file = answers_file
        self._colours: Optional[Dict[str, object]] = None
        self._objects: Optional[Dict[int, List[dict]]] = None
        self._answer: Optional[str] = None
        # a parameter, so that the runner finds a device and dtype
        self.register_buffer('_device', torch.zeros(1), persistent=False)

    # ----------------------------------------------------------- fitted data
    def _class_colours(self) -> Dict[str, object]:
        if self._colours is None:
            if self.panoptic_train is None:
                raise ValueError('category rules need panoptic_train='
                                 'dict(ann_file, seg_dir, img_dir)')
            self._colours = fit_class_colours(**self.panoptic_train)
        return self._colours

    def _image_objects(self, img_id: int, source: str) -> List[dict]:
        if self._objects is None:
            if self.instances_file is None:
                raise ValueError("the 'largest_object' rule needs "
                                 'instances_file')
            with open(self.instances_file) as f:
                coco = json.load(f)
            self._objects = {}
            for ann in coco['annotations']:
                self._objects.setdefault(ann['image_id'], []).append(ann)
        if img_id not in self._objects:
            raise ValueError(f'{source}: image id {img_id} has no object in '
                             f'{self.instances_file}')
        return self._objects[img_id]

    # ------------------------------------------------------------- queries
    def _category_queries(self, sample: DetDataSample
                          ) -> Tuple[Tensor, Tensor]:
        """``[N, C + 1]`` logits and ``[N, H, W]`` masks at ori size."""
        meta = sample.metainfo
        names = list(meta['prompt']['class_names'])
        fitted = self._class_colours()
        lookup = {n: i for i, n in enumerate(fitted['names'])}
        missing = [n for n in names if n not in lookup]
        if missing:
            raise ValueError(f'{meta["img_path"]}: classes {missing} are not '
                             'in the panoptic training json')
        colours = np.asarray(fitted['colours'])[[lookup[n] for n in names]]
        pixels = np.asarray(fitted['pixels'])[[lookup[n] for n in names]]
        h, w = meta['ori_shape']
        if self.rules['category'] == 'whole_image':
            masks = np.ones((1, h, w), bool)
            labels = [int(pixels.argmax())]
        else:
            rgb = mmcv.imread(meta['img_path'], channel_order='rgb')
            codes = (rgb // 64).astype(np.int64)
            codes = codes[..., 0] * 16 + codes[..., 1] * 4 + codes[..., 2]
            masks, labels = [], []
            seen = np.isfinite(colours).all(1)
            for code in np.unique(codes):
                mask = codes == code
                mean = rgb[mask].mean(0)
                dist = np.where(seen, ((colours - mean)**2).sum(1), np.inf)
                masks.append(mask)
                labels.append(int(dist.argmin()))
            masks = np.stack(masks)
        logits = torch.full((len(labels), len(names) + 1), -LOGIT)
        logits[torch.arange(len(labels)), torch.tensor(labels)] = LOGIT
        return logits, torch.from_numpy(masks)

    def _largest_object(self, sample: DetDataSample) -> Tuple[Tensor, Tensor]:
        meta = sample.metainfo
        h, w = meta['ori_shape']
        best = None
        for ann in self._image_objects(int(meta['img_id']), meta['img_path']):
            seg = ann['segmentation']
            rle = mask_utils.frPyObjects(seg, h, w) if isinstance(
                seg, list) else seg
            mask = mask_utils.decode(rle)
            mask = mask.any(-1) if mask.ndim == 3 else mask.astype(bool)
            if best is None or mask.sum() > best.sum():
                best = mask
        return torch.full((1, 1), LOGIT), torch.from_numpy(best)[None]

    @staticmethod
    def _prompt_queries(sample: DetDataSample) -> Tuple[Tensor, Tensor]:
        """One query per visual prompt, its own (padded) mask."""
        prompts = sample.prompt_masks  # [K, H_pad, W_pad]
        logits = torch.full((len(prompts), len(prompts)), -LOGIT)
        logits.fill_diagonal_(LOGIT)
        return logits, prompts.cpu()

    def _queries(self, inputs: Tensor, sample: DetDataSample,
                 task: str) -> Tuple[Tensor, Tensor, tuple]:
        """Logits, mask logits and ``(pad, img, ori)`` shapes of a sample."""
        meta = sample.metainfo
        if task in CATEGORY_TASKS:
            logits, masks = self._category_queries(sample)
            shapes = (meta['ori_shape'], ) * 3
        elif task in ('referring', 'gres'):
            logits, masks = self._largest_object(sample)
            shapes = (meta['ori_shape'], ) * 3
        else:
            logits, masks = self._prompt_queries(sample)
            shapes = (inputs.shape[-2:], meta['img_shape'], meta['ori_shape'])
        mask_logits = torch.where(masks, LOGIT, -LOGIT).float()
        return logits, mask_logits, shapes

    # -------------------------------------------------------------- forward
    def forward(self,
                inputs: Tensor,
                data_samples: Optional[SampleList] = None,
                mode: str = 'predict'):
        """``'predict'``: filled samples; ``'tensor'``: ``([cls], [masks])``
        batched logits as PSALM returns them (used by the VOS loop)."""
        if mode == 'loss':
            raise RuntimeError('TrivialBaseline has nothing to train')
        tasks = {s.metainfo['prompt']['task'] for s in data_samples}
        if len(tasks) != 1:
            raise ValueError(f'one task per batch, got {sorted(tasks)}')
        task = tasks.pop()
        if task not in TASK_KIND:
            raise ValueError(f'TrivialBaseline has no rule for task {task!r}')
        if mode == 'tensor':
            outs = [self._queries(inputs, s, task) for s in data_samples]
            return ([torch.stack([o[0] for o in outs])],
                    [torch.stack([o[1] for o in outs])])
        if mode != 'predict':
            raise ValueError(f'invalid mode {mode!r}')
        if TASK_KIND[task] == 'text':
            if self._answer is None:
                if self.answers_file is None:
                    raise ValueError("the 'majority' rule needs answers_file")
                self._answer = majority_answer(self.answers_file)
            for sample in data_samples:
                sample.pred_text = self._answer
            return data_samples
        for sample in data_samples:
            logits, mask_logits, shapes = self._queries(inputs, sample, task)
            fill_prediction(sample, task, logits, mask_logits, shapes,
                            self.test_cfg)
        return data_samples
