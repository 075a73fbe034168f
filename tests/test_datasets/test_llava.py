# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""LLaVA instruction / caption / VQA datasets on real LLaVA records, through
the model's InputSchema."""
import json
import os
import os.path as osp
from itertools import groupby

import pytest

import projects.psalm  # noqa: F401
from mmdet.registry import DATASETS
from mmdet.utils import register_all_modules
from projects.psalm.datasets import llava as llava_module
from projects.psalm.models.lmm import (DEFAULT_TOKENIZER_DIR, IGNORE_INDEX,
                                       InputSchema, build_tokenizer)

SIZE = 256
PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(SIZE, SIZE), keep_ratio=True),
    dict(type='PackPSALMInputs')
]
COCO_IMAGES = ('000000142238.jpg', '000000439180.jpg')


@pytest.fixture(scope='module')
def tokenizer():
    return build_tokenizer(DEFAULT_TOKENIZER_DIR, ('[PAD]', '[SEG]', '[REF]'))


@pytest.fixture(scope='module')
def schema(tokenizer):
    return InputSchema(tokenizer)


def _image_dir(tmp_path, data_root, records):
    """A folder where every record's image is one of the 2 COCO images."""
    src = osp.join(data_root, 'coco_panoptic_sample', 'input_images')
    for i, record in enumerate(records):
        link = tmp_path / record['image']
        if not link.exists():
            os.symlink(osp.join(src, COCO_IMAGES[i % 2]), link)
    return str(tmp_path)


def _build(ann_file, type_='LLaVAInstructDataset', img_dir='', **kwargs):
    register_all_modules()
    return DATASETS.build(
        dict(
            type=type_,
            ann_file=ann_file,
            data_prefix=dict(img_path=img_dir),
            **kwargs))


def _supervised_runs(tokenizer, spec):
    """Decoded runs of consecutive supervised (label != -100) tokens."""
    runs = []
    for supervised, group in groupby(
            zip(spec.input_ids, spec.labels),
            key=lambda pair: pair[1] != IGNORE_INDEX):
        if supervised:
            ids = [label for _, label in group]
            runs.append(tokenizer.decode(
                ids, clean_up_tokenization_spaces=False))
    return runs


def test_instruct_100_tokenises_with_answer_only_labels(
        data_root, tokenizer, schema):
    path = osp.join(data_root, 'llava', 'llava_instruct_100.json')
    with open(path) as f:
        records = json.load(f)
    ds = _build(path)
    assert len(ds) == len(records) == 100
    moved = 0
    for idx, record in enumerate(records):
        info = ds.get_data_info(idx)
        assert info['img_id'] == record['id']
        assert info['img_path'] == record['image']
        prompt = info['prompt']
        assert prompt['task'] == 'vqa'
        convs = prompt['conversations']
        original = record['conversations']
        assert len(convs) == len(original)
        # <image> first in the first human turn, followed by '\n'
        question = original[0]['value']
        rest = question.replace('<image>', '').strip()
        assert convs[0]['value'] == '<image>\n' + rest
        moved += not question.startswith('<image>')
        assert convs[1:] == original[1:]
        # the model's schema: only the gpt turns (+ eos) are supervised
        spec = schema.build(dict(prompt, sample_id=record['id']))
        answers = [turn['value'] for turn in original[1::2]]
        assert _supervised_runs(tokenizer, spec) == [
            f' {answer} <|endoftext|>' for answer in answers
        ]
    assert moved == 54  # <image> was last in 54 of the 100 records


def test_instruct_pipeline_fetch(data_root, tmp_path):
    path = osp.join(data_root, 'llava', 'llava_instruct_100.json')
    with open(path) as f:
        records = json.load(f)
    ds = _build(path, img_dir=_image_dir(tmp_path, data_root, records),
                pipeline=PIPELINE)
    out = ds[1]
    sample = out['data_samples']
    assert out['inputs'].shape == (3, 144, 256)  # 000000439180: 640x360
    assert sample.metainfo['prompt']['conversations'][0]['value'].startswith(
        '<image>\n')
    assert 'gt_instances' not in sample


