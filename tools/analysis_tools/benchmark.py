# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Benchmark PSALM training and inference against two references.

For every config (``tiny``, ``paper`` or a path to a config with a PSALM
``model``) and every mode it measures, in ONE process and on the same
inputs, the milliseconds per iteration, images per second and peak memory
of

* ``train``: one training step (data preprocessor, forward, backward,
  AdamW step) of a batch of ``--train-batch-size`` images of one task;
* ``infer``: one ``predict`` of ``--infer-batch-size`` images, one prompt
  each;
* ``multi``: ``--num-prompts`` referring expressions on ONE image, through
  the prompt cache (:meth:`PSALM.encode_image` +
  :meth:`PSALM.predict_prompts`); its ratio column compares them with ONE
  expression predicted the plain way (the target is at most 2x),

and, interleaved with it (each iteration runs every variant once, so a
load that drifts on a shared machine hits them alike; a ratio is the median
of the per-iteration ratios), the same work done by

* (a) mmdet's :class:`~mmdet.models.Mask2Former` (mmdet's COCO panoptic
  Mask2Former config) with the Swin, pixel decoder and transformer decoder of
  the PSALM config, frozen like PSALM's Swin: the cost of segmentation
  alone, without the LLM;
* (b) a naive PSALM execution of the official code's kind, made by wrapping
  the same model here (never in the model code): Swin run twice per image
  (the official code encodes the image once for the LLM and once for the
  mask decoder), eager attention in Phi, no prompt caching (one ``predict``
  per prompt), batch 1 (training: one forward/backward per image with the
  gradients accumulated, then one optimizer step). ``--naive-parts`` picks
  which of these four it applies.

Weights are random (speed does not depend on them); the LLM is built from
its ``PhiConfig``. Inputs are synthetic: a random image of the config's
input size (3:4 aspect ratio, padded like real ones), rectangles as GT and
visual-prompt masks, the 133 COCO panoptic class names as the panoptic
prompt. Parameter counts are taken on the meta device (no memory).

Peak memory is the peak resident set size of the process during the
measurement on CPU (it includes the weights of the model measured, and is
sampled every 2 ms), and ``torch.cuda.max_memory_allocated`` on CUDA.

Examples::

    # tiny model on the CPU: training, inference and many prompts
    python tools/analysis_tools/benchmark.py tiny --device cpu --flops
    # paper-size model on the CPU: inference only (a training step needs
    # > 22 GB there), few iterations, the naive 8 prompts as 8 x one
    python tools/analysis_tools/benchmark.py paper --device cpu \\
        --modes infer multi --iters 2 --warmup 0 --multi-naive scale
    # both sizes on a GPU, bf16 autocast, every joint task, JSON as well
    python tools/analysis_tools/benchmark.py tiny paper --device cuda \\
        --tasks panoptic referring interactive vqa --train-batch-size 4 \\
        --out work_dirs/benchmark/cuda.json

