# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""The PSALM model (paper Fig. 2): one straight line from pixels to masks.

1. vision encoder (Swin, frozen, run ONCE per image) -> 4 feature levels;
2. projector (last level) -> image tokens in the LLM width;
3. input schema: conversation, task instruction, condition prompt and mask
   tokens -> ``inputs_embeds`` with the span of every condition;
4. LLM (Phi) -> hidden states;
5. condition encoder: condition embeddings (classifier weights) and the
   projected mask-token outputs (decoder queries);
6. mask generator (pixel decoder on the SAME Swin features + Mask2Former
   decoder) -> masks and condition logits, 10 outputs (deep supervision);
7. loss: Hungarian matching loss (+ next-token loss for conversations);
   predict: per-task post-processing into mmdet/mmseg data samples.

The task is data (``data_sample.metainfo['prompt']['task']``), not a class
hierarchy; a batch holds one task (the multi-task sampler guarantees it).

Data-sample contract (filled by the PSALM pipelines):

* ``metainfo['prompt']``: the :class:`InputSchema` prompt dict (``task`` and
  ``class_names`` / ``sentences`` / ``num_regions`` / ``conversations``);
* ``metainfo['is_thing']`` (panoptic): one bool per class name;
* ``gt_instances.masks`` / ``gt_instances.labels`` (training): target masks;
  labels index ``class_names`` (category) or the visual prompt of each target
  (visual); unused for sentences (every target belongs to the sentence);
* ``prompt_masks``: ``[K, H, W]`` visual-prompt masks (visual tasks), drawn
  on the sample's own image unless ``prompt_inputs`` is given;
* ``prompt_inputs`` (optional, visual tasks): ``[P, 3, H, W]`` other images,
  normalised and padded like ``inputs``, on which the visual prompts are
  drawn instead (VOS: earlier frames); ``prompt_image_ids`` (``[K]`` long,
  optional when ``P == 1``) gives the image of each prompt.

Many prompts on one image (SAM-like): :meth:`PSALM.encode_image` runs the
parts that do not depend on the prompt once (Swin, projector, pixel decoder
and the LLM over the shared prefix ``system + [INST] + image tokens +
instruction``, kept as its key/value states) into an :class:`ImageCache`;
:meth:`PSALM.predict_prompts` then runs only the suffix of K prompts
(condition, ``[/INST]``, answer, mask tokens) as one padded batch on the
cached prefix, and the mask decoder on the cached pixel features. Causal
attention makes this exact: no prefix token attends to the suffix.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModel
from torch import Tensor

from mmdet.registry import MODELS
from mmdet.structures import DetDataSample, SampleList
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from .inference import CATEGORY_TASKS, fill_prediction
from .lmm.input_schema import TASK_CONDITIONS, SequenceSpec
from .lmm.language_model import PrefixStates

__all__ = ['CATEGORY_TASKS', 'ImageCache', 'PSALM']


@dataclass
class ImageCache:
    """Prompt-independent state of ONE image (:meth:`PSALM.encode_image`).

    Shape legend: C_l = Swin channels of level l; D = LLM width; Ni = image
    tokens; C = decoder width; H, W = padded input size.

    Attributes:
        feats (list[Tensor]): The 4 Swin levels, ``[1, C_l, H/s, W/s]``
            (strides 4..32).
        image_tokens (Tensor): ``[1, Ni, D]`` projected image tokens.
        grid (tuple[int, int]): ``(h, w)`` of the image-token grid.
        pixel_features (tuple): The pixel decoder's outputs,
            ``mask_features`` ``[1, C, H/4, W/4]`` and the multi-scale
            memories (low to high resolution), each ``[1, C, h_l, w_l]``.
        pad_shape (tuple[int, int]): ``(H, W)`` of the padded input.
        prefixes (dict): LLM key/value states of the shared prompt prefixes
            seen so far, keyed by the prefix token ids (one per task
            instruction); filled lazily by :meth:`PSALM.predict_prompts`.
            The states are never modified, only copied.
    """
    feats: List[Tensor]
    image_tokens: Tensor
    grid: Tuple[int, int]
    pixel_features: Tuple[Tensor, List[Tensor]]
    pad_shape: Tuple[int, int]
    prefixes: Dict[Tuple[int, ...], PrefixStates] = field(
        default_factory=dict)