def test_text_only_records(data_root, tmp_path, monkeypatch):
    path = osp.join(data_root, 'llava', 'llava_instruct_5.json')
    with open(path) as f:
        records = json.load(f)
    text_only = dict(records[0])
    del text_only['image']
    mixed = tmp_path / 'mixed.json'
    mixed.write_text(json.dumps(records + [text_only, text_only]))
    logged = []
    monkeypatch.setattr(llava_module, 'print_log',
                        lambda msg, **kwargs: logged.append(msg))
    ds = _build(str(mixed))
    assert len(ds) == 5
    assert len(logged) == 1 and 'skipped 2 text-only records of 7' in logged[0]
    with pytest.raises(ValueError, match='text-only record'):
        _build(str(mixed), skip_text_only=False)


@pytest.mark.parametrize('turns, match', [
    ([{'from': 'human', 'value': 'Hi'}, {'from': 'gpt', 'value': 'Yes'},
      {'from': 'human', 'value': '<image>\nAnd?'},
      {'from': 'gpt', 'value': 'No'}], 'first human turn'),
    ([{'from': 'human', 'value': '<image>\nHi'}], 'human/gpt pairs'),
    ([{'from': 'gpt', 'value': '<image>\nHi'},
      {'from': 'human', 'value': 'x'}], 'turn 0'),
])
def test_bad_conversations_raise(tmp_path, turns, match):
    path = tmp_path / 'bad.json'
    path.write_text(json.dumps([dict(id='x', image='x.jpg',
                                     conversations=turns)]))
    with pytest.raises(ValueError, match=match):
        _build(str(path))


def test_caption_chat_json(data_root, tokenizer, schema):
    path = osp.join(data_root, 'llava', 'caption_chat_8.json')
    with open(path) as f:
        records = json.load(f)
    ds = _build(path, 'LLaVACaptionDataset')
    assert len(ds) == 8
    for idx, record in enumerate(records):
        prompt = ds.get_data_info(idx)['prompt']
        assert prompt['task'] == 'caption'
        assert prompt['conversations'][0]['value'].startswith('<image>\n')
        spec = schema.build(prompt)
        caption = record['conversations'][1]['value']
        assert _supervised_runs(tokenizer,
                                spec) == [f' {caption} <|endoftext|>']
    with pytest.raises(ValueError, match='one human and one gpt'):
        _build(osp.join(data_root, 'llava', 'llava_instruct_5.json'),
               'LLaVACaptionDataset')


def test_vqa_eval(data_root, tmp_path, tokenizer, schema):
    path = osp.join(data_root, 'llava', 'qa90_vqa_6.json')
    with open(path) as f:
        records = json.load(f)
    ds = _build(path, 'VQADataset',
                img_dir=_image_dir(tmp_path, data_root, records),
                test_mode=True, pipeline=PIPELINE)
    assert len(ds) == 6
    for idx, record in enumerate(records):
        sample = ds[idx]['data_samples']
        prompt = sample.metainfo['prompt']
        assert prompt == dict(task='vqa', conversations=[{
            'from': 'human',
            'value': '<image>\n' + record['question']
        }])
        assert sample.metainfo['gt_answers'] == record['answer']
        assert 'gt_instances' not in sample
        spec = schema.build(prompt)
        # open turn: nothing supervised, the prompt ends for generation
        assert set(spec.labels) == {IGNORE_INDEX}
        assert schema.decode(spec.input_ids).endswith(
            record['question'] + ' [/INST]')

    # answers lists, training conversations, jsonl, question suffix
    lines = [
        dict(image='a.jpg', question='Color?', answers=['red', 'blue', 'red']),
        dict(image='b.jpg', question='Count?', answer='2', question_id=7)
    ]
    jsonl = tmp_path / 'q.jsonl'
    jsonl.write_text('\n'.join(json.dumps(line) for line in lines) + '\n')
    ds = _build(str(jsonl), 'VQADataset', question_suffix='\nShort answer.')
    first, second = ds.get_data_info(0), ds.get_data_info(1)
    assert first['prompt']['conversations'] == [
        {'from': 'human', 'value': '<image>\nColor?\nShort answer.'},
        {'from': 'gpt', 'value': 'red'}]
    assert 'gt_answers' not in first and second['question_id'] == 7
    ds = _build(str(jsonl), 'VQADataset', test_mode=True)
    assert ds.get_data_info(0)['gt_answers'] == ['red', 'blue', 'red']
    bad = tmp_path / 'bad.json'
    bad.write_text(json.dumps([dict(image='a.jpg', question='Q?')]))
    with pytest.raises(ValueError, match='needs an answer'):
        _build(str(bad), 'VQADataset', test_mode=True)