The batch-1 naive training (``batch1``) accumulates per-image gradients;
the official training itself batched 4 images per GPU, so drop ``batch1``
from ``--naive-parts`` to compare with that.
"""
import argparse
import copy
import gc
import json
import os
import os.path as osp
import platform
import statistics
import sys
import threading
import time
from contextlib import contextmanager, nullcontext
from typing import (Any, Callable, ContextManager, Dict, Iterator, List,
                    Optional, Sequence, Tuple)

# make ``projects.psalm`` importable when run from anywhere
REPO_ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
sys.path.insert(0, REPO_ROOT)

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from mmengine.config import Config, ConfigDict, DictAction  # noqa: E402
from mmengine.hub import get_config  # noqa: E402
from mmengine.logging import MMLogger  # noqa: E402
from mmengine.optim import build_optim_wrapper  # noqa: E402
from mmengine.structures import InstanceData, PixelData  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from mmdet.registry import MODELS  # noqa: E402
from mmdet.structures import DetDataSample  # noqa: E402
from mmdet.structures.mask import BitmapMasks  # noqa: E402
from mmdet.utils import register_all_modules  # noqa: E402

__all__ = [
    'CONFIGS', 'MODES', 'TASKS', 'NAIVE_PARTS', 'BenchmarkInputs',
    'load_psalm_config', 'build_psalm', 'mask2former_config',
    'count_parameters', 'naive_execution', 'measure_group',
    'paired_ratio', 'run_benchmark', 'format_table', 'main'
]

CONFIGS = {
    'tiny': 'configs/_base_/models/psalm_tiny.py',
    'paper': 'configs/_base_/models/psalm_swin-b_phi-1.5.py',
}
MODES = ('train', 'infer', 'multi')
TASKS = ('panoptic', 'referring', 'interactive', 'vqa')
NAIVE_PARTS = ('swin-twice', 'eager', 'no-cache', 'batch1')
BASELINES = ('mask2former', 'naive')
MASK2FORMER_CONFIG = \
    'mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco-panoptic.py'
# referring expressions of the multi-prompt mode (COCO-like, 2 to 12 words)
SENTENCES = (
    'the man on the left',
    'a brown horse',
    'the woman in the red shirt standing next to the fence',
    'trees',
    'the white horse in the middle of the road',
    'the sky above the hills',
    'a small flag on the pole',
    'the grass behind the people and the horses on the right side',
)
QUESTION = 'What is happening in this picture? Answer in one sentence.'
ANSWER = ('Two people are riding horses along a dirt road next to a wooden '
          'fence, with trees and hills in the background.')


# ----------------------------------------------------------------------
# configs and models
# ----------------------------------------------------------------------
def _strip_pretrained(node: Any) -> None:
    """Drop every ``init_cfg`` that loads a checkpoint (random weights)."""
    if isinstance(node, dict):
        init_cfg = node.get('init_cfg')
        cfgs = init_cfg if isinstance(init_cfg, list) else [init_cfg]
        if any(isinstance(c, dict) and c.get('type') == 'Pretrained'
               for c in cfgs):
            node['init_cfg'] = None
        for value in node.values():
            _strip_pretrained(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            _strip_pretrained(value)


def load_psalm_config(name: str,
                      cfg_options: Optional[dict] = None) -> Config:
    """The config of ``name`` with a randomly initialised model.

    Args:
        name (str): ``'tiny'``, ``'paper'`` or a config path (absolute or
            relative to the repository root) whose ``model`` is a PSALM.
        cfg_options (dict, optional): ``--cfg-options`` to merge.

    Returns:
        Config: The config; ``model.language_model`` is built from its
        ``PhiConfig`` (``phi_1_5_config`` of the config for a pretrained
        LLM) and no part loads a checkpoint.
    """
    path = CONFIGS.get(name, name)
    if not osp.isabs(path) and not osp.exists(path):
        path = osp.join(REPO_ROOT, path)
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'config {name!r} not found; give one of {sorted(CONFIGS)} or '
            'a config path')
    cfg = Config.fromfile(path)
    if cfg.get('model', {}).get('type') != 'PSALM':
        raise ValueError(f'{path} has no PSALM model')
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    lm = cfg.model.language_model
    if lm.get('pretrained') is not None:
        if 'phi_1_5_config' not in cfg:
            raise ValueError(
                f'{path}: the language model loads {lm.pretrained!r}; the '
                'benchmark needs a PhiConfig (phi_1_5_config) for random '
                'weights')
        lm.pretrained = None
        lm.config = copy.deepcopy(cfg.phi_1_5_config)
    if not osp.isabs(lm.tokenizer):
        lm.tokenizer = osp.join(REPO_ROOT, lm.tokenizer)
    _strip_pretrained(cfg.model)
    return cfg


@contextmanager
def _meta_device() -> Iterator[None]:
    """Build modules on the meta device. mmdet's Swin calls ``.item()`` on a
    ``linspace`` of drop-path rates, which meta tensors cannot do: that one
    call is made on the CPU."""
    linspace = torch.linspace

    def cpu_linspace(*args, **kwargs):
        kwargs['device'] = 'cpu'
        return linspace(*args, **kwargs)

    torch.linspace = cpu_linspace
    try:
        with torch.device('meta'):
            yield
    finally:
        torch.linspace = linspace


def count_parameters(model_cfg: ConfigDict) -> Dict[str, float]:
    """Parameter counts (millions) of a model config, built on meta.

    Args:
        model_cfg (ConfigDict): A model config (PSALM or Mask2Former).

    Returns:
        dict: ``total`` and ``trainable`` in millions, and per top-level
        part.
    """
    with _meta_device():
        model = MODELS.build(copy.deepcopy(model_cfg))
    counts = {
        'total': sum(p.numel() for p in model.parameters()) / 1e6,
        'trainable': sum(p.numel() for p in model.parameters()
                         if p.requires_grad) / 1e6,
    }
    for name, child in model.named_children():
        num = sum(p.numel() for p in child.parameters())
        if num:
            counts[name] = num / 1e6
    del model
    return counts


def build_psalm(cfg: Config, device: str, seed: int = 0) -> nn.Module:
    """Build and initialise the PSALM of ``cfg`` on ``device``."""
    torch.manual_seed(seed)
    model = MODELS.build(copy.deepcopy(cfg.model))
    model.init_weights()
    return model.to(device)


def mask2former_config(cfg: Config) -> ConfigDict:
    """mmdet's COCO panoptic Mask2Former with the PSALM config's parts.

    The Swin (frozen like PSALM's when ``'backbone'`` is in
    ``frozen_modules``), the pixel decoder (the same
    :class:`PSALMPixelDecoder`, whose deformable attention is safe under
    bf16 autocast), the transformer decoder, the number of queries, the
    input size and the point-sampled loss settings are the PSALM config's;
    the rest (133 classes, matching costs, losses, panoptic + instance
    inference) is mmdet's config.

    Args:
        cfg (Config): A PSALM config (see :func:`load_psalm_config`).

    Returns:
        ConfigDict: The Mask2Former model config.
    """
    m2f = get_config(MASK2FORMER_CONFIG).model
    psalm = cfg.model
    gen = psalm.mask_generator
    backbone = copy.deepcopy(psalm.backbone)
    backbone.init_cfg = None
    if 'backbone' in psalm.get('frozen_modules', ()):
        backbone.frozen_stages = len(backbone.get('depths', [0] * 4))
    m2f.backbone = backbone
    fixed_size = tuple(psalm.data_preprocessor.fixed_size)
    m2f.data_preprocessor.batch_augments[0].size = fixed_size
    head = m2f.panoptic_head
    head.update(
        in_channels=list(gen.in_channels),
        feat_channels=gen.feat_channels,
        out_channels=gen.out_channels,
        num_queries=gen.num_queries,
        num_transformer_feat_level=gen.get('num_transformer_feat_level', 3))
    head.pixel_decoder = copy.deepcopy(gen.pixel_decoder)
    head.pixel_decoder.pop('init_cfg', None)
    head.positional_encoding = copy.deepcopy(gen.positional_encoding)
    head.transformer_decoder = copy.deepcopy(gen.transformer_decoder)
    head.transformer_decoder.pop('init_cfg', None)
    criterion = psalm.criterion
    for key in ('num_points', 'oversample_ratio', 'importance_sample_ratio'):
        if key in criterion:
            m2f.train_cfg[key] = criterion[key]
    m2f.init_cfg = None
    return m2f


# ----------------------------------------------------------------------
# inputs
# ----------------------------------------------------------------------
class BenchmarkInputs:
    """Synthetic inputs of one config: one image and its prompts.

    Args:
        image_size (int): Long side of the image (the config's fixed input
            size); the short side is 3/4 of it, as COCO's 4:3 images.
        seed (int): Seed of the image pixels.
    """

    def __init__(self, image_size: int, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.height, self.width = image_size * 3 // 4, image_size
        self.image = torch.randint(
            0, 256, (3, self.height, self.width), dtype=torch.uint8,
            generator=generator)
        from mmdet.datasets import CocoPanopticDataset
        meta = CocoPanopticDataset.METAINFO
        self.class_names = list(meta['classes'])
        things = set(meta['thing_classes'])
        self.is_thing = [name in things for name in self.class_names]
        # three nested-free rectangles (fractions of the image)
        self.boxes = ((0.05, 0.10, 0.45, 0.90), (0.50, 0.20, 0.95, 0.70),
                      (0.30, 0.05, 0.70, 0.35))

    def _masks(self) -> torch.Tensor:
        masks = torch.zeros(len(self.boxes), self.height, self.width,
                            dtype=torch.uint8)
        for k, (x0, y0, x1, y1) in enumerate(self.boxes):
            masks[k, int(y0 * self.height):int(y1 * self.height),
                  int(x0 * self.width):int(x1 * self.width)] = 1
        return masks

    def _sample(self, metainfo: dict) -> DetDataSample:
        shape = (self.height, self.width)
        return DetDataSample(metainfo=dict(
            img_shape=shape, ori_shape=shape, img_path='benchmark.jpg',
            img_id=0, scale_factor=(1.0, 1.0), **metainfo))

    def psalm_sample(self, task: str, sentence: str = SENTENCES[0],
                     with_gt: bool = True) -> DetDataSample:
        """A PSALM data sample of ``task`` (see :data:`TASKS`)."""
        masks = self._masks()
        labels = torch.arange(len(masks))
        if task == 'panoptic':
            # a person, a car and the sky ('sky-other-merged')
            labels = torch.tensor([
                0, 2, self.class_names.index('sky-other-merged')
            ])
            prompt = dict(task=task, class_names=list(self.class_names))
            sample = self._sample(dict(prompt=prompt,
                                       is_thing=list(self.is_thing)))
        elif task == 'referring':
            masks, labels = masks[:1], labels[:1]
            sample = self._sample(
                dict(prompt=dict(task=task, sentences=[sentence])))
        elif task == 'interactive':
            sample = self._sample(dict(prompt=dict(task=task)))
            sample.prompt_masks = masks.bool()
        elif task == 'vqa':
            prompt = dict(task=task, conversations=[
                dict(value=f'<image>\n{QUESTION}', **{'from': 'human'}),
                dict(value=ANSWER, **{'from': 'gpt'})
            ])
            if not with_gt:  # open question: the answer is generated
                prompt['conversations'] = prompt['conversations'][:1]
            sample = self._sample(dict(prompt=prompt))
            return sample
        else:
            raise ValueError(f'unknown task {task!r}; choose from {TASKS}')
        if with_gt:
            sample.gt_instances = InstanceData(
                masks=BitmapMasks(masks.numpy(), self.height, self.width),
                labels=labels)
        return sample

    def psalm_batch(self, task: str, num: int, training: bool) -> dict:
        """``num`` copies of the image with the prompt of ``task``."""
        return dict(
            inputs=[self.image.clone() for _ in range(num)],
            data_samples=[
                self.psalm_sample(task, with_gt=training) for _ in range(num)
            ])

    def mask2former_batch(self, num: int, training: bool,
                          fixed_size: Optional[int] = None) -> dict:
        """``num`` copies of the image for Mask2Former: 3 thing GTs and
        the rest of the image as one stuff segment (panoptic GT).

        Args:
            num (int): Images.
            training (bool): With GT (Mask2Former's training batch
                augmentation pads to the fixed size itself).
            fixed_size (int, optional): For inference: pad the image
                bottom/right to this square size (value 128, as PSALM's
                preprocessor), so that Mask2Former decodes the same input
                size as PSALM (mmdet pads test images to a multiple of 32
                only); ``img_shape`` keeps the unpadded size.
        """
        image = self.image
        if fixed_size is not None and not training:
            image = torch.nn.functional.pad(
                image, (0, fixed_size - self.width, 0,
                        fixed_size - self.height), value=128)
        samples = []
        sky = self.class_names.index('sky-other-merged')
        for _ in range(num):
            sample = self._sample({})
            if training:
                masks = self._masks()
                labels = torch.tensor([0, 2, 5])
                sample.gt_instances = InstanceData(
                    masks=BitmapMasks(masks.numpy(), self.height,
                                      self.width),
                    labels=labels,
                    bboxes=torch.zeros(len(masks), 4))
                sem_seg = torch.full((1, self.height, self.width), sky)
                for mask, label in zip(masks.bool(), labels):
                    sem_seg[0][mask] = label
                sample.gt_sem_seg = PixelData(sem_seg=sem_seg)
            samples.append(sample)
        return dict(inputs=[image.clone() for _ in range(num)],
                    data_samples=samples)


def _split(batch: dict) -> List[dict]:
    """A batch as batches of one image."""
    return [
        dict(inputs=[image], data_samples=[sample])
        for image, sample in zip(batch['inputs'], batch['data_samples'])
    ]


# ----------------------------------------------------------------------
# naive execution (official kind), by wrapping the model
# ----------------------------------------------------------------------
@contextmanager
def _backbone_twice(model: nn.Module) -> Iterator[None]:
    """Run the vision encoder twice per call (the official code encodes
    the image once for the LLM and once more for the mask decoder)."""
    backbone = model.backbone
    forward = backbone.forward

    def twice(*args, **kwargs):
        forward(*args, **kwargs)  # the discarded pass
        return forward(*args, **kwargs)

    backbone.forward = twice
    try:
        yield
    finally:
        del backbone.forward  # back to the class method


@contextmanager
def _attention(model: nn.Module, implementation: str) -> Iterator[None]:
    """Switch the Hugging Face attention backend of the LLM (same
    weights)."""
    llm = model.language_model.llm
    previous = llm.config._attn_implementation
    llm.set_attn_implementation(implementation)
    try:
        yield
    finally:
        llm.set_attn_implementation(previous)


@contextmanager
def naive_execution(model: nn.Module,
                    parts: Sequence[str] = NAIVE_PARTS) -> Iterator[None]:
    """Make ``model`` execute like the official code for the block.

    Only ``swin-twice`` and ``eager`` change the model (temporarily);
    ``no-cache`` and ``batch1`` are how the benchmark calls it.

    Args:
        model (nn.Module): A PSALM.
        parts (Sequence[str]): Subset of :data:`NAIVE_PARTS`.
    """
    unknown = set(parts) - set(NAIVE_PARTS)
    if unknown:
        raise ValueError(f'unknown naive parts {sorted(unknown)}; choose '
                         f'from {NAIVE_PARTS}')
    twice = _backbone_twice(model) if 'swin-twice' in parts \
        else nullcontext()
    eager = _attention(model, 'eager') if 'eager' in parts \
        else nullcontext()
    with twice, eager:
        yield


# ----------------------------------------------------------------------
# measuring
# ----------------------------------------------------------------------
def _rss_bytes() -> int:
    """Resident set size of this process (Linux ``/proc``; 0 elsewhere)."""
    try:
        with open('/proc/self/statm') as f:
            return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
    except (OSError, ValueError, IndexError):
        return 0


class _PeakMemory:
    """Peak memory during a block: CUDA allocator peak or sampled RSS."""

    def __init__(self, device: str, interval: float = 0.002) -> None:
        self.device = device
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = None

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes())
            time.sleep(self.interval)

    def __enter__(self) -> '_PeakMemory':
        if self.device == 'cuda':
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        else:
            self.peak = _rss_bytes()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.device == 'cuda':
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated()
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, _rss_bytes())


Contexts = Callable[[], ContextManager]


def measure_group(fns: Dict[str, Tuple[Callable[[], Any], Contexts]],
                  iters: int,
                  warmup: int,
                  device: str,
                  stat: str = 'median',
                  flops: bool = False) -> Dict[str, Dict[str, Any]]:
    """Time several functions in turns (interleaved).

    Every iteration calls each function once, in order, so that a load
    that drifts on a shared machine hits all of them alike; the ratio of
    two functions is then best taken per iteration (:func:`paired_ratio`).

    Args:
        fns (dict): ``name -> (fn, context)``: one iteration of ``fn`` runs
            inside a fresh ``context()`` (entered and left untimed).
        iters (int): Timed calls of each function.
        warmup (int): Untimed calls of each function first.
        device (str): ``'cpu'`` or ``'cuda'`` (synchronised around calls).
        stat (str): ``'median'`` or ``'min'`` of the timed calls (the
            minimum is the steadier estimate on a shared machine).
        flops (bool): Also count the FLOPs of one more (untimed) call with
            ``torch.utils.flop_counter`` (matrix products, convolutions and
            attention; the deformable sampling is not counted).

    Returns:
        dict: Per name ``ms`` (the statistic), ``ms_all`` (every call),
        ``peak_mb`` (the highest of its calls) and ``gflop`` (None
        without ``flops``).
    """
    if stat not in ('median', 'min'):
        raise ValueError(f"stat must be 'median' or 'min', got {stat!r}")
    if iters < 1:
        raise ValueError(f'iters must be >= 1, got {iters}')
    sync = torch.cuda.synchronize if device == 'cuda' else (lambda: None)
    for _ in range(warmup):
        for fn, context in fns.values():
            with context():
                fn()
    sync()
    times = {name: [] for name in fns}
    peaks = dict.fromkeys(fns, 0)
    for _ in range(iters):
        for name, (fn, context) in fns.items():
            with context(), _PeakMemory(device) as memory:
                start = time.perf_counter()
                fn()
                sync()
                times[name].append((time.perf_counter() - start) * 1000)
            peaks[name] = max(peaks[name], memory.peak)
    results = {}
    for name, (fn, context) in fns.items():
        gflop = None
        if flops:
            with context(), FlopCounterMode(display=False) as counter:
                fn()
            gflop = counter.get_total_flops() / 1e9
        value = statistics.median(times[name]) if stat == 'median' \
            else min(times[name])
        results[name] = dict(ms=value, ms_all=times[name],
                             peak_mb=peaks[name] / 2**20, gflop=gflop)
    return results


def paired_ratio(numerator: Dict[str, Any], denominator: Dict[str, Any],
                 scale: float = 1.0) -> float:
    """Median over the iterations of ``scale * t_num / t_den``, for two
    results of one :func:`measure_group` call."""
    return statistics.median(
        scale * a / b
        for a, b in zip(numerator['ms_all'], denominator['ms_all']))


def _autocast(device: str, dtype: Optional[torch.dtype]):
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device, dtype=dtype)


def _optim_wrapper(model: nn.Module, device: str,
                   dtype: Optional[torch.dtype]):
    """AdamW as in the stage-2 schedule; bf16 through mmengine's
    ``AmpOptimWrapper`` on CUDA (what ``tools/train.py --amp-dtype
    bfloat16`` uses); on the CPU the step runs under ``torch.autocast``
    (mmengine's AMP wrapper needs a GPU)."""
    cfg = dict(
        type='OptimWrapper',
        optimizer=dict(
            type='AdamW', lr=4e-5, betas=(0.9, 0.999), weight_decay=0.0))
    if device == 'cuda' and dtype is not None:
        cfg.update(type='AmpOptimWrapper', dtype=dtype, loss_scale=1.0)
    return build_optim_wrapper(model, cfg)


class _Runner:
    """The iteration functions of one model on one device."""

    def __init__(self, model: nn.Module, device: str,
                 dtype: Optional[torch.dtype]) -> None:
        self.model = model
        self.device = device
        self.dtype = dtype
        self.optim_wrapper = None

    def _cpu_autocast(self):
        # the CUDA AmpOptimWrapper autocasts by itself
        return _autocast(self.device, self.dtype) \
            if self.device == 'cpu' else nullcontext()

    def train_step(self, batch: dict) -> None:
        self.model.train()  # (mmdet's Swin freezes its stages in train())
        if self.optim_wrapper is None:
            self.optim_wrapper = _optim_wrapper(self.model, self.device,
                                                self.dtype)
        with self._cpu_autocast():
            self.model.train_step(batch, self.optim_wrapper)

    def accumulated_train_step(self, batches: List[dict]) -> None:
        """One optimizer step over several forward/backward passes."""
        self.model.train()
        if self.optim_wrapper is None:
            self.optim_wrapper = _optim_wrapper(self.model, self.device,
                                                self.dtype)
        model, wrapper = self.model, self.optim_wrapper
        for batch in batches:
            with self._cpu_autocast(), wrapper.optim_context(model):
                data = model.data_preprocessor(batch, True)
                losses = model(**data, mode='loss')
            loss, _ = model.parse_losses(losses)
            wrapper.backward(loss / len(batches))
        wrapper.step()
        wrapper.zero_grad()

    @torch.no_grad()
    def predict(self, batch: dict) -> list:
        self.model.eval()
        with _autocast(self.device, self.dtype):
            return self.model.test_step(batch)

    @torch.no_grad()
    def predict_prompts(self, inputs: BenchmarkInputs,
                        sentences: Sequence[str]) -> list:
        """Many referring expressions on one image through the cache."""
        model = self.model
        model.eval()
        samples = [
            inputs.psalm_sample('referring', s, with_gt=False)
            for s in sentences
        ]
        with _autocast(self.device, self.dtype):
            # the image is normalised and padded once; referring samples
            # need nothing else from the preprocessor (their metainfo
            # holds img_shape and ori_shape)
            data = model.data_preprocessor(
                dict(inputs=[inputs.image], data_samples=samples[:1]), False)
            cache = model.encode_image(data['inputs'])
            return model.predict_prompts(cache, samples)


# ----------------------------------------------------------------------
# the benchmark
# ----------------------------------------------------------------------
def _free(device: str) -> None:
    gc.collect()
    if device == 'cuda':
        torch.cuda.empty_cache()


def _ratio(numerator: Optional[float],
           denominator: Optional[float]) -> Optional[float]:
    if numerator is None or denominator is None:
        return None
    return numerator / denominator


class _ConfigBenchmark:
    """The measurements of one config: PSALM, the naive execution and
    Mask2Former, interleaved (:func:`measure_group`)."""

    def __init__(self, name: str, args: argparse.Namespace) -> None:
        self.args = args
        self.device = args.device
        self.dtype = dict(fp32=None, bf16=torch.bfloat16)[args.precision]
        self.naive_parts = tuple(args.naive_parts)
        self.cfg = load_psalm_config(name, args.cfg_options)
        self.label = name if name in CONFIGS else osp.splitext(
            osp.basename(name))[0]
        self.image_size = int(self.cfg.model.data_preprocessor.fixed_size[0])
        self.inputs = BenchmarkInputs(self.image_size, seed=args.seed)
        self.m2f_cfg = mask2former_config(self.cfg)
        self.sentences = [
            SENTENCES[i % len(SENTENCES)] for i in range(args.num_prompts)
        ]
        self.psalm = self.naive = self.m2f = None

    def params(self) -> dict:
        return dict(psalm=count_parameters(self.cfg.model),
                    mask2former=count_parameters(self.m2f_cfg))

    def build(self) -> None:
        """PSALM (the naive execution wraps the same model) and, when
        compared, Mask2Former."""
        args, device = self.args, self.device
        _log(f'{self.label}: building PSALM ({self.image_size}px)')
        model = build_psalm(self.cfg, device, args.seed)
        self.psalm = _Runner(model, device, self.dtype)
        if 'naive' in args.baselines:
            self.naive = self.psalm
        if 'mask2former' in args.baselines:
            _log(f'{self.label}: building Mask2Former')
            torch.manual_seed(args.seed)
            m2f = MODELS.build(copy.deepcopy(self.m2f_cfg))
            m2f.init_weights()
            self.m2f = _Runner(m2f.to(device), device, self.dtype)

    def _naive_context(self) -> ContextManager:
        return naive_execution(self.psalm.model, self.naive_parts)

    def _group(self, mode: str, task: str) -> Tuple[int, dict, dict]:
        """Batch size, the functions to time and how to read them."""
        args, inputs = self.args, self.inputs
        psalm, batch1 = self.psalm, 'batch1' in self.naive_parts
        fns, scale = {}, {}
        if mode == 'train':
            size = args.train_batch_size
            batch = inputs.psalm_batch(task, size, True)
            parts = _split(batch) if batch1 else [batch]
            fns['psalm'] = (lambda: psalm.train_step(batch), nullcontext)
            fns['naive'] = (lambda: psalm.accumulated_train_step(parts),
                            self._naive_context)
            if self.m2f is not None:
                m2f_batch = inputs.mask2former_batch(size, True)
                fns['mask2former'] = (
                    lambda: self.m2f.train_step(m2f_batch), nullcontext)
        elif mode == 'infer':
            size = args.infer_batch_size
            batch = inputs.psalm_batch(task, size, False)
            parts = _split(batch) if batch1 else [batch]
            fns['psalm'] = (lambda: psalm.predict(batch), nullcontext)
            fns['naive'] = (lambda: [psalm.predict(b) for b in parts],
                            self._naive_context)
            if self.m2f is not None:
                m2f_batch = inputs.mask2former_batch(
                    size, False, self.image_size)
                fns['mask2former'] = (
                    lambda: self.m2f.predict(m2f_batch), nullcontext)
        else:  # multi: N expressions on one image, through the cache
            size = 1
            fns['psalm'] = (
                lambda: psalm.predict_prompts(inputs, self.sentences),
                nullcontext)
            one = inputs.psalm_batch('referring', 1, False)
            fns['one'] = (lambda: psalm.predict(one), nullcontext)
            if 'no-cache' not in self.naive_parts:
                naive = lambda: psalm.predict_prompts(  # noqa: E731
                    inputs, self.sentences)
            elif args.multi_naive == 'measure':
                singles = [
                    dict(inputs=[inputs.image],
                         data_samples=[inputs.psalm_sample(
                             'referring', s, with_gt=False)])
                    for s in self.sentences
                ]
                naive = lambda: [psalm.predict(b)  # noqa: E731
                                 for b in singles]
            else:  # scale: N x one naive expression
                naive = lambda: psalm.predict(one)  # noqa: E731
                scale['naive'] = args.num_prompts
            fns['naive'] = (naive, self._naive_context)
            if self.m2f is not None:  # one image segmented once
                m2f_batch = inputs.mask2former_batch(
                    1, False, self.image_size)
                fns['mask2former'] = (
                    lambda: self.m2f.predict(m2f_batch), nullcontext)
        if self.naive is None:
            fns.pop('naive')
        return size, fns, scale

    def row(self, mode: str, task: str) -> dict:
        """Measure one (mode, task) and make its table row."""
        args = self.args
        size, fns, scale = self._group(mode, task)
        _log(f'{self.label} {mode} {task}: ' + ', '.join(fns))
        results = measure_group(fns, args.iters, args.warmup, self.device,
                                args.stat, args.flops)
        psalm = results['psalm']
        images = 1 if mode == 'multi' else size
        row = dict(
            config=self.label, mode=mode, task=task, device=self.device,
            precision=args.precision, batch=size, ms=psalm['ms'],
            ms_all=psalm['ms_all'],
            images_per_s=images * 1000 / psalm['ms'],
            peak_mb=psalm['peak_mb'], gflop=psalm['gflop'])
        if 'one' in results:
            one = results['one']
            row.update(
                num_prompts=args.num_prompts, one_prompt_ms=one['ms'],
                one_prompt_gflop=one['gflop'],
                prompts_ratio=paired_ratio(psalm, one),
                prompts_flop_ratio=_ratio(psalm['gflop'], one['gflop']))
        if 'naive' in results:
            naive, factor = results['naive'], scale.get('naive', 1)
            gflop = naive['gflop'] * factor if naive['gflop'] else None
            row.update(
                naive_ms=naive['ms'] * factor, naive_peak_mb=naive['peak_mb'],
                naive_gflop=gflop, naive_estimated=factor != 1,
                naive_ratio=paired_ratio(naive, psalm, factor),
                naive_flop_ratio=_ratio(gflop, psalm['gflop']))
        if 'mask2former' in results:
            m2f = results['mask2former']
            row.update(
                mask2former_ms=m2f['ms'], mask2former_peak_mb=m2f['peak_mb'],
                mask2former_gflop=m2f['gflop'],
                mask2former_ratio=paired_ratio(psalm, m2f),
                mask2former_flop_ratio=_ratio(psalm['gflop'], m2f['gflop']))
        _free(self.device)
        return row

    def rows(self) -> List[dict]:
        """Every requested (mode, task)."""
        self.build()
        rows = []
        try:
            for mode in self.args.modes:
                if mode == 'multi':
                    rows.append(self.row(mode, 'referring'))
                    continue
                rows += [self.row(mode, task) for task in self.args.tasks]
        finally:
            self.psalm = self.naive = self.m2f = None
            _free(self.device)
        return rows


def run_benchmark(args: argparse.Namespace) -> dict:
    """Run every requested measurement; returns the JSON-able results."""
    device = args.device
    results = dict(
        environment=dict(
            device=device,
            device_name=(torch.cuda.get_device_name()
                         if device == 'cuda' else platform.processor()
                         or platform.machine()),
            threads=torch.get_num_threads(), torch=torch.__version__,
            precision=args.precision, stat=args.stat, iters=args.iters,
            warmup=args.warmup, flops=args.flops,
            naive_parts=list(args.naive_parts)),
        params={}, rows=[])
    for name in args.configs:
        bench = _ConfigBenchmark(name, args)
        results['params'][bench.label] = bench.params()
        results['rows'] += bench.rows()
    return results


def _log(message: str) -> None:
    """Progress on stderr (the table goes to stdout)."""
    print(f'[benchmark] {message}', file=sys.stderr, flush=True)


def _fmt(value: Optional[float], digits: int = 1, suffix: str = '') -> str:
    if value is None:
        return '–'
    return f'{value:.{digits}f}{suffix}'


def _ratio_cell(row: dict, key: str) -> str:
    """``time ratio`` and, with FLOPs, ``(FLOP ratio)``."""
    ratio = row.get(f'{key}_ratio')
    if ratio is None:
        return '–'
    cell = f'{ratio:.2f}x'
    flop_ratio = row.get(f'{key}_flop_ratio')
    if flop_ratio is not None:
        cell += f' ({flop_ratio:.2f}x)'
    return cell


def format_table(results: dict) -> str:
    """The results as a markdown table, with the parameter counts and the
    measuring conditions below it."""
    header = ('| config | mode | task | device | precision | batch | '
              'ms/iter | images/s | peak mem (MB) | GFLOP | '
              'Mask2Former ms | PSALM / Mask2Former | naive ms | '
              'naive / PSALM | N prompts / 1 |')
    lines = [header, '|' + '---|' * (header.count('|') - 1)]
    for row in results['rows']:
        prompts = _ratio_cell(row, 'prompts')
        if row.get('num_prompts'):
            prompts = f"{row['num_prompts']}: {prompts}"
        lines.append(
            f"| {row['config']} | {row['mode']} | {row['task']} | "
            f"{row['device']} | {row['precision']} | {row['batch']} | "
            f"{_fmt(row['ms'])} | {_fmt(row['images_per_s'], 2)} | "
            f"{_fmt(row['peak_mb'], 0)} | {_fmt(row.get('gflop'))} | "
            f"{_fmt(row.get('mask2former_ms'))} | "
            f"{_ratio_cell(row, 'mask2former')} | "
            f"{'≈' if row.get('naive_estimated') else ''}"
            f"{_fmt(row.get('naive_ms'))} | "
            f"{_ratio_cell(row, 'naive')} | {prompts} |")
    params = []
    for label, counts in results['params'].items():
        psalm, m2f = counts['psalm'], counts['mask2former']
        params.append(
            f"{label}: PSALM {psalm['total']:.1f} M parameters "
            f"({psalm['trainable']:.1f} M trained), Mask2Former "
            f"{m2f['total']:.1f} M ({m2f['trainable']:.1f} M trained)")
    env = results['environment']
    lines.append('')
    lines.append(f"{env['device']} ({env['device_name']}), "
                 f"{env['threads']} threads, torch {env['torch']}; ms: "
                 f"{env['stat']} of {env['iters']} iterations after "
                 f"{env['warmup']} warm-up, ratios: median of the "
                 "per-iteration ratios (interleaved runs); naive = "
                 f"{' + '.join(env['naive_parts'])}; " + '; '.join(params))
    if env.get('flops'):
        lines.append('Ratio cells: time (FLOPs, counted by '
                     'torch.utils.flop_counter).')
    if any(row.get('naive_estimated') for row in results['rows']):
        lines.append('≈: N x one naive expression, timed in the same '
                     'iterations (--multi-naive scale)')
    return '\n'.join(lines)


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Benchmark PSALM training and inference speed against '
        "mmdet's Mask2Former and a naive (official-kind) PSALM execution")
    parser.add_argument(
        'configs', nargs='*', default=['tiny'],
        help=f'{" / ".join(CONFIGS)} or config paths (default: tiny)')
    parser.add_argument('--modes', nargs='+', choices=MODES,
                        default=list(MODES), help='what to measure')
    parser.add_argument('--tasks', nargs='+', choices=TASKS,
                        default=['referring'],
                        help='tasks of the train and infer modes')
    parser.add_argument(
        '--device', choices=['cpu', 'cuda'],
        default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument(
        '--precision', choices=['fp32', 'bf16'], default=None,
        help='bf16 autocast (deformable sampling stays fp32); default '
        'bf16 on CUDA, fp32 on the CPU')
    parser.add_argument('--train-batch-size', type=int, default=2)
    parser.add_argument('--infer-batch-size', type=int, default=1)
    parser.add_argument('--num-prompts', type=int, default=8,
                        help='referring expressions of the multi mode')
    parser.add_argument('--iters', type=int, default=3,
                        help='timed iterations (the median is reported)')
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument(
        '--stat', choices=['median', 'min'], default='median',
        help='statistic of the timed iterations (min: steadier on a '
        'shared machine)')
    parser.add_argument(
        '--flops', action='store_true',
        help='also count FLOPs (one more untimed call per measurement) '
        'and give FLOP ratios beside the time ratios')
    parser.add_argument(
        '--multi-naive', choices=['measure', 'scale'], default='measure',
        help='naive reference of the multi mode: run the N separate naive '
        'predicts, or time one naive expression and scale it by N (for '
        'slow paper-size CPU runs)')
    parser.add_argument('--baselines', nargs='*', choices=BASELINES,
                        default=list(BASELINES),
                        help='references measured in the same run')
    parser.add_argument('--naive-parts', nargs='+', choices=NAIVE_PARTS,
                        default=list(NAIVE_PARTS),
                        help='what the naive execution does')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch intra-op threads (CPU)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', help='also write the results as JSON')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of every config, key=value pairs')
    args = parser.parse_args(argv)
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: no CUDA device is available')
    if args.precision is None:
        args.precision = 'bf16' if args.device == 'cuda' else 'fp32'
    for key in ('train_batch_size', 'infer_batch_size', 'num_prompts',
                'iters'):
        if getattr(args, key) < 1:
            parser.error(f'--{key.replace("_", "-")} must be >= 1')
    return args


def main(argv: Optional[Sequence[str]] = None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    import projects.psalm  # noqa: F401
    register_all_modules()
    # mmengine's per-parameter init_weights reports are not wanted here
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel('WARNING')
    try:
        results = run_benchmark(args)
    finally:
        logger.setLevel(level)
    table = format_table(results)
    print(table)
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(dict(results, table=table), f, indent=2)
    return results


if __name__ == '__main__':
    main()
