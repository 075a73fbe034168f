# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Conversation data for PSALM: LLaVA-1.5 instructions (``'vqa'``), LLaVA
stage-1 captions (``'caption'``) and VQA evaluation questions."""
import json
import logging
from collections import Counter
from typing import Any, Dict, List, Sequence, Union

import mmengine
from mmengine.dataset import BaseDataset
from mmengine.fileio import get_text
from mmengine.logging import print_log

from mmdet.registry import DATASETS
from .refcoco import is_unicode_text, load_annotation_file

IMAGE_MARKER = '<image>'


def move_image_marker(value: str) -> str:
    """Put ``<image>`` at the start of a turn, followed by a newline.

    LLaVA's ``preprocess_multimodal``: the marker is removed, the rest is
    stripped and ``'<image>\\n'`` is prepended.

    Args:
        value (str): Text of a human turn containing ``<image>``.

    Returns:
        str: ``'<image>\\n' + rest`` (``'<image>'`` when nothing is left).
    """
    rest = value.replace(IMAGE_MARKER, '').strip()
    return f'{IMAGE_MARKER}\n{rest}'.strip()


@DATASETS.register_module()
class LLaVAInstructDataset(BaseDataset):
    """LLaVA-1.5 instruction data (``llava_v1_5_mix665k.json`` format).

    The annotation file is a json list of ``{id, image, conversations}``
    records; ``conversations`` alternate ``{'from': 'human', 'value'}`` and
    ``{'from': 'gpt', 'value'}`` turns, starting with a human turn and ending
    with a gpt turn. The single ``<image>`` must be in the first human turn;
    it is moved to the start of that turn and followed by ``'\\n'``, as
    LLaVA's preprocessing does. Every gpt turn is an LM target.

    Text-only records (no ``image``, e.g. the ShareGPT part of mix665k) are
    skipped and their number is logged as a warning, as the official PSALM
    data preparation drops them (``skip_text_only=False`` raises instead).

    Data info: ``img_path``, ``img_id`` (the record's ``id``) and
    ``prompt = dict(task, conversations)``.

    Args:
        ann_file (str): The json file.
        data_prefix (dict): ``img_path``: folder of the images.
        skip_text_only (bool): Skip (and count) text-only records instead of
            raising. Defaults to True.
        data_root (str): Root of ``ann_file`` and ``data_prefix``.
        **kwargs: Other :class:`mmengine.dataset.BaseDataset` arguments.
    """
    TASK = 'vqa'

    def __init__(self,
                 ann_file: str,
                 data_prefix: Dict[str, str] = dict(img_path=''),
                 skip_text_only: bool = True,
                 data_root: str = '',
                 **kwargs) -> None:
        self.skip_text_only = skip_text_only
        super().__init__(
            ann_file=ann_file,
            data_root=data_root,
            data_prefix=data_prefix,
            **kwargs)

    def load_data_list(self) -> List[dict]:
        """Read and normalise the records.

        Returns:
            list[dict]: One data info per image record.
        """
        records = load_annotation_file(self.ann_file, 'json')
        if not isinstance(records, list):
            raise ValueError(f'{self.ann_file}: expected a json list of '
                             'records')
        join_path = mmengine.fileio.get_file_backend(
            self.data_prefix['img_path']).join_path
        data_list, num_text_only = [], 0
        for i, record in enumerate(records):
            source = f'{self.ann_file} record {i} (id {record.get("id")!r})'
            if 'image' not in record:
                if not self.skip_text_only:
                    raise ValueError(f'{source}: text-only record (no image)')
                num_text_only += 1
                continue
            conversations = self._conversations(
                record.get('conversations'), source)
            data_list.append(
                dict(
                    img_path=join_path(self.data_prefix['img_path'],
                                       record['image']),
                    img_id=record.get('id', i),
                    prompt=dict(task=self.TASK,
                                conversations=conversations)))
        if num_text_only:
            print_log(
                f'{self.ann_file}: skipped {num_text_only} text-only records '
                f'of {len(records)} (PSALM trains on image records only)',
                logger='current',
                level=logging.WARNING)
        if not data_list:
            raise ValueError(f'{self.ann_file}: no record with an image')
        return data_list

    def _conversations(self, turns: Any, source: str) -> List[dict]:
        """Validated turns, ``<image>`` moved to the start of the first."""
        if not isinstance(turns, list) or not turns or len(turns) % 2:
            raise ValueError(f'{source}: conversations must be a non-empty '
                             'list of human/gpt pairs')
        for k, turn in enumerate(turns):
            expected = 'human' if k % 2 == 0 else 'gpt'
            if (not isinstance(turn, dict) or turn.get('from') != expected
                    or not isinstance(turn.get('value'), str)):
                raise ValueError(f'{source}: turn {k} must be {{"from": '
                                 f'{expected!r}, "value": str}}, got {turn!r}')
            if not is_unicode_text(turn['value']):
                raise ValueError(
                    f'{source}: turn {k} is not valid Unicode (lone '
                    'surrogates, e.g. from non-UTF-8 bytes escaped into the '
                    f'json): {turn["value"][:80]!r}')
        counts = [turn['value'].count(IMAGE_MARKER) for turn in turns]
        if counts[0] != 1 or sum(counts) != 1:
            raise ValueError(f'{source}: needs exactly one {IMAGE_MARKER}, '
                             f'in the first human turn; counts per turn '
                             f'{counts}')
        first = dict(turns[0], value=move_image_marker(turns[0]['value']))
        return [first] + [dict(turn) for turn in turns[1:]]


@DATASETS.register_module()
class LLaVACaptionDataset(LLaVAInstructDataset):
    """Stage-1 caption data (task ``'caption'``): LLaVA-pretrain / CC3M-595K
    ``chat.json`` (``blip_laion_cc_sbu_558k.json``) records, i.e.
    :class:`LLaVAInstructDataset` records with exactly one human turn (a
    brief-description instruction and ``<image>``) and one gpt turn (the
    caption).

    Args:
        **kwargs: Arguments of :class:`LLaVAInstructDataset`.
    """
    TASK = 'caption'

    def _conversations(self, turns: Any, source: str) -> List[dict]:
        """One instruction/caption pair."""
        if not isinstance(turns, list) or len(turns) != 2:
            raise ValueError(f'{source}: a caption record has one human and '
                             'one gpt turn')
        return super()._conversations(turns, source)


@DATASETS.register_module()
class VQADataset(BaseDataset):
    """Visual questions with reference answers (task ``'vqa'``).

    The annotation file is a json list (or ``.jsonl``, one record per line)
    of ``{image, question, answer}`` or ``{image, question, answers}``
    records (``answers``: the human answers, e.g. 10 in VQA v2), optionally
    with ``question_id``. The question becomes ``'<image>\\n' + question +
    question_suffix``.

    * test mode: the conversation is the open human turn (the model
      generates the answer) and ``gt_answers`` (a str, or the list of
      answers) is in the data info for :class:`VQAMetric`;
    * training: the gpt turn is the answer (the most frequent one of
      ``answers``, the first of equally frequent ones).

    Data info: ``img_path``, ``img_id`` (the record's ``image_id``, else its
    index), ``question_id`` (or the index), ``prompt = dict(task='vqa',
    conversations)`` and, in test mode, ``gt_answers``.

    Args:
        ann_file (str): The json / jsonl file.
        data_prefix (dict): ``img_path``: folder of the images.
        question_suffix (str): Appended to every question, e.g. LLaVA-1.5's
            ``'\\nAnswer the question using a single word or phrase.'``.
            Defaults to ``''``.
        data_root (str): Root of ``ann_file`` and ``data_prefix``.
        **kwargs: Other :class:`mmengine.dataset.BaseDataset` arguments.
    """
    TASK = 'vqa'

    def __init__(self,
                 ann_file: str,
                 data_prefix: Dict[str, str] = dict(img_path=''),
                 question_suffix: str = '',
                 data_root: str = '',
                 **kwargs) -> None:
        self.question_suffix = question_suffix
        super().__init__(
            ann_file=ann_file,
            data_root=data_root,
            data_prefix=data_prefix,
            **kwargs)

    def _read_records(self) -> List[dict]:
        """The records of a json list or a jsonl file."""
        if self.ann_file.endswith('.jsonl'):
            text = get_text(self.ann_file)
            return [json.loads(line) for line in text.splitlines() if line]
        records = mmengine.load(self.ann_file, file_format='json')
        if not isinstance(records, list):
            raise ValueError(f'{self.ann_file}: expected a json list of '
                             'records')
        return records

    def load_data_list(self) -> List[dict]:
        """Read the questions.

        Returns:
            list[dict]: One data info per question.
        """
        join_path = mmengine.fileio.get_file_backend(
            self.data_prefix['img_path']).join_path
        data_list = []
        for i, record in enumerate(self._read_records()):
            source = f'{self.ann_file} record {i}'
            question = record.get('question')
            if not isinstance(question, str) or not question.strip():
                raise ValueError(f'{source}: no question')
            if IMAGE_MARKER in question:
                raise ValueError(f'{source}: the question must not contain '
                                 f'{IMAGE_MARKER}')
            if 'image' not in record:
                raise ValueError(f'{source}: no image')
            answers = self._answers(record, source)
            human = {
                'from': 'human',
                'value': f'{IMAGE_MARKER}\n{question.strip()}'
                f'{self.question_suffix}'
            }
            data_info = dict(
                img_path=join_path(self.data_prefix['img_path'],
                                   record['image']),
                img_id=record.get('image_id', i),
                question_id=record.get('question_id', i))
            if self.test_mode:
                conversations = [human]
                data_info['gt_answers'] = answers
            else:
                conversations = [
                    human, {
                        'from': 'gpt',
                        'value': _training_answer(answers)
                    }
                ]
            data_info['prompt'] = dict(
                task=self.TASK, conversations=conversations)
            data_list.append(data_info)
        if not data_list:
            raise ValueError(f'{self.ann_file}: no question')
        return data_list

    @staticmethod
    def _answers(record: Dict[str, Any],
                 source: str) -> Union[str, List[str]]:
        """The validated reference answer(s) of a record."""
        answers = record.get('answers', record.get('answer'))
        if isinstance(answers, str) and answers.strip():
            return answers
        if (isinstance(answers, list) and answers
                and all(isinstance(a, str) for a in answers)):
            return list(answers)
        raise ValueError(f'{source}: needs an answer (str) or answers (list '
                         f'of str), got {answers!r}')


def _training_answer(answers: Union[str, Sequence[str]]) -> str:
    """The answer a training conversation ends with."""
    if isinstance(answers, str):
        return answers
    return Counter(answers).most_common(1)[0][0]
