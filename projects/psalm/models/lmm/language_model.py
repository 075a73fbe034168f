# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Phi-1.5 wrapper used as PSALM's large language model.

Shape legend: B = sequences, L = length, D = hidden size, P = prefix length,
S = suffix length, K = suffixes sharing one prefix, Hk = key/value heads,
Dh = head width.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmengine.model.weight_init import initialize
from torch import Tensor
from transformers import DynamicCache, PhiConfig, PhiForCausalLM

from mmdet.registry import MODELS
from mmdet.utils import OptMultiConfig
from .lora import (ADAPTER, LORA_KEY, SCALING_KEY, apply_lora,
                   lora_layer_names)
from .tokenizer import PAD_TOKEN, add_tokens, load_tokenizer

IGNORE_INDEX = -100

__all__ = ['PhiLanguageModel', 'PrefixStates']


@dataclass(frozen=True)
class PrefixStates:
    """Key/value states of the decoder layers over one shared prefix.

    Built by :meth:`PhiLanguageModel.encode_prefix` and only read by
    :meth:`PhiLanguageModel.forward_suffix`, which copies them into a fresh
    cache, so one prefix serves any number of calls.

    Attributes:
        layers (tuple): Per decoder layer ``(keys, values)``, each
            ``[1, Hk, P, Dh]``.
        length (int): The prefix length P.
    """
    layers: Tuple[Tuple[Tensor, Tensor], ...]
    length: int


