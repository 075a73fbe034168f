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
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.structures import InstanceData, PixelData
from torch import Tensor

from mmdet.registry import MODELS
from mmdet.structures import DetDataSample, SampleList
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from .inference import (category_inference, gres_inference,
                        referring_inference,
                        unique_visual_prompt_inference,
                        visual_prompt_inference)
from .lmm.input_schema import TASK_CONDITIONS, SequenceSpec

CATEGORY_TASKS = ('panoptic', 'semantic', 'instance')


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
        """Keep frozen parts in eval mode (no DropPath, BN running stats)."""
        super().train(mode)
        for name in self.frozen_modules:
            part = getattr(self, name, None)
            if isinstance(part, nn.Module):
                part.eval()
        return self

    # ------------------------------------------------------------------
    # the forward line
    # ------------------------------------------------------------------
    @staticmethod
    def _batch_task(data_samples: SampleList) -> str:
        tasks = {sample.metainfo['prompt']['task'] for sample in data_samples}
        if len(tasks) != 1:
            raise ValueError(f'a batch must hold one task, got {sorted(tasks)} '
                             '(use the multi-task batch sampler)')
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
        mask_tokens = None
        if (self.mask_generator.decoupled
                and self.input_schema.mask_token_position != 'bypass'
                and TASK_CONDITIONS[task] is not None):
            mask_tokens = self.mask_tokens
        batch = self.input_schema.assemble(specs,
                                           self.language_model.embed_tokens,
                                           image_tokens, mask_tokens,
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
        if image_ids.shape != (len(masks), ) or bool(
            ((image_ids < 0) | (image_ids >= len(prompt_inputs))).any()):
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
        cond_type = TASK_CONDITIONS[task]
        feats, batch, hidden, restore = self._run_lmm(inputs, data_samples,
                                                      task)
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
                states = self.mask_tokens[None].expand(len(data_samples), -1,
                                                       -1)
            queries = self.condition_encoder.project_queries(states)
        all_cls, all_masks = self.mask_generator(feats, queries, cond_embeds,
                                                 cond_mask, cond_type)
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
        cls_logits, mask_logits = all_cls[-1], all_masks[-1]
        pad_shape = inputs.shape[-2:]
        for b, sample in enumerate(data_samples):
            shapes = (pad_shape, sample.metainfo['img_shape'],
                      sample.metainfo['ori_shape'])
            valid = cond_mask[b]
            logits = cls_logits[b][:, valid]  # [N, K_b]
            self._fill_prediction(sample, task, logits, mask_logits[b],
                                  shapes)
        return data_samples

    def _fill_prediction(self, sample: DetDataSample, task: str,
                         logits: Tensor, masks: Tensor,
                         shapes: Tuple) -> None:
        """Turn one image's logits into ``pred_*`` fields."""
        cfg = self.test_cfg
        if task in CATEGORY_TASKS:
            out = category_inference(
                logits, masks, *shapes,
                is_thing=sample.metainfo.get('is_thing'),
                object_mask_thr=cfg['object_mask_thr'],
                iou_thr=cfg['iou_thr'],
                max_per_image=cfg['max_per_image'],
                panoptic=task == 'panoptic',
                instance=task in ('panoptic', 'instance'),
                semantic=task in ('panoptic', 'semantic'))
            if out.get('pan_seg') is not None:
                sample.pred_panoptic_seg = PixelData(sem_seg=out['pan_seg'][None])
            if out.get('instances') is not None:
                sample.pred_instances = out['instances']
            if out.get('sem_seg') is not None:
                sample.pred_sem_seg = PixelData(
                    sem_seg=out['sem_seg'].argmax(0, keepdim=True))
            return
        if task == 'referring':
            mask, score = referring_inference(logits, masks, *shapes)
            sample.pred_instances = InstanceData(
                masks=mask[None], scores=masks.new_tensor([score]))
        elif task == 'gres':
            mask, _ = gres_inference(
                logits, masks, *shapes, threshold=cfg['gres_threshold'],
                fallback_top1=cfg['gres_fallback_top1'])
            sample.pred_instances = InstanceData(
                masks=mask[None],
                scores=masks.new_tensor([float(mask.any())]))
        else:  # interactive / vos: one mask per visual prompt
            # VOS objects must not share a query (official protocol)
            infer = unique_visual_prompt_inference if task == 'vos' \
                else visual_prompt_inference
            region_masks, scores, _ = infer(logits, masks, *shapes)
            sample.pred_instances = InstanceData(
                masks=region_masks, scores=scores,
                labels=torch.arange(len(scores), device=scores.device))

    def _predict_text(self, inputs: Tensor, data_samples: SampleList,
                      task: str) -> SampleList:
        """Answer the open human turn of every conversation."""
        _, image_tokens = self.extract_feat(inputs)
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
