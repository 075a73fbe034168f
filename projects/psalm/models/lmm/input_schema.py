# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""PSALM input schema: per-sample token sequences and batch assembly.

A sample's sequence is the ``llava_phi`` conversation template (LLaMA-2
style) around a task instruction, a condition prompt and the mask tokens
(shown on two lines; ``\\n`` = newline)::

    [INST] <<SYS>>\\n{system}\\n<</SYS>>\\n\\n{user} [/INST] {assistant}
    <|endoftext|>

Further turns are ``<|endoftext|>[INST] {user} [/INST] {assistant}
<|endoftext|>``. Non-text inputs are negative placeholder ids in
:attr:`SequenceSpec.input_ids` that :meth:`InputSchema.assemble` expands into
embeddings: the image (one id -> all image tokens), the mask tokens (one id ->
``num_mask_tokens`` positions) and one id per visual prompt (region).
"""
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor
from transformers import PreTrainedTokenizerBase

from mmdet.registry import MODELS
from .tokenizer import CachedEncoder

IGNORE_INDEX = -100
IMAGE_TOKEN_INDEX = -200
MASK_TOKEN_INDEX = -201
REGION_TOKEN_INDEX = -203

SYSTEM_PROMPT = (
    'You are a helpful language and vision assistant. You are able to '
    'understand the visual content that the user provides, and assist the '
    'user with a variety of tasks using natural language.')
EOS_TEXT = '<|endoftext|>'
IMAGE_MARKER = '<image>'

#: Condition type of every task; ``None`` = conversation (LM loss) task.
TASK_CONDITIONS: Dict[str, Optional[str]] = {
    'panoptic': 'category',
    'semantic': 'category',
    'instance': 'category',
    'referring': 'sentence',
    'gres': 'sentence',
    'interactive': 'visual',
    'vos': 'visual',
    'vqa': None,
    'caption': None,
}

# Paper Tab. 14 instructions.
PAPER_INSTRUCTIONS = {
    'category': 'You need to segment all objects. '
    'This is all the candidate categories:',
    'sentence': 'Please segment according to the following instruction:',
    'visual': 'Please segment by given regions:',
}
PAPER_ANSWER = 'Sure, the segmentation result is '
# Official strings (psalm/train/train_datasets.py), quirks included.
OFFICIAL_CATEGORY_INSTRUCTION = (
    ', Please do {} Segmentation.\nThis is all the candidate categories: ')
OFFICIAL_SENTENCE_INSTRUCTION = (
    ', Please doing Referring Segmentation according to the following '
    'instruction:\n')
OFFICIAL_VISUAL_INSTRUCTION = (
    ', Please segment by given regions\nThis is all regions: ')
OFFICIAL_IMAGE_PREFIX = 'This is an image '
OFFICIAL_ANSWER = '\nSure, the segmentation result is '
OFFICIAL_VISUAL_ANSWER = '\n[SEG]'

_PLACEHOLDER_TEXT = {
    IMAGE_TOKEN_INDEX: IMAGE_MARKER,
    MASK_TOKEN_INDEX: '<seg>',
    REGION_TOKEN_INDEX: '<region>',
}


@dataclass
class SequenceSpec:
    """Token sequence of one sample, before placeholder expansion.

    Attributes:
        input_ids (List[int]): Token ids with negative placeholders
            (image -200, mask tokens -201, region -203).
        labels (List[int]): LM targets aligned with ``input_ids``; ``-100``
            everywhere except conversation answers and their closing eos.
        cond_spans (List[Tuple[int, int]]): Half-open ``[start, end)`` span of
            each condition in ``input_ids`` (class k with its terminator, the
            sentence(s) with the terminator, or the single region id).
        cond_type (str, optional): ``'category'``, ``'sentence'``,
            ``'visual'`` or ``None`` (conversation).
        task (str): The task of the prompt.
        sample_id (Any): Identifier used in error messages.
    """
    input_ids: List[int]
    labels: List[int]
    cond_spans: List[Tuple[int, int]]
    cond_type: Optional[str]
    task: str
    sample_id: Any = None


@dataclass
class _Cond:
    """Condition text, followed by the terminator of its condition type."""
    text: str


@dataclass
class _Answer:
    """Supervised (LM target) text."""
    text: str


_Item = Union[str, int, _Cond, _Answer]


@MODELS.register_module()
class InputSchema:
    """Builds PSALM token sequences and assembles them into LLM inputs.

    Args:
        tokenizer (PreTrainedTokenizerBase, optional): The model's tokenizer;
            may be set later through the ``tokenizer`` attribute.
        num_mask_tokens (int): Mask tokens per sample (100).
        prompt_style (str): ``'paper'`` (Tab. 14 instructions, natural
            tokenisation ``"categories: person, car."``) or ``'official'``
            (the released model's exact strings, e.g. ``'Please doing
            Referring Segmentation'``, and its chunked tokenisation).
        category_terminator (str, optional): Token appended to every class
            name (official: ``'[SEG]'``).
        sentence_terminator (str, optional): Token appended to the sentence
            condition (paper: ``'[REF]'``, official: ``'[SEG]'``).
        mask_token_position (str): ``'suffix'`` (end of the assistant turn),
            ``'prefix'`` (right after the image tokens) or ``'bypass'`` (not
            in the LLM sequence), as in the paper's Tab. 2 ablation.
        max_length (int): Longest expanded sequence.
        append_background (bool): Append ``'background'`` (the no-object
            class) to the category list.
        merge_sentences (bool): Join all sentences of a referent into one
            condition ``" s1. s2. ... sn."`` (official protocol); otherwise a
            sentence-condition prompt must carry exactly one sentence.
        official_semantic_as_panoptic (bool): With the official style, prompt
            the ``'semantic'`` task with ``'Please do Panoptic Segmentation.'``
            as the official open-vocabulary evaluation does (the only prompt
            the released model was trained with); ``False`` uses the unused
            COCO-semantic string ``'Please do Semantic Segmentation.'``.
        truncate_conversations (bool): Cut conversation samples longer than
            ``max_length`` (the official collator's behaviour) instead of
            raising. Segmentation samples always raise.
    """

    def __init__(self,
                 tokenizer: Optional[PreTrainedTokenizerBase] = None,
                 num_mask_tokens: int = 100,
                 prompt_style: str = 'paper',
                 category_terminator: Optional[str] = None,
                 sentence_terminator: Optional[str] = '[REF]',
                 mask_token_position: str = 'suffix',
                 max_length: int = 2048,
                 append_background: bool = True,
                 merge_sentences: bool = False,
                 official_semantic_as_panoptic: bool = True,
                 truncate_conversations: bool = False) -> None:
        if prompt_style not in ('paper', 'official'):
            raise ValueError(f'prompt_style must be paper or official, got '
                             f'{prompt_style!r}')
        if mask_token_position not in ('suffix', 'prefix', 'bypass'):
            raise ValueError('mask_token_position must be suffix, prefix or '
                             f'bypass, got {mask_token_position!r}')
        if num_mask_tokens < 1:
            raise ValueError(
                f'num_mask_tokens must be positive, got {num_mask_tokens}')
        self.num_mask_tokens = num_mask_tokens
        self.prompt_style = prompt_style
        self.category_terminator = category_terminator
        self.sentence_terminator = sentence_terminator
        self.mask_token_position = mask_token_position
        self.max_length = max_length
        self.append_background = append_background
        self.merge_sentences = merge_sentences
        self.official_semantic_as_panoptic = official_semantic_as_panoptic
        self.truncate_conversations = truncate_conversations
        self._tokenizer: Optional[PreTrainedTokenizerBase] = None
        self._encoder: Optional[CachedEncoder] = None
        self._terminator_ids: Dict[str, List[int]] = {}
        if tokenizer is not None:
            self.tokenizer = tokenizer

    @property
    def tokenizer(self) -> Optional[PreTrainedTokenizerBase]:
        """The tokenizer; setting it resolves the terminator ids."""
        return self._tokenizer

    @tokenizer.setter
    def tokenizer(self, tokenizer: PreTrainedTokenizerBase) -> None:
        vocab = tokenizer.get_vocab()
        terminator_ids = {}
        for cond_type, token in (('category', self.category_terminator),
                                 ('sentence', self.sentence_terminator)):
            if token is None:
                terminator_ids[cond_type] = []
            elif token in vocab:
                terminator_ids[cond_type] = [vocab[token]]
            else:
                raise ValueError(
                    f'{cond_type}_terminator {token!r} is not a token of the '
                    'tokenizer; add it to the language model\'s added_tokens')
        self._tokenizer = tokenizer
        self._encoder = CachedEncoder(tokenizer)
        self._terminator_ids = terminator_ids

    # ------------------------------------------------------------------
    # per-sample sequences
    # ------------------------------------------------------------------
    def build(self, prompt: Dict[str, Any]) -> SequenceSpec:
        """Build the token sequence of one sample.

        Args:
            prompt (dict): ``task`` plus its fields: ``class_names``
                (category tasks), ``sentences`` (sentence tasks),
                ``num_regions`` (visual tasks) or ``conversations`` (``vqa``,
                ``caption``: LLaVA ``{'from', 'value'}`` turns, one
                ``<image>``; a trailing human turn is left open for
                generation). Optional ``sample_id`` for error messages.

        Returns:
            SequenceSpec: The sample's ids, labels and condition spans.
        """
        if self._encoder is None:
            raise ValueError('InputSchema has no tokenizer; pass one to the '
                             'constructor or set schema.tokenizer')
        if not isinstance(prompt, dict):
            raise ValueError(f'prompt must be a dict, got {type(prompt)}')
        sample_id = prompt.get('sample_id')
        task = prompt.get('task')
        if task not in TASK_CONDITIONS:
            raise ValueError(f'sample {sample_id!r}: unknown task {task!r}, '
                             f'expected one of {list(TASK_CONDITIONS)}')
        cond_type = TASK_CONDITIONS[task]
        if cond_type is None:
            items = self._conversation_items(prompt, sample_id)
        else:
            user, answer = self._segmentation_messages(prompt, task, cond_type,
                                                       sample_id)
            items = self._template([(user, answer)])
        input_ids, labels, cond_spans = self._tokenize(items, cond_type)
        return SequenceSpec(
            input_ids=input_ids,
            labels=labels,
            cond_spans=cond_spans,
            cond_type=cond_type,
            task=task,
            sample_id=sample_id)

    def _segmentation_messages(
            self, prompt: Dict[str, Any], task: str, cond_type: str,
            sample_id: Any) -> Tuple[List[_Item], List[_Item]]:
        """User and assistant items of a segmentation prompt."""
        official = self.prompt_style == 'official'
        if cond_type == 'category':
            names = self._class_names(prompt, sample_id)
            if official:
                kind = 'Panoptic' if (
                    task != 'semantic'
                    or self.official_semantic_as_panoptic) else 'Semantic'
                conds = [_Cond(name) for name in names]
                head = [OFFICIAL_CATEGORY_INSTRUCTION.format(kind)]
                tail = ['.\n']
            else:
                conds = [_Cond(' ' + name) for name in names]
                head = ['\n' + PAPER_INSTRUCTIONS['category']]
                tail = ['.']
            body = head + _join(conds, ', ' if official else ',') + tail
        elif cond_type == 'sentence':
            sentence = self._sentence_text(prompt, sample_id)
            head = (
                OFFICIAL_SENTENCE_INSTRUCTION if official else '\n' +
                PAPER_INSTRUCTIONS['sentence'])
            body = [head, _Cond(sentence)]
        else:
            num_regions = prompt.get('num_regions')
            if (not isinstance(num_regions, (int, np.integer))
                    or isinstance(num_regions, bool) or num_regions < 1):
                raise ValueError(f'sample {sample_id!r}: task {task!r} needs '
                                 'num_regions >= 1, got '
                                 f'{num_regions!r}')
            body = [
                OFFICIAL_VISUAL_INSTRUCTION if official else '\n' +
                PAPER_INSTRUCTIONS['visual']
            ]
            for k in range(num_regions):
                body += [
                    ' ', REGION_TOKEN_INDEX,
                    ',' if k < num_regions - 1 else '.'
                ]
            if official:
                body.append('\n')
        if official:
            user = [OFFICIAL_IMAGE_PREFIX, IMAGE_TOKEN_INDEX] + body
            answer = (
                OFFICIAL_VISUAL_ANSWER
                if cond_type == 'visual' else OFFICIAL_ANSWER)
        else:
            user = [IMAGE_TOKEN_INDEX] + body
            answer = PAPER_ANSWER
        if self.mask_token_position == 'suffix':
            answer = [answer, MASK_TOKEN_INDEX]
        else:
            answer = [answer.rstrip()]
            if self.mask_token_position == 'prefix':
                user.insert(
                    user.index(IMAGE_TOKEN_INDEX) + 1, MASK_TOKEN_INDEX)
        return user, answer

    def _class_names(self, prompt: Dict[str, Any],
                     sample_id: Any) -> List[str]:
        """Validated class names, ``'background'`` appended if enabled."""
        names = prompt.get('class_names')
        if not names or isinstance(names, str):
            raise ValueError(f'sample {sample_id!r}: task '
                             f'{prompt["task"]!r} needs a non-empty '
                             f'class_names list, got {names!r}')
        for name in names:
            if not isinstance(name, str) or not name.strip():
                raise ValueError(f'sample {sample_id!r}: empty or non-str '
                                 f'class name {name!r}')
        names = list(names)
        if self.append_background:
            if 'background' in names:
                raise ValueError(f'sample {sample_id!r}: class_names already '
                                 'contain background and append_background '
                                 'is True')
            names.append('background')
        return names

    def _sentence_text(self, prompt: Dict[str, Any], sample_id: Any) -> str:
        """Sentence condition text ``" s1. s2. ... sn."`` (official format)."""
        sentences = prompt.get('sentences')
        if not sentences or isinstance(sentences, str):
            raise ValueError(f'sample {sample_id!r}: task '
                             f'{prompt["task"]!r} needs a non-empty '
                             f'sentences list, got {sentences!r}')
        for sentence in sentences:
            if not isinstance(sentence, str) or not sentence.strip():
                raise ValueError(f'sample {sample_id!r}: empty or non-str '
                                 f'sentence {sentence!r}')
        if len(sentences) > 1 and not self.merge_sentences:
            raise ValueError(f'sample {sample_id!r}: {len(sentences)} '
                             'sentences given but merge_sentences is False')
        return ''.join(f' {sentence}.' for sentence in sentences)

    def _conversation_items(self, prompt: Dict[str, Any],
                            sample_id: Any) -> List[_Item]:
        """Template items of a LLaVA conversation (answers supervised)."""
        convs = prompt.get('conversations')
        if not convs or not isinstance(convs, (list, tuple)):
            raise ValueError(f'sample {sample_id!r}: task {prompt["task"]!r} '
                             'needs a non-empty conversations list')
        for i, turn in enumerate(convs):
            expected = 'human' if i % 2 == 0 else 'gpt'
            if (not isinstance(turn, dict) or turn.get('from') != expected
                    or not isinstance(turn.get('value'), str)):
                raise ValueError(f'sample {sample_id!r}: turn {i} must be '
                                 f'{{"from": {expected!r}, "value": str}}, '
                                 f'got {turn!r}')
        num_images = sum(turn['value'].count(IMAGE_MARKER) for turn in convs)
        if num_images != 1 or IMAGE_MARKER not in ''.join(
                turn['value'] for turn in convs[::2]):
            raise ValueError(f'sample {sample_id!r}: the conversation needs '
                             f'exactly one {IMAGE_MARKER} in a human turn, '
                             f'found {num_images}')
        turns = []
        for i in range(0, len(convs), 2):
            question = convs[i]['value']
            if IMAGE_MARKER in question:
                # LLaVA's preprocess_multimodal: the image opens the turn.
                rest = question.replace(IMAGE_MARKER, '').strip()
                user = [IMAGE_TOKEN_INDEX] + (['\n' + rest] if rest else [])
            else:
                user = [question]
            answer = convs[i + 1]['value'] if i + 1 < len(convs) else None
            turns.append((user, answer))
        return self._template(turns)

    @staticmethod
    def _template(
        turns: Sequence[Tuple[List[_Item], Union[None, str, List[_Item]]]]
    ) -> List[_Item]:
        """Wrap turns in the ``llava_phi`` template.

        A ``str`` answer is supervised (conversation), a list of items is
        not (segmentation), ``None`` leaves the turn open for generation.
        """
        items: List[_Item] = []
        for i, (user, answer) in enumerate(turns):
            items.append(f'[INST] <<SYS>>\n{SYSTEM_PROMPT}\n<</SYS>>\n\n'
                         if i == 0 else f'{EOS_TEXT}[INST] ')
            items += user
            items.append(' [/INST]')
            if isinstance(answer, str):
                items += [_Answer(f' {answer} '), _Answer(EOS_TEXT)]
            elif answer is not None:
                items += [' '] + answer + [f' {EOS_TEXT}']
        return items

    def _tokenize(
        self, items: List[_Item], cond_type: Optional[str]
    ) -> Tuple[List[int], List[int], List[Tuple[int, int]]]:
        """Tokenise items; text is chunked only at non-text items."""
        merged: List[_Item] = []
        for item in items:
            if isinstance(item, str) and merged and isinstance(
                    merged[-1], str):
                merged[-1] += item
            else:
                merged.append(item)
        texts = [
            item if isinstance(item, str) else item.text for item in merged
            if not isinstance(item, int)
        ]
        encoded = iter(self._encoder.encode(texts))
        terminator = self._terminator_ids.get(cond_type, [])
        input_ids: List[int] = []
        labels: List[int] = []
        cond_spans: List[Tuple[int, int]] = []
        for item in merged:
            start = len(input_ids)
            if isinstance(item, int):
                input_ids.append(item)
                if item == REGION_TOKEN_INDEX:
                    cond_spans.append((start, start + 1))
            elif isinstance(item, _Cond):
                input_ids += next(encoded)
                input_ids += terminator
                cond_spans.append((start, len(input_ids)))
            else:
                input_ids += next(encoded)
            if isinstance(item, _Answer):
                labels += input_ids[start:]
            else:
                labels += [IGNORE_INDEX] * (len(input_ids) - start)
        return input_ids, labels, cond_spans

    def decode(self, input_ids: Sequence[int]) -> str:
        """Render ids as text for inspection.

        Placeholders appear as ``<image>``, ``<seg>`` and ``<region>``.
        """
        if self._tokenizer is None:
            raise ValueError('InputSchema has no tokenizer')
        pieces: List[str] = []
        run: List[int] = []
        for token_id in list(input_ids) + [None]:
            if token_id is not None and token_id >= 0:
                run.append(token_id)
                continue
            if run:
                pieces.append(
                    self._tokenizer.decode(
                        run, clean_up_tokenization_spaces=False))
                run = []
            if token_id is not None:
                pieces.append(_PLACEHOLDER_TEXT.get(token_id, f'<{token_id}>'))
        return ''.join(pieces)

    def split_prefix(
        self, specs: Sequence[SequenceSpec]
    ) -> Tuple[SequenceSpec, List[SequenceSpec]]:
        """Split sequences into their shared prefix and their suffixes.

        The prefix is the longest common start of all ``input_ids`` that
        ends before the first condition span, region or mask-token
        placeholder of any of them (their LLM outputs are read, and regions
        differ per prompt even where the ids agree), e.g. ``system + [INST]
        + image + instruction`` for prompts of one task. Prefix + suffix of a
        spec is the spec again.

        Args:
            specs (Sequence[SequenceSpec]): Sequences of prompts on one
                image (the same image placeholder).

        Returns:
            tuple: The prefix spec (holds the image, no conditions) and one
            suffix spec per input, whose ``cond_spans`` are relative to the
            suffix start.
        """
        if not specs:
            raise ValueError('split_prefix needs at least one spec')
        first = specs[0].input_ids
        end = min(len(spec.input_ids) for spec in specs)
        for spec in specs:
            stops = [start for start, _ in spec.cond_spans] + [
                i for i, token_id in enumerate(spec.input_ids)
                if token_id in (MASK_TOKEN_INDEX, REGION_TOKEN_INDEX)
            ]
            end = min([end] + stops)
            same = [a == b for a, b in zip(first[:end], spec.input_ids)]
            if not all(same):
                end = same.index(False)
        if IMAGE_TOKEN_INDEX not in first[:end]:
            raise ValueError('the prompts share no prefix holding the image: '
                             f'{[spec.sample_id for spec in specs]}')
        if any(len(spec.input_ids) == end for spec in specs):
            raise ValueError('a prompt is entirely shared prefix: nothing of '
                             'it is left to predict from')
        head = specs[0]
        prefix = SequenceSpec(
            input_ids=list(first[:end]),
            labels=[IGNORE_INDEX] * end,
            cond_spans=[],
            cond_type=head.cond_type,
            task=head.task,
            sample_id=head.sample_id)
        suffixes = [
            SequenceSpec(
                input_ids=list(spec.input_ids[end:]),
                labels=list(spec.labels[end:]),
                cond_spans=[(start - end, stop - end)
                            for start, stop in spec.cond_spans],
                cond_type=spec.cond_type,
                task=spec.task,
                sample_id=spec.sample_id) for spec in specs
        ]
        return prefix, suffixes

    # ------------------------------------------------------------------
    # batch assembly
    # ------------------------------------------------------------------
    def assemble(self,
                 specs: Sequence[SequenceSpec],
                 embed_tokens: Callable[[Tensor], Tensor],
                 image_embeds: Optional[Tensor],
                 mask_embeds: Optional[Tensor] = None,
                 region_embeds: Optional[Sequence[Tensor]] = None,
                 *,
                 prefix_length: int = 0,
                 device: Optional[torch.device] = None) -> Dict[str, Any]:
        """Expand placeholders and pad a batch into LLM inputs.

        Args:
            specs (Sequence[SequenceSpec]): One spec per sample (B).
            embed_tokens (Callable): Maps a 1-D LongTensor of token ids
                ``[T]`` to embeddings ``[T, D]``; called once per batch.
            image_embeds (Tensor, optional): ``[B, Ni, D]`` projected image
                tokens; None for suffixes of :meth:`split_prefix`, which
                hold no image.
            mask_embeds (Tensor, optional): ``[N, D]`` mask-token embeddings,
                shared by all samples; required when the specs hold mask
                tokens.
            region_embeds (Sequence[Tensor], optional): Per sample
                ``[K_b, D]`` visual-prompt embeddings; required when a spec
                holds regions.
            prefix_length (int): Length of the (already encoded) prefix the
                specs continue; counts towards ``max_length``.
            device (torch.device, optional): Device of the outputs when
                ``image_embeds`` is None.

        Returns:
            dict: ``inputs_embeds`` ``[B, L, D]``, ``attention_mask``
            ``[B, L]`` (long, right padding), ``labels`` ``[B, L]``
            (``-100`` on image/mask/region/padding), ``mask_index``
            ``[B, N]`` (absent when no sample has mask tokens),
            ``cond_spans`` (list of ``[K_b, 2]`` LongTensors, expanded
            coordinates) and ``image_span`` ``[B, 2]`` (absent without
            ``image_embeds``).
        """
        if image_embeds is not None and (image_embeds.dim() != 3 or
                                         image_embeds.shape[0] != len(specs)):
            raise ValueError(f'image_embeds {tuple(image_embeds.shape)} must '
                             f'be [B={len(specs)}, Ni, D]')
        if image_embeds is None and device is None:
            raise ValueError('assemble needs image_embeds or a device')
        if region_embeds is not None and len(region_embeds) != len(specs):
            raise ValueError(f'region_embeds has {len(region_embeds)} '
                             f'entries for {len(specs)} samples')
        if image_embeds is not None:
            device = image_embeds.device
        num_image = None if image_embeds is None else image_embeds.shape[1]
        num_mask = self.num_mask_tokens
        layouts = [
            self._layout(spec, num_image, region_embeds, b, prefix_length)
            for b, spec in enumerate(specs)
        ]
        has_mask = {layout['mask_start'] is not None for layout in layouts}
        if len(has_mask) > 1:
            raise ValueError('a batch mixes samples with and without mask '
                             'tokens: '
                             f'{[spec.sample_id for spec in specs]}')
        has_mask = has_mask.pop()
        if has_mask and (mask_embeds is None or mask_embeds.dim() != 2
                         or mask_embeds.shape[0] != num_mask):
            got = None if mask_embeds is None else tuple(mask_embeds.shape)
            raise ValueError(f'mask_embeds must be [{num_mask}, D], got {got}')

        # Positions and values of every filled slot, batch-wide.
        text_b, text_pos, text_ids, text_labels = [], [], [], []
        image_b, image_pos, mask_pos, region_b, region_pos = [], [], [], [], []
        for b, layout in enumerate(layouts):
            text_b.append(np.full(len(layout['text_pos']), b))
            text_pos.append(layout['text_pos'])
            text_ids.append(layout['text_ids'])
            text_labels.append(layout['text_labels'])
            if num_image is not None:
                image_b.append(np.full(num_image, b))
                image_pos.append(layout['image_start'] + np.arange(num_image))
            if has_mask:
                mask_pos.append(layout['mask_start'] + np.arange(num_mask))
            region_b.append(np.full(len(layout['region_pos']), b))
            region_pos.append(layout['region_pos'])

        def _long(arrays: List[np.ndarray]) -> Tensor:
            return torch.from_numpy(np.concatenate(arrays).astype(
                np.int64)).to(device)

        text_index = (_long(text_b), _long(text_pos))
        text_embeds = embed_tokens(_long(text_ids))  # [T, D]
        dtype = text_embeds.dtype
        values, batch_index, pos_index = [text_embeds], [text_index[0]], [
            text_index[1]
        ]
        if num_image is not None:
            values.append(image_embeds.flatten(0, 1).to(dtype))
            batch_index.append(_long(image_b))
            pos_index.append(_long(image_pos))
        if has_mask:
            values.append(mask_embeds.to(dtype).repeat(len(specs), 1))
            batch_index.append(
                torch.arange(len(specs),
                             device=device).repeat_interleave(num_mask))
            pos_index.append(_long(mask_pos))
        num_regions = sum(len(p) for p in region_pos)
        if num_regions:
            values.append(torch.cat(list(region_embeds)).to(dtype))
            batch_index.append(_long(region_b))
            pos_index.append(_long(region_pos))

        lengths = torch.tensor([layout['length'] for layout in layouts],
                               device=device)
        max_len = int(lengths.max())
        batch_size, dim = len(specs), text_embeds.shape[-1]
        index = (torch.cat(batch_index), torch.cat(pos_index))
        inputs_embeds = text_embeds.new_zeros(batch_size, max_len,
                                              dim).index_put(
                                                  index, torch.cat(values))
        labels = torch.full((batch_size, max_len),
                            IGNORE_INDEX,
                            dtype=torch.long,
                            device=device)
        labels[text_index] = _long(text_labels)
        attention_mask = (torch.arange(max_len, device=device)[None]
                          < lengths[:, None]).long()
        out = dict(
            inputs_embeds=inputs_embeds,  # [B, L, D]
            attention_mask=attention_mask,  # [B, L]
            labels=labels,  # [B, L]
            cond_spans=[
                torch.as_tensor(
                    layout['cond_spans'], dtype=torch.long,
                    device=device).reshape(-1, 2) for layout in layouts
            ],
        )
        if num_image is not None:
            out['image_span'] = torch.tensor(
                [[layout['image_start'], layout['image_start'] + num_image]
                 for layout in layouts],
                dtype=torch.long,
                device=device)  # [B, 2]
        if has_mask:
            out['mask_index'] = _long(mask_pos).view(batch_size,
                                                     num_mask)  # [B, N]
        return out

    def _layout(self,
                spec: SequenceSpec,
                num_image: Optional[int],
                region_embeds: Optional[Sequence[Tensor]],
                b: int,
                prefix_length: int = 0) -> Dict[str, Any]:
        """Expanded positions of one sample's ids (validated); no image
        placeholder is expected when ``num_image`` is None."""
        ids = np.asarray(spec.input_ids, dtype=np.int64)
        is_image = ids == IMAGE_TOKEN_INDEX
        is_mask = ids == MASK_TOKEN_INDEX
        is_region = ids == REGION_TOKEN_INDEX
        is_text = ids >= 0
        unknown = ~(is_text | is_image | is_mask | is_region)
        if unknown.any():
            raise ValueError(f'sample {spec.sample_id!r}: unknown placeholder '
                             f'ids {sorted(set(ids[unknown].tolist()))}')
        num_images = 0 if num_image is None else 1
        if is_image.sum() != num_images or is_mask.sum() > 1:
            raise ValueError(f'sample {spec.sample_id!r}: needs '
                             f'{num_images} image and at most one mask '
                             'placeholder, got '
                             f'{int(is_image.sum())} and {int(is_mask.sum())}')
        num_regions = int(is_region.sum())
        given = 0 if region_embeds is None else region_embeds[b].shape[0]
        if given != num_regions:
            raise ValueError(f'sample {spec.sample_id!r}: {num_regions} '
                             'region placeholders but region_embeds has '
                             f'{given} rows')
        width = np.ones_like(ids)
        width[is_image] = num_image or 0
        width[is_mask] = self.num_mask_tokens
        starts = np.concatenate([[0], np.cumsum(width)])  # [n + 1]
        length = int(starts[-1])
        text_pos = starts[:-1][is_text]
        text_ids = ids[is_text]
        text_labels = np.asarray(spec.labels, dtype=np.int64)[is_text]
        if prefix_length and prefix_length + length > self.max_length:
            raise ValueError(
                f'sample {spec.sample_id!r} ({spec.task}): expanded '
                f'length {prefix_length + length} (prefix {prefix_length}) '
                f'exceeds max_length={self.max_length}')
        if length > self.max_length:
            keep = text_pos < self.max_length
            if (spec.cond_type is not None or not self.truncate_conversations
                    or starts[:-1][is_image][0] + num_image > self.max_length):
                raise ValueError(
                    f'sample {spec.sample_id!r} ({spec.task}): expanded '
                    f'length {length} exceeds max_length={self.max_length}')
            text_pos, text_ids = text_pos[keep], text_ids[keep]
            text_labels = text_labels[keep]
            length = self.max_length
        return dict(
            length=length,
            text_pos=text_pos,
            text_ids=text_ids,
            text_labels=text_labels,
            image_start=int(starts[:-1][is_image][0])
            if is_image.any() else None,
            mask_start=int(starts[:-1][is_mask][0]) if is_mask.any() else None,
            region_pos=starts[:-1][is_region],
            cond_spans=[(int(starts[s]), int(starts[e]))
                        for s, e in spec.cond_spans],
        )


def _join(items: List[_Item], separator: str) -> List[_Item]:
    """Interleave ``items`` with a text separator."""
    out: List[_Item] = []
    for i, item in enumerate(items):
        if i:
            out.append(separator)
        out.append(item)
    return out