def _checkpoints_safely(language_model: nn.Module) -> bool:
    """Whether an LLM checkpoints its activations and has no dropout > 0."""
    llm = getattr(language_model, 'llm', None)
    if not getattr(llm, 'is_gradient_checkpointing', False):
        return False
    return not any(
        isinstance(m, nn.Dropout) and m.p > 0 for m in llm.modules())


@MODELS.register_module()
class PSALM(BaseModel):
    """Pixelwise SegmentAtion with Large Multi-modal Model.

    Args:
        backbone (dict): Vision encoder (mmdet ``SwinTransformer``).
        projector (dict): Vision-language projector.
        language_model (dict): :class:`PhiLanguageModel` config.
        input_schema (dict): :class:`InputSchema` config (its tokenizer is the
            language model's).
        condition_encoder (dict): :class:`ConditionEncoder` config.
        mask_generator (dict): :class:`MaskGenerator` config.
        criterion (dict): :class:`PSALMCriterion` config.
        frozen_modules (Sequence[str]): Parts that are not trained and stay in
            eval mode: any of ``backbone``, ``projector``,
            ``language_model``, ``condition_encoder``, ``mask_generator``,
            ``mask_tokens``. Stage 2 (paper): only the vision encoder; stage 1
            (alignment): everything but the projector.
        shuffle_categories (bool): Shuffle the order of the class names in
            training prompts (official augmentation); the embeddings are put
            back in canonical order, ``background`` stays last.
        lm_loss_weight (float): Weight of the next-token loss of
            conversation samples.
        test_cfg (dict, optional): Post-processing settings:
            ``object_mask_thr``, ``iou_thr``, ``max_per_image``,
            ``gres_threshold``, ``gres_fallback_top1`` (official: answer the
            top-1 mask when no proposal passes the threshold, so "no target"
            is never predicted; paper default False), ``max_new_tokens``.
        data_preprocessor (dict, optional): :class:`PSALMDataPreprocessor`.
        init_cfg (dict, optional): Initialisation config.
    """

    PARTS = ('backbone', 'projector', 'language_model', 'condition_encoder',
             'mask_generator', 'mask_tokens')

    def __init__(self,
                 backbone: ConfigType,
                 projector: ConfigType,
                 language_model: ConfigType,
                 input_schema: ConfigType,
                 condition_encoder: ConfigType,
                 mask_generator: ConfigType,
                 criterion: ConfigType,
                 frozen_modules: Sequence[str] = ('backbone', ),
                 shuffle_categories: bool = True,
                 lm_loss_weight: float = 1.0,
                 test_cfg: OptConfigType = None,
                 data_preprocessor: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.projector = MODELS.build(projector)
        self.language_model = MODELS.build(language_model)
        self.input_schema = MODELS.build(
            input_schema,
            default_args=dict(tokenizer=self.language_model.tokenizer))
        llm_dims = self.language_model.hidden_size
        self.condition_encoder = MODELS.build(
            condition_encoder, default_args=dict(llm_dims=llm_dims))
        self.mask_generator = MODELS.build(mask_generator)
        self.criterion = MODELS.build(criterion)

        num_queries = self.mask_generator.num_queries
        if self.mask_generator.decoupled:
            if num_queries != self.input_schema.num_mask_tokens:
                raise ValueError(
                    f'the mask generator has {num_queries} queries but the '
                    f'input schema {self.input_schema.num_mask_tokens} mask '
                    'tokens')
            # the learnable mask tokens (official: zero-initialised)
            self.mask_tokens = nn.Parameter(torch.zeros(num_queries, llm_dims))
        elif self.input_schema.mask_token_position != 'bypass':
            raise ValueError('the non-decoupled mask generator takes no mask '
                             "tokens: set input_schema.mask_token_position="
                             "'bypass'")
        unknown = set(frozen_modules) - set(self.PARTS)
        if unknown:
            raise ValueError(f'unknown frozen_modules {sorted(unknown)}; '
                             f'choose among {self.PARTS}')
        self.frozen_modules = tuple(frozen_modules)
        for name in self.frozen_modules:
            part = getattr(self, name, None)  # no mask_tokens if not decoupled
            if part is not None:
                part.requires_grad_(False)
        self.shuffle_categories = shuffle_categories
        self.lm_loss_weight = lm_loss_weight
        self.test_cfg = dict(
            object_mask_thr=0.8, iou_thr=0.8, max_per_image=100,
            gres_threshold=0.6, gres_fallback_top1=False, max_new_tokens=64)
        self.test_cfg.update(test_cfg or {})

    # ------------------------------------------------------------------
    # set-up
    # ------------------------------------------------------------------
    def init_weights(self) -> None:
        """Initialise every part except the language model.

        mmengine calls ``init_weights`` on every child; the Hugging Face
        weights of the LLM (pretrained, or its own init for random configs)
        must never be re-initialised by it.
        """
        for name, child in self.named_children():
            if name != 'language_model' and hasattr(child, 'init_weights'):
                child.init_weights()
        self._is_init = True

    def train(self, mode: bool = True) -> 'PSALM':
        """Keep frozen parts in eval mode (no DropPath, BN running stats).

        Exception: a frozen language model with gradient checkpointing and
        no active dropout stays in train mode, because Hugging Face models
        checkpoint only in train mode (its activations are still needed to
        back-propagate to the image tokens and prompts).
        """
        super().train(mode)
        for name in self.frozen_modules:
            part = getattr(self, name, None)
            if not isinstance(part, nn.Module):
                continue
            if mode and _checkpoints_safely(part):
                continue
            part.eval()
        return self

    # ------------------------------------------------------------------
    # the forward line
    # ------------------------------------------------------------------
    @staticmethod
    def _batch_task(data_samples: SampleList) -> str:
        tasks = {sample.metainfo['prompt']['task'] for sample in data_samples}
        if len(tasks) != 1:
            raise ValueError(f'a batch must hold one task, got '
                             f'{sorted(tasks)} (use the multi-task batch '
                             'sampler)')
        return tasks.pop()

    def extract_feat(self, inputs: Tensor) -> Tuple[List[Tensor], Tensor]:
        """Run the vision encoder once and the projector.

        Args:
            inputs (Tensor): ``[B, 3, H, W]`` normalised images.

        Returns:
            tuple: the 4 Swin levels (strides 4..32) and the image tokens
            ``[B, Ni, D]``.
        """
        if 'backbone' in self.frozen_modules:
            with torch.no_grad():
                feats = list(self.backbone(inputs))
        else:
            feats = list(self.backbone(inputs))
        image_tokens = self.projector(feats[-1])
        return feats, image_tokens

    def _prompts(self, data_samples: SampleList,
                 task: str) -> Tuple[List[dict], List[Optional[Tensor]]]:
        """The prompts of the batch; in training, category prompts get a
        random class order. Returns the prompts and, per sample, the index
        that puts the pooled embeddings back in canonical order."""
        prompts, restore = [], []
        for sample in data_samples:
            prompt = dict(sample.metainfo['prompt'])
            prompt.setdefault('sample_id', sample.metainfo.get('img_path'))
            order = None
            if (task in CATEGORY_TASKS and self.training
                    and self.shuffle_categories):
                names = list(prompt['class_names'])
                perm = torch.randperm(len(names))
                prompt['class_names'] = [names[i] for i in perm]
                order = torch.argsort(perm)
            if TASK_CONDITIONS[task] == 'visual':
                prompt['num_regions'] = len(sample.prompt_masks)
            prompts.append(prompt)
            restore.append(order)
        return prompts, restore

    def _run_lmm(self, inputs: Tensor, data_samples: SampleList, task: str
                 ) -> Tuple[List[Tensor], Dict, Tensor, List[SequenceSpec]]:
        """Steps 1-4: features, prompts, LLM.

        Returns:
            tuple: Swin levels, the assembled batch, the LLM hidden states
            ``[B, L, D]`` and the restore orders of shuffled categories.
        """
        feats, image_tokens = self.extract_feat(inputs)
        prompts, restore = self._prompts(data_samples, task)
        specs = [self.input_schema.build(prompt) for prompt in prompts]
        region_embeds = None
        if TASK_CONDITIONS[task] == 'visual':
            grid = self.projector.grid_size(feats[-1].shape[-2:])
            region_embeds = self._encode_visual_prompts(
                image_tokens, grid, data_samples)
        batch = self.input_schema.assemble(specs,
                                           self.language_model.embed_tokens,
                                           image_tokens,
                                           self._llm_mask_tokens(task),
                                           region_embeds)
        hidden = self.language_model(batch['inputs_embeds'],
                                     batch['attention_mask'])  # [B, L, D]
        return feats, batch, hidden, restore

    def _encode_visual_prompts(self, image_tokens: Tensor,
                               grid: Tuple[int, int],
                               data_samples: SampleList) -> List[Tensor]:
        """Pool every visual prompt from the image it is drawn on.

        Prompts are pooled from the sample's own image tokens or, for a
        sample with ``prompt_inputs``, from the tokens of those prompt images
        (same vision encoder and projector).

        Args:
            image_tokens (Tensor): ``[B, Ni, D]`` tokens of the inputs.
            grid (tuple[int, int]): ``(h, w)`` of the token grid.
            data_samples (list[DetDataSample]): The batch.

        Returns:
            list[Tensor]: Per sample ``[K_b, D]`` region embeddings.
        """
        encode = self.condition_encoder.encode_visual_prompts
        if all('prompt_inputs' not in sample for sample in data_samples):
            return encode(image_tokens, grid,
                          [sample.prompt_masks for sample in data_samples])
        embeds = []
        for b, sample in enumerate(data_samples):
            masks = sample.prompt_masks  # [K, H, W]
            prompt_inputs = sample.get('prompt_inputs')
            if prompt_inputs is None:
                embeds += encode(image_tokens[b:b + 1], grid, [masks])
                continue
            image_ids = self._prompt_image_ids(sample, prompt_inputs, masks)
            _, prompt_tokens = self.extract_feat(prompt_inputs)  # [P, Ni, D]
            if prompt_tokens.shape[1:] != image_tokens.shape[1:]:
                raise ValueError(
                    f'{sample.metainfo.get("img_path")}: the prompt_inputs '
                    f'give {prompt_tokens.shape[1]} image tokens, the inputs '
                    f'{image_tokens.shape[1]}; pad them to the same size')
            pooled = image_tokens.new_zeros(len(masks), image_tokens.shape[-1])
            for image_id in image_ids.unique().tolist():
                chosen = image_ids == image_id
                pooled[chosen] = encode(prompt_tokens[image_id:image_id + 1],
                                        grid, [masks[chosen]])[0]
            embeds.append(pooled)
        return embeds

    @staticmethod
    def _prompt_image_ids(sample: DetDataSample, prompt_inputs: Tensor,
                          masks: Tensor) -> Tensor:
        """The validated prompt-image index of every visual prompt.

        Args:
            sample (DetDataSample): A sample with ``prompt_inputs``.
            prompt_inputs (Tensor): Its ``[P, 3, H, W]`` prompt images.
            masks (Tensor): Its ``[K, H, W]`` prompt masks.

        Returns:
            Tensor: ``[K]`` long indices into ``prompt_inputs``.
        """
        name = sample.metainfo.get('img_path')
        if prompt_inputs.dim() != 4 or prompt_inputs.shape[-2:] != \
                masks.shape[-2:]:
            raise ValueError(f'{name}: prompt_inputs must be [P, 3, H, W] '
                             f'with the {tuple(masks.shape[-2:])} size of '
                             'the prompt masks, got shape '
                             f'{tuple(prompt_inputs.shape)}')
        image_ids = sample.get('prompt_image_ids')
        if image_ids is None:
            if len(prompt_inputs) != 1:
                raise ValueError(f'{name}: {len(prompt_inputs)} prompt '
                                 'images need prompt_image_ids')
            return torch.zeros(
                len(masks), dtype=torch.long, device=masks.device)
        image_ids = torch.as_tensor(image_ids, device=masks.device).long()
        outside = (image_ids < 0) | (image_ids >= len(prompt_inputs))
        if image_ids.shape != (len(masks), ) or bool(outside.any()):
            raise ValueError(f'{name}: prompt_image_ids must hold one index '
                             f'in [0, {len(prompt_inputs)}) per prompt '
                             f'({len(masks)}), got {image_ids.tolist()}')
        return image_ids

    def _segment(self, inputs: Tensor, data_samples: SampleList, task: str
                 ) -> Tuple[List[Tensor], List[Tensor], Tensor, str]:
        """Steps 1-6 for a segmentation batch.

        Returns:
            tuple: per-output class logits ``[B, N, K]`` and mask logits
            ``[B, N, H/4, W/4]``, the condition mask ``[B, K]`` and the
            condition type.
        """
        feats, batch, hidden, restore = self._run_lmm(inputs, data_samples,
                                                      task)
        return self._decode(feats, batch, hidden, restore, task)

    def _decode(self,
                feats: List[Tensor],
                batch: Dict,
                hidden: Tensor,
                restore: List[Optional[Tensor]],
                task: str,
                pixel_features: Optional[Tuple[Tensor, List[Tensor]]] = None
                ) -> Tuple[List[Tensor], List[Tensor], Tensor, str]:
        """Steps 5-6: conditions and queries from the LLM, mask generator.

        Args:
            feats (list[Tensor]): Swin levels ``[B, C_l, H/s, W/s]``.
            batch (dict): The assembled batch (``cond_spans`` and, unless
                bypassed, ``mask_index``) in ``hidden`` coordinates.
            hidden (Tensor): ``[B, L, D]`` LLM hidden states.
            restore (list[Tensor | None]): Restore orders of shuffled
                category prompts.
            task (str): The batch's task.
            pixel_features (tuple, optional): Cached pixel-decoder outputs of
                one image (``[1, ...]`` each), shared by the B prompts; the
                pixel decoder then does not run.

        Returns:
            tuple: as :meth:`_segment`.
        """
        cond_type = TASK_CONDITIONS[task]
        cond_embeds, cond_mask = self.condition_encoder(
            hidden, batch['cond_spans'], cond_type)  # [B, K, C], [B, K]
        if any(order is not None for order in restore):
            # shuffled class names back in canonical order; background (last)
            # and padding keep their places
            index = torch.arange(cond_embeds.shape[1],
                                 device=cond_embeds.device).repeat(
                                     len(restore), 1)  # [B, K]
            for b, order in enumerate(restore):
                if order is not None:
                    index[b, :len(order)] = order.to(index.device)
            cond_embeds = cond_embeds.gather(
                1, index[..., None].expand_as(cond_embeds))
        queries = None
        if self.mask_generator.decoupled:
            if 'mask_index' in batch:  # suffix / prefix: LLM outputs
                index = batch['mask_index'][..., None].expand(
                    -1, -1, hidden.shape[-1])
                states = hidden.gather(1, index)  # [B, N, D]
            else:  # bypass: the mask tokens skip the LLM (Tab. 2)
                states = self.mask_tokens[None].expand(len(hidden), -1, -1)
            queries = self.condition_encoder.project_queries(states)
        if pixel_features is not None:
            # shape [1, C_l, h, w] -> [B, C_l, h, w] (views; only the batch
            # size and the number of levels are read)
            feats = [f.expand(len(hidden), -1, -1, -1) for f in feats]
        all_cls, all_masks = self.mask_generator(
            feats, queries, cond_embeds, cond_mask, cond_type,
            pixel_features=pixel_features)
        return all_cls, all_masks, cond_mask, cond_type

    # ------------------------------------------------------------------
    # BaseModel API
    # ------------------------------------------------------------------
    def forward(self,
                inputs: Tensor,
                data_samples: Optional[SampleList] = None,
                mode: str = 'tensor') -> Union[Dict[str, Tensor], list,
                                               Tuple[List[Tensor], ...]]:
        """``mode``: ``'loss'`` -> losses, ``'predict'`` -> data samples,
        ``'tensor'`` -> raw (class logits, mask logits) of every output."""
        if data_samples is None:
            raise ValueError('PSALM needs data samples carrying the prompts')
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            task = self._batch_task(data_samples)
            if TASK_CONDITIONS[task] is None:
                return self._run_lmm(inputs, data_samples, task)[2]
            return self._segment(inputs, data_samples, task)[:2]
        raise ValueError(f'invalid mode {mode!r}; use loss, predict or tensor')

    def loss(self, inputs: Tensor,
             data_samples: SampleList) -> Dict[str, Tensor]:
        """Matching loss for segmentation batches, next-token loss for
        conversation batches."""
        task = self._batch_task(data_samples)
        if TASK_CONDITIONS[task] is None:
            _, batch, hidden, _ = self._run_lmm(inputs, data_samples, task)
            loss = self.language_model.lm_loss(hidden, batch['labels'])
            return dict(loss_lm=loss * self.lm_loss_weight)
        all_cls, all_masks, cond_mask, cond_type = self._segment(
            inputs, data_samples, task)
        gt_masks, gt_labels = [], []
        for sample in data_samples:
            instances = sample.gt_instances
            masks = instances.masks
            if hasattr(masks, 'to_tensor'):  # BitmapMasks
                masks = masks.to_tensor(torch.bool, inputs.device)
            gt_masks.append(masks)  # [T_b, H, W]
            gt_labels.append(instances.labels.to(inputs.device).long())
        return self.criterion(all_cls, all_masks, gt_masks, gt_labels,
                              cond_type, cond_mask)

    def predict(self, inputs: Tensor,
                data_samples: SampleList) -> SampleList:
        """Per-task post-processing into the data samples."""
        task = self._batch_task(data_samples)
        if TASK_CONDITIONS[task] is None:
            return self._predict_text(inputs, data_samples, task)
        all_cls, all_masks, cond_mask, _ = self._segment(
            inputs, data_samples, task)
        self._fill_predictions(data_samples, task, all_cls[-1],
                               all_masks[-1], cond_mask, inputs.shape[-2:])
        return data_samples

    def _fill_predictions(self, data_samples: SampleList, task: str,
                          cls_logits: Tensor, mask_logits: Tensor,
                          cond_mask: Tensor,
                          pad_shape: Sequence[int]) -> None:
        """Post-process the last output of a batch into its samples.

        Args:
            data_samples (list[DetDataSample]): The batch (B samples).
            task (str): Its task.
            cls_logits (Tensor): ``[B, N, K]`` class logits.
            mask_logits (Tensor): ``[B, N, H/4, W/4]`` mask logits.
            cond_mask (Tensor): ``[B, K]`` valid conditions.
            pad_shape (Sequence[int]): ``(H, W)`` of the padded inputs.
        """
        for b, sample in enumerate(data_samples):
            shapes = (pad_shape, sample.metainfo['img_shape'],
                      sample.metainfo['ori_shape'])
            valid = cond_mask[b]
            logits = cls_logits[b][:, valid]  # [N, K_b]
            fill_prediction(sample, task, logits, mask_logits[b], shapes,
                            self.test_cfg)

    def _predict_text(self, inputs: Tensor, data_samples: SampleList,
                      task: str) -> SampleList:
        """Answer the open human turn of every conversation."""
        _, image_tokens = self.extract_feat(inputs)
        return self._answer(image_tokens, data_samples, task)

    def _answer(self, image_tokens: Tensor, data_samples: SampleList,
                task: str) -> SampleList:
        """Generate the answers from ``[B, Ni, D]`` image tokens."""
        prompts, _ = self._prompts(data_samples, task)
        specs = [self.input_schema.build(prompt) for prompt in prompts]
        batch = self.input_schema.assemble(specs,
                                           self.language_model.embed_tokens,
                                           image_tokens)
        texts = self.language_model.generate(
            batch['inputs_embeds'], batch['attention_mask'],
            max_new_tokens=self.test_cfg['max_new_tokens'])
        for sample, text in zip(data_samples, texts):
            sample.pred_text = text
        return data_samples

    # ------------------------------------------------------------------
    # many prompts on one image (cached)
    # ------------------------------------------------------------------
    @torch.no_grad()
    def encode_image(self,
                     inputs: Tensor,
                     data_samples: Optional[SampleList] = None
                     ) -> ImageCache:
        """Run everything that does not depend on the prompt, once.

        Args:
            inputs (Tensor): ``[1, 3, H, W]`` one normalised, padded image
                (the data preprocessor's output).
            data_samples (list[DetDataSample], optional): Samples of this
                image with prompts (``metainfo['prompt']``); the LLM prefix
                of their task is computed now instead of at the first
                :meth:`predict_prompts`.

        Returns:
            ImageCache: The image's features, pixel-decoder outputs and
            (for ``data_samples``) LLM prefix states.
        """
        if inputs.dim() != 4 or inputs.shape[0] != 1:
            raise ValueError('encode_image takes ONE image [1, 3, H, W], got '
                             f'shape {tuple(inputs.shape)}')
        feats, image_tokens = self.extract_feat(inputs)
        cache = ImageCache(
            feats=feats,
            image_tokens=image_tokens,
            grid=self.projector.grid_size(feats[-1].shape[-2:]),
            pixel_features=self.mask_generator.pixel_decoder(feats),
            pad_shape=tuple(inputs.shape[-2:]))
        if data_samples:
            task = self._batch_task(data_samples)
            if TASK_CONDITIONS[task] is not None:
                prompts, _ = self._prompts(data_samples, task)
                specs = [self.input_schema.build(p) for p in prompts]
                self._prefix_states(cache,
                                    self.input_schema.split_prefix(specs)[0])
        return cache

    @torch.no_grad()
    def predict_prompts(self, cache: ImageCache,
                        data_samples: SampleList) -> SampleList:
        """Predict K prompts on a cached image as one batch.

        Gives the results of K separate :meth:`predict` calls on the image
        (up to floating-point reordering), without re-running Swin, the
        projector, the pixel decoder or the LLM over the shared prefix: the
        LLM runs only each prompt's suffix (right-padded to the longest, on
        the prefix states copied K times, positions continuing after the
        prefix) and the mask decoder runs on the cached pixel features.
        Conversation tasks (``vqa``, ``caption``) reuse the image tokens.

        Args:
            cache (ImageCache): :meth:`encode_image` of the image.
            data_samples (list[DetDataSample]): K samples of that image, one
                task, with the preprocessed ``metainfo`` (``img_shape``,
                ``ori_shape``, ``prompt``) and, for visual prompts,
                ``prompt_masks`` ``[K_b, H, W]`` padded like the image.

        Returns:
            list[DetDataSample]: ``data_samples`` with their predictions,
            as :meth:`predict` fills them.
        """
        if not isinstance(cache, ImageCache):
            raise TypeError('cache must be the ImageCache of encode_image, '
                            f'got {type(cache).__name__}')
        if not data_samples:
            raise ValueError('predict_prompts needs at least one data sample')
        task = self._batch_task(data_samples)
        num_prompts = len(data_samples)
        # shape [1, Ni, D] -> [K, Ni, D] (view)
        image_tokens = cache.image_tokens.expand(num_prompts, -1, -1)
        if TASK_CONDITIONS[task] is None:
            return self._answer(image_tokens, data_samples, task)
        if not self.mask_generator.decoupled and num_prompts > 1:
            # the conditions are the decoder queries there: padding them to
            # a common number would change the result
            for sample in data_samples:
                self.predict_prompts(cache, [sample])
            return data_samples
        prompts, restore = self._prompts(data_samples, task)
        specs = [self.input_schema.build(prompt) for prompt in prompts]
        prefix_spec, suffix_specs = self.input_schema.split_prefix(specs)
        prefix = self._prefix_states(cache, prefix_spec)
        region_embeds = None
        if TASK_CONDITIONS[task] == 'visual':
            # one prompt at a time, as separate predict calls pool them (the
            # official sampled-points pooling draws from one seeded stream
            # per call)
            region_embeds = [
                self._encode_visual_prompts(cache.image_tokens, cache.grid,
                                            [sample])[0]
                for sample in data_samples
            ]
        batch = self.input_schema.assemble(
            suffix_specs,
            self.language_model.embed_tokens,
            None,
            self._llm_mask_tokens(task),
            region_embeds,
            prefix_length=prefix.length,
            device=image_tokens.device)
        hidden = self.language_model.forward_suffix(
            batch['inputs_embeds'], batch['attention_mask'],
            prefix)  # [K, S, D]
        all_cls, all_masks, cond_mask, _ = self._decode(
            cache.feats, batch, hidden, restore, task, cache.pixel_features)
        self._fill_predictions(data_samples, task, all_cls[-1],
                               all_masks[-1], cond_mask, cache.pad_shape)
        return data_samples

    def _llm_mask_tokens(self, task: str) -> Optional[Tensor]:
        """The ``[N, D]`` mask tokens the LLM sequence holds, if any."""
        if (self.mask_generator.decoupled
                and self.input_schema.mask_token_position != 'bypass'
                and TASK_CONDITIONS[task] is not None):
            return self.mask_tokens
        return None

    def _prefix_states(self, cache: ImageCache,
                       prefix_spec: SequenceSpec) -> PrefixStates:
        """The LLM states of a prompt prefix on the cached image (memoised
        in ``cache.prefixes``)."""
        key = tuple(prefix_spec.input_ids)
        if key not in cache.prefixes:
            batch = self.input_schema.assemble(
                [prefix_spec], self.language_model.embed_tokens,
                cache.image_tokens)
            cache.prefixes[key] = self.language_model.encode_prefix(
                batch['inputs_embeds'])  # [1, P, D] -> states
        return cache.prefixes[key]