@MODELS.register_module()
class PhiLanguageModel(BaseModule):
    """Hugging Face ``PhiForCausalLM`` with the PSALM vocabulary.

    The tokenizer gets ``added_tokens`` appended and the input/output
    embeddings are resized to ``len(tokenizer)`` (official: 50297 rows, down
    from Phi-1.5's 51200) with the official initialisation of the new rows:
    ``[PAD]`` = mean of the pre-existing rows (LLaVA's
    ``smart_tokenizer_and_embedding_resize``), every other new token
    (``[SEG]``, ``[REF]``) ~ N(0, ``initializer_range`` = 0.02).

    Args:
        tokenizer (str): Local tokenizer folder.
        pretrained (str, optional): Local Hugging Face Phi folder, loaded in
            fp32. Checkpoints in the transformers-4.36 layout (fused
            ``query_key_value``) must be converted first; missing weights
            raise instead of being silently re-initialised.
        config (dict, optional): ``PhiConfig`` kwargs for a randomly
            initialised model (tests). Exactly one of ``pretrained`` and
            ``config`` must be given.
        added_tokens (Sequence[str]): Tokens appended to the tokenizer.
        lm_head_bias (bool): Keep a bias in ``lm_head``. The official model
            re-creates it bias-free (Phi's trained bias is discarded).
        attn_implementation (str): Hugging Face attention backend.
        gradient_checkpointing (bool): Non-reentrant activation checkpointing
            of the decoder layers (disables the KV cache in training).
        max_length (int): Longest accepted sequence.
        lora (dict, optional): LoRA adapters on the decoder's linear layers
            (``peft``, see :mod:`.lora`): ``r``, ``alpha``, ``dropout``,
            ``target_modules``, ``use_rslora``. Every other weight of the LLM
            (embeddings, layer norms, ``lm_head`` included) is then frozen;
            only the adapters train. The adapters and their scaling
            (``lora_scaling``) are entries of the state dict; a checkpoint
            without them (e.g. the stage-2 model) loads into a LoRA model
            with fresh adapters (``lora_B = 0``: the loaded model unchanged),
            and a LoRA checkpoint loads into a model without ``lora`` only
            after ``tools/model_converters/merge_lora.py``. Don't list
            ``language_model`` in PSALM's ``frozen_modules`` with LoRA (that
            would freeze the adapters too).
        init_cfg (dict or list[dict], optional): Only ``Pretrained`` entries
            are accepted; the Hugging Face weights are never re-initialised.
    """

    def __init__(self,
                 tokenizer: str,
                 pretrained: Optional[str] = None,
                 config: Optional[dict] = None,
                 added_tokens: Sequence[str] = (PAD_TOKEN, '[SEG]'),
                 lm_head_bias: bool = False,
                 attn_implementation: str = 'sdpa',
                 gradient_checkpointing: bool = False,
                 max_length: int = 2048,
                 lora: Optional[dict] = None,
                 init_cfg: OptMultiConfig = None) -> None:
        init_cfgs = [init_cfg] if isinstance(init_cfg, dict) else (init_cfg
                                                                   or [])
        for cfg in init_cfgs:
            if cfg.get('type') != 'Pretrained':
                raise ValueError(
                    f'PhiLanguageModel only accepts Pretrained init_cfg, got '
                    f'{cfg}; the Hugging Face weights are not re-initialised')
        super().__init__(init_cfg=init_cfg)
        if (pretrained is None) == (config is None):
            raise ValueError('give exactly one of pretrained and config, got '
                             f'pretrained={pretrained!r}, config={config!r}')
        if max_length < 1:
            raise ValueError(f'max_length must be positive, got {max_length}')
        self.max_length = max_length

        self.tokenizer = load_tokenizer(tokenizer)
        num_old_tokens = len(self.tokenizer)
        new_tokens = add_tokens(self.tokenizer, added_tokens)
        if self.tokenizer.pad_token is None:
            raise ValueError(f'tokenizer {tokenizer!r} has no pad token; '
                             f'include {PAD_TOKEN!r} in added_tokens')
        self.tokenizer.model_max_length = max_length

        if pretrained is not None:
            self.llm = self._load_pretrained(pretrained, attn_implementation)
        else:
            phi_config = PhiConfig(
                **config, attn_implementation=attn_implementation)
            self.llm = PhiForCausalLM(phi_config).float()
        if not lm_head_bias:
            self.llm.lm_head.register_parameter('bias', None)
        self._resize_embeddings(num_old_tokens, new_tokens)

        for cfg in (self.llm.config, self.llm.generation_config):
            cfg.pad_token_id = self.tokenizer.pad_token_id
            cfg.eos_token_id = self.tokenizer.eos_token_id
            cfg.bos_token_id = self.tokenizer.bos_token_id
        self.lora = dict(lora) if lora else None
        if self.lora is not None:
            scaling = apply_lora(self.llm, self.lora)
            self.register_buffer(
                SCALING_KEY, torch.tensor(scaling, dtype=torch.float32))
            self._lora_layers = tuple(lora_layer_names(self.llm))
        self._register_load_state_dict_pre_hook(self._adapt_lora_keys)
        if gradient_checkpointing:
            kwargs = {'use_reentrant': False}
            if hasattr(self.llm, 'activation_checkpointing_enable'):
                self.llm.activation_checkpointing_enable(
                    activation_checkpointing_kwargs=kwargs)
            else:
                self.llm.gradient_checkpointing_enable(
                    gradient_checkpointing_kwargs=kwargs)
            self.llm.config.use_cache = False

    @staticmethod
    def _load_pretrained(path: str,
                         attn_implementation: str) -> PhiForCausalLM:
        """Load a local Phi checkpoint in fp32, refusing missing weights."""
        if not Path(path).is_dir():
            raise ValueError(f'pretrained path {path!r} is not an existing '
                             'directory')
        llm, info = PhiForCausalLM.from_pretrained(
            path,
            dtype=torch.float32,
            attn_implementation=attn_implementation,
            output_loading_info=True)
        missing = [k for k in info['missing_keys'] if k != 'lm_head.bias']
        if missing:
            raise ValueError(
                f'pretrained checkpoint {path!r} lacks {len(missing)} weights '
                f'(e.g. {missing[:3]}); a transformers-4.36 Phi checkpoint '
                '(fused self_attn.query_key_value) must be converted to '
                'q_proj/k_proj/v_proj first')
        if info['unexpected_keys']:
            print_log(
                f'{path}: ignored {len(info["unexpected_keys"])} unexpected '
                f'weights, e.g. {info["unexpected_keys"][:3]}',
                logger='current')
        return llm

    def _adapt_lora_keys(self, state_dict: Dict[str, Tensor], prefix: str,
                         local_metadata: dict, strict: bool,
                         missing_keys: List[str], unexpected_keys: List[str],
                         error_msgs: List[str]) -> None:
        """Load-state-dict pre-hook: match LoRA and plain checkpoints.

        * model without LoRA, checkpoint with adapters: raise (merge first);
        * LoRA model, plain checkpoint (``X.weight``): renamed to
          ``X.base_layer.weight``; its adapters and scaling are taken from
          the model (fresh adapters, ``lora_B = 0``), logged once;
        * LoRA model, LoRA checkpoint: the scalings must agree.
        """
        if self.lora is None:
            adapters = [
                key for key in state_dict
                if key.startswith(prefix) and LORA_KEY.match(key)
            ]
            if adapters:
                raise ValueError(
                    f'the checkpoint has LoRA adapters ({len(adapters)} '
                    f'weights, e.g. {adapters[0]!r}) but the language model '
                    'was built without `lora`; merge them into plain weights '
                    'with tools/model_converters/merge_lora.py, or build the '
                    'model with the same language_model.lora')
            return
        scaling_key = prefix + SCALING_KEY
        if scaling_key in state_dict and not torch.isclose(
                state_dict[scaling_key].float().cpu(),
                self.lora_scaling.float().cpu(), rtol=1e-3):
            raise ValueError(
                f'the checkpoint\'s LoRA scaling '
                f'{float(state_dict[scaling_key]):g} differs from the '
                f'model\'s {float(self.lora_scaling):g} (alpha / r of '
                f'language_model.lora={self.lora}); use the lora settings the '
                'checkpoint was trained with')
        fresh = 0
        for name in self._lora_layers:
            layer = self.llm.get_submodule(name)
            key = f'{prefix}llm.{name}.'
            for param in ('weight', 'bias'):
                plain, base = key + param, key + 'base_layer.' + param
                if plain in state_dict and base not in state_dict:
                    state_dict[base] = state_dict.pop(plain)
            if key + 'base_layer.weight' not in state_dict:
                continue  # this checkpoint does not hold the layer
            for part in ('A', 'B'):
                lora_key = f'{key}lora_{part}.{ADAPTER}.weight'
                if lora_key not in state_dict:
                    module = getattr(layer, f'lora_{part}')[ADAPTER]
                    state_dict[lora_key] = module.weight.detach().clone()
                    fresh += part == 'A'
        if fresh:
            state_dict.setdefault(scaling_key, self.lora_scaling.clone())
            print_log(
                f'LoRA: the checkpoint has no adapters for {fresh} adapted '
                'layers; they start fresh (lora_B = 0)', logger='current')

    @torch.no_grad()
    def _resize_embeddings(self, num_old_tokens: int,
                           new_tokens: List[str]) -> None:
        """Resize both embeddings to the tokenizer and init the new rows."""
        self.llm.resize_token_embeddings(
            len(self.tokenizer), mean_resizing=False)
        std = self.llm.config.initializer_range
        weights = [
            self.llm.get_input_embeddings().weight,
            self.llm.get_output_embeddings().weight
        ]
        bias = self.llm.get_output_embeddings().bias
        for token in new_tokens:
            idx = self.token_id(token)
            for weight in weights:
                if token == PAD_TOKEN:
                    weight[idx] = weight[:num_old_tokens].mean(dim=0)
                else:
                    weight[idx].normal_(mean=0.0, std=std)
            if bias is not None:
                bias[idx] = 0.0

    def init_weights(self) -> None:
        """Apply ``Pretrained`` init_cfg only; never re-init the LLM.

        mmengine calls ``init_weights`` on every child that has one, the
        Hugging Face model included; stopping the recursion here keeps the
        loaded Phi weights and the new-token initialisation intact.
        """
        if not self._is_init and self.init_cfg:
            initialize(self, self.init_cfg)
        self._is_init = True

    @property
    def hidden_size(self) -> int:
        """Width of the LLM hidden states (2048 for Phi-1.5)."""
        return self.llm.config.hidden_size

    def token_id(self, token: str) -> int:
        """Id of a single token of the vocabulary, e.g. ``'[SEG]'``."""
        token_id = self.tokenizer.convert_tokens_to_ids(token)
        if token_id is None or (token_id == self.tokenizer.unk_token_id
                                and token != self.tokenizer.unk_token):
            raise ValueError(f'token {token!r} is not in the vocabulary')
        return token_id

    def embed_tokens(self, ids: Tensor) -> Tensor:
        """Look up token embeddings.

        Args:
            ids (Tensor): Token ids of any shape ``[*]``.

        Returns:
            Tensor: Embeddings ``[*, D]``.
        """
        return self.llm.get_input_embeddings()(ids)

    def forward(self, inputs_embeds: Tensor, attention_mask: Tensor) -> Tensor:
        """Run the decoder on embedded (right-padded) sequences.

        Args:
            inputs_embeds (Tensor): ``[B, L, D]`` input embeddings.
            attention_mask (Tensor): ``[B, L]`` 1/True on valid positions.

        Returns:
            Tensor: Last hidden states ``[B, L, D]`` after the final
            layernorm (no logits are computed).
        """
        self._check_inputs(inputs_embeds, attention_mask)
        outputs = self.llm.model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            use_cache=False)
        return outputs.last_hidden_state

    @torch.no_grad()
    def encode_prefix(self, inputs_embeds: Tensor) -> PrefixStates:
        """Run the decoder over a prefix shared by later suffixes.

        Args:
            inputs_embeds (Tensor): ``[1, P, D]`` prefix embeddings (no
                padding).

        Returns:
            PrefixStates: The per-layer key/value states of the prefix.
        """
        if inputs_embeds.dim() != 3 or inputs_embeds.shape[0] != 1:
            raise ValueError('encode_prefix takes one prefix [1, P, D], got '
                             f'shape {tuple(inputs_embeds.shape)}')
        self._check_inputs(inputs_embeds,
                           inputs_embeds.new_ones(inputs_embeds.shape[:2]))
        cache = DynamicCache(config=self.llm.config)
        self.llm.model(
            inputs_embeds=inputs_embeds, cache=cache, use_cache=True)
        layers = tuple((layer.keys, layer.values) for layer in cache.layers)
        return PrefixStates(layers=layers, length=inputs_embeds.shape[1])

    @torch.no_grad()
    def forward_suffix(self, inputs_embeds: Tensor, attention_mask: Tensor,
                       prefix: PrefixStates) -> Tensor:
        """Run the decoder on K right-padded suffixes of one prefix.

        The K suffixes attend to the prefix states (copied K times into a
        new cache; ``prefix`` is left untouched) and, causally, to their own
        valid tokens; their positions continue after the prefix. The result
        equals :meth:`forward` on each full sequence, restricted to the
        suffix positions.

        Args:
            inputs_embeds (Tensor): ``[K, S, D]`` suffix embeddings.
            attention_mask (Tensor): ``[K, S]`` 1/True on valid positions
                (right padding).
            prefix (PrefixStates): :meth:`encode_prefix` of the prefix.

        Returns:
            Tensor: ``[K, S, D]`` last hidden states of the suffixes.
        """
        self._check_inputs(inputs_embeds, attention_mask)
        num, length = attention_mask.shape
        if prefix.length + length > self.max_length:
            raise ValueError(f'prefix ({prefix.length}) + suffix ({length}) '
                             f'tokens exceed max_length={self.max_length}')
        # shape [1, Hk, P, Dh] -> [K, Hk, P, Dh]; the cache concatenates new
        # states onto copies, never into these tensors
        cache = DynamicCache(
            ddp_cache_data=[(keys.expand(num, -1, -1, -1),
                             values.expand(num, -1, -1, -1))
                            for keys, values in prefix.layers],
            config=self.llm.config)
        # shape [K, S] -> [K, P + S]
        full_mask = torch.cat([
            attention_mask.new_ones(num, prefix.length), attention_mask
        ], dim=1)
        position_ids = torch.arange(
            prefix.length, prefix.length + length,
            device=inputs_embeds.device)[None].expand(num, -1)  # [K, S]
        outputs = self.llm.model(
            inputs_embeds=inputs_embeds,
            attention_mask=full_mask,
            position_ids=position_ids,
            cache=cache,
            use_cache=True)
        return outputs.last_hidden_state

    def lm_loss(self, hidden: Tensor, labels: Tensor) -> Tensor:
        """Next-token cross-entropy on the supervised positions.

        Logits are computed only where a label exists, so no ``[B, L, V]``
        tensor is materialised.

        Args:
            hidden (Tensor): ``[B, L, D]`` output of :meth:`forward`.
            labels (Tensor): ``[B, L]`` target ids, ``-100`` = ignored.

        Returns:
            Tensor: Scalar mean loss over the valid targets; ``0`` (still
            connected to ``hidden`` and ``lm_head``) when none is valid.
        """
        if hidden.shape[:2] != labels.shape:
            raise ValueError(f'hidden {tuple(hidden.shape)} and labels '
                             f'{tuple(labels.shape)} do not match')
        shift_labels = labels[:, 1:]  # [B, L-1]
        valid = shift_labels != IGNORE_INDEX
        logits = self.llm.lm_head(hidden[:, :-1][valid]).float()  # [T, V]
        loss = F.cross_entropy(logits, shift_labels[valid], reduction='sum')
        return loss / valid.sum().clamp(min=1)

    @torch.no_grad()
    def generate(self,
                 inputs_embeds: Tensor,
                 attention_mask: Tensor,
                 max_new_tokens: int = 128,
                 **kwargs) -> List[str]:
        """Generate text after embedded prompts (greedy by default).

        Right-padded prompts are moved to left padding first, as decoder-only
        generation requires.

        Args:
            inputs_embeds (Tensor): ``[B, L, D]`` prompt embeddings.
            attention_mask (Tensor): ``[B, L]`` 1/True on valid positions.
            max_new_tokens (int): Generation budget.
            **kwargs: Extra ``GenerationMixin.generate`` arguments.

        Returns:
            List[str]: The generated continuations, special tokens removed.
        """
        self._check_inputs(inputs_embeds, attention_mask)
        mask = attention_mask.bool()
        lengths = mask.sum(dim=1, keepdim=True)  # [B, 1]
        seq_len = mask.shape[1]
        # Gather index that rotates each row's padding to the front.
        index = (torch.arange(seq_len, device=mask.device) + lengths) % seq_len
        left_embeds = inputs_embeds.gather(
            1, index[..., None].expand_as(inputs_embeds))
        left_mask = mask.gather(1, index).long()
        kwargs.setdefault('do_sample', False)
        kwargs.setdefault('use_cache', True)
        output_ids = self.llm.generate(
            inputs_embeds=left_embeds,
            attention_mask=left_mask,
            max_new_tokens=max_new_tokens,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.tokenizer.eos_token_id,
            **kwargs)
        return self.tokenizer.batch_decode(
            output_ids, skip_special_tokens=True)

    def _check_inputs(self, inputs_embeds: Tensor,
                      attention_mask: Tensor) -> None:
        """Validate ``[B, L, D]`` embeddings against a ``[B, L]`` mask."""
        if inputs_embeds.dim() != 3 or (inputs_embeds.shape[:2]
                                        != attention_mask.shape):
            raise ValueError(
                f'inputs_embeds {tuple(inputs_embeds.shape)} must be [B, L, '
                f'D] with attention_mask {tuple(attention_mask.shape)} [B, L]')
        if inputs_embeds.shape[1] > self.max_length:
            raise ValueError(f'sequence length {inputs_embeds.shape[1]} '
                             f'exceeds max_length={self.max_length}')
