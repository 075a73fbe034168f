# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Tests of the PSALM input schema (token sequences and batch assembly)."""
import json
import os.path as osp
import re

import pytest
import torch

from projects.psalm.models.lmm.input_schema import (IGNORE_INDEX,
                                                    IMAGE_TOKEN_INDEX,
                                                    MASK_TOKEN_INDEX,
                                                    REGION_TOKEN_INDEX,
                                                    InputSchema)
from projects.psalm.models.lmm.tokenizer import (DEFAULT_TOKENIZER_DIR,
                                                 build_tokenizer)

# Typed out from the reference (official llava_phi template and prompts).
SYSTEM = ('You are a helpful language and vision assistant. You are able to '
          'understand the visual content that the user provides, and assist '
          'the user with a variety of tasks using natural language.')
HEAD = f'[INST] <<SYS>>\n{SYSTEM}\n<</SYS>>\n\n'
EOS = 50256
SEG, REF = 50296, 50297
DIM = 8


@pytest.fixture(scope='module')
def tokenizer():
    return build_tokenizer(DEFAULT_TOKENIZER_DIR, ('[PAD]', '[SEG]', '[REF]'))


@pytest.fixture(scope='module')
def official(tokenizer):
    return InputSchema(
        tokenizer,
        prompt_style='official',
        category_terminator='[SEG]',
        sentence_terminator='[SEG]',
        merge_sentences=True)


@pytest.fixture(scope='module')
def paper(tokenizer):
    return InputSchema(tokenizer)


@pytest.fixture(scope='module')
def llava_records(data_root):
    with open(osp.join(data_root, 'llava', 'llava_instruct_5.json')) as f:
        return json.load(f)


def _official_ids(tokenizer, text, conds=()):
    """The official tokenisation: split at placeholders, chunk by chunk;
    ``<cls>``/``<refer>`` are replaced by the given id lists in order."""
    placeholders = {
        '<image>': [IMAGE_TOKEN_INDEX],
        '<seg>': [MASK_TOKEN_INDEX],
        '<region>': [REGION_TOKEN_INDEX]
    }
    conds = iter(conds)
    ids = []
    for chunk in re.split('(<image>|<seg>|<region>|<cls>|<refer>)', text):
        if chunk in placeholders:
            ids += placeholders[chunk]
        elif chunk in ('<cls>', '<refer>'):
            ids += next(conds)
        elif chunk:
            ids += tokenizer(chunk, add_special_tokens=False).input_ids
    return ids


def _embed(ids):
    """A deterministic fake embedding: row i = i + [0, .., DIM-1] / 10."""
    return ids[:, None].float() + torch.arange(DIM) / 10


def test_official_panoptic_prompt(official, tokenizer):
    spec = official.build(
        dict(task='panoptic', class_names=['person', 'dining table']))
    expected = (
        HEAD + 'This is an image <image>, Please do Panoptic Segmentation.\n'
        'This is all the candidate categories: person[SEG], dining table'
        '[SEG], background[SEG].\n [/INST] \nSure, the segmentation result '
        'is <seg> <|endoftext|>')
    assert official.decode(spec.input_ids) == expected
    conds = [
        tokenizer(name, add_special_tokens=False).input_ids + [SEG]
        for name in ('person', 'dining table', 'background')
    ]
    template = expected.replace('person[SEG]', '<cls>').replace(
        'dining table[SEG]', '<cls>').replace('background[SEG]', '<cls>')
    assert spec.input_ids == _official_ids(tokenizer, template, conds)
    assert spec.cond_type == 'category'
    assert spec.labels == [IGNORE_INDEX] * len(spec.input_ids)
    # One span per class (terminator included), background last.
    assert [spec.input_ids[s:e] for s, e in spec.cond_spans] == conds
    # instance uses the same prompt; semantic too (official OV evaluation).
    for task in ('instance', 'semantic'):
        other = official.build(
            dict(task=task, class_names=['person', 'dining table']))
        assert other.input_ids == spec.input_ids
    coco_semantic = InputSchema(
        tokenizer,
        prompt_style='official',
        category_terminator='[SEG]',
        official_semantic_as_panoptic=False).build(
            dict(task='semantic', class_names=['person']))
    assert 'Please do Semantic Segmentation.' in official.decode(
        coco_semantic.input_ids)


def test_official_referring_prompt(official, tokenizer):
    sentences = ['man on the left', 'guy in red shirt']
    spec = official.build(
        dict(task='referring', sentences=sentences, sample_id=7))
    expected = (
        HEAD + 'This is an image <image>, Please doing Referring Segmentation '
        'according to the following instruction:\n man on the left. guy in '
        'red shirt.[SEG] [/INST] \nSure, the segmentation result is <seg> '
        '<|endoftext|>')
    assert official.decode(spec.input_ids) == expected
    refer = tokenizer(
        ' man on the left. guy in red shirt.',
        add_special_tokens=False).input_ids + [SEG]
    template = expected.replace(' man on the left. guy in red shirt.[SEG]',
                                '<refer>')
    assert spec.input_ids == _official_ids(tokenizer, template, [refer])
    assert spec.cond_type == 'sentence'
    (start, end), = spec.cond_spans
    assert spec.input_ids[start:end] == refer
    assert official.build(dict(task='gres',
                               sentences=sentences)).input_ids == \
        spec.input_ids


def test_official_interactive_prompt(official, tokenizer):
    spec = official.build(dict(task='interactive', num_regions=3))
    expected = (
        HEAD + 'This is an image <image>, Please segment by given regions\n'
        'This is all regions:  <region>, <region>, <region>.\n [/INST] \n'
        '[SEG]<seg> <|endoftext|>')
    assert official.decode(spec.input_ids) == expected
    assert spec.input_ids == _official_ids(tokenizer, expected)
    assert spec.cond_type == 'visual'
    assert len(spec.cond_spans) == 3
    for start, end in spec.cond_spans:
        assert end == start + 1
        assert spec.input_ids[start] == REGION_TOKEN_INDEX
    assert official.build(dict(task='vos', num_regions=3)).input_ids == \
        spec.input_ids


def test_paper_prompts_and_spans(paper, tokenizer):
    spec = paper.build(dict(task='panoptic', class_names=['person', 'car']))
    text = paper.decode(spec.input_ids)
    assert text == (
        HEAD + '<image>\nYou need to segment all objects. This is all the '
        'candidate categories: person, car, background. [/INST] Sure, the '
        'segmentation result is <seg> <|endoftext|>')
    # Natural tokenisation: class names carry their leading space.
    assert [paper.decode(spec.input_ids[s:e])
            for s, e in spec.cond_spans] == [' person', ' car', ' background']

    spec = paper.build(dict(task='referring', sentences=['the red car']))
    (start, end), = spec.cond_spans
    assert spec.input_ids[start:end] == tokenizer(
        ' the red car.', add_special_tokens=False).input_ids + [REF]
    assert 'Please segment according to the following instruction: the red ' \
        'car.[REF] [/INST]' in paper.decode(spec.input_ids)

    spec = paper.build(dict(task='interactive', num_regions=2))
    assert 'Please segment by given regions: <region>, <region>. [/INST]' \
        in paper.decode(spec.input_ids)


def test_conversation_labels_supervise_only_answers(official, paper, tokenizer,
                                                    llava_records):
    for record in llava_records:
        convs = record['conversations']
        spec = official.build(
            dict(task='vqa', conversations=convs, sample_id=record['id']))
        assert spec == paper.build(
            dict(task='vqa', conversations=convs, sample_id=record['id']))
        assert spec.cond_type is None and spec.cond_spans == []
        # The rendered conversation, typed out from the template.
        text = HEAD
        answers = []
        for i in range(0, len(convs), 2):
            question, answer = convs[i]['value'], convs[i + 1]['value']
            if '<image>' in question:
                question = '<image>\n' + question.replace('<image>',
                                                          '').strip()
            text += ('' if i == 0 else '<|endoftext|>[INST] ') + question
            text += f' [/INST] {answer} <|endoftext|>'
            answers.append(f' {answer} ')
        assert official.decode(spec.input_ids) == text
        # Chunking at the answers does not change the tokenisation.
        assert spec.input_ids == _official_ids(tokenizer, text)
        # Supervised = every answer (with its spaces) and its closing eos.
        supervised = [t for t in spec.labels if t != IGNORE_INDEX]
        expected = []
        for answer in answers:
            expected += tokenizer(
                answer, add_special_tokens=False).input_ids + [EOS]
        assert supervised == expected
        for token, label in zip(spec.input_ids, spec.labels):
            assert label in (IGNORE_INDEX, token)
        # The eos that opens the next turn is not supervised.
        num_eos_ids = spec.input_ids.count(EOS)
        assert num_eos_ids == 2 * len(answers) - 1
        assert supervised.count(EOS) == len(answers)

    # An open last turn (generation) ends at "[/INST]".
    open_spec = official.build(
        dict(task='vqa', conversations=llava_records[0]['conversations'][:1]))
    assert official.decode(
        open_spec.input_ids).endswith('pickup truck? [/INST]')
    assert set(open_spec.labels) == {IGNORE_INDEX}


def test_mask_token_positions(tokenizer):
    prompt = dict(task='referring', sentences=['the dog'])
    num_image, num_mask = 4, 3
    image = torch.randn(1, num_image, DIM)
    masks = torch.randn(num_mask, DIM)
    results = {}
    for position in ('suffix', 'prefix', 'bypass'):
        schema = InputSchema(
            tokenizer, num_mask_tokens=num_mask, mask_token_position=position)
        spec = schema.build(prompt)
        results[position] = (schema, spec,
                             schema.assemble([spec], _embed, image, masks))

    schema, spec, out = results['suffix']
    ids = spec.input_ids
    tail = tokenizer(' <|endoftext|>', add_special_tokens=False).input_ids
    assert ids[-len(tail) - 1:] == [MASK_TOKEN_INDEX] + tail
    assert schema.decode(ids).endswith(
        '[/INST] Sure, the segmentation result is <seg> <|endoftext|>')
    length = int(out['attention_mask'].sum())
    assert out['mask_index'].tolist() == [
        list(range(length - len(tail) - num_mask, length - len(tail)))
    ]

    schema, spec, out = results['prefix']
    image_at = spec.input_ids.index(IMAGE_TOKEN_INDEX)
    assert spec.input_ids[image_at + 1] == MASK_TOKEN_INDEX
    assert schema.decode(spec.input_ids).endswith(
        '[/INST] Sure, the segmentation result is <|endoftext|>')
    start = int(out['image_span'][0, 1])
    assert out['mask_index'].tolist() == [list(range(start, start + num_mask))]

    schema, spec, out = results['bypass']
    assert MASK_TOKEN_INDEX not in spec.input_ids
    assert 'mask_index' not in out
    assert out['inputs_embeds'].shape[1] == len(spec.input_ids) - 1 + \
        num_image
    assert schema.decode(spec.input_ids).endswith(
        '[/INST] Sure, the segmentation result is <|endoftext|>')
    for position, (_, _, out) in results.items():
        torch.testing.assert_close(
            out['inputs_embeds'][0, slice(*out['image_span'][0].tolist())],
            image[0])
        if position != 'bypass':
            torch.testing.assert_close(
                out['inputs_embeds'][0, out['mask_index'][0]], masks)


def test_assemble_batch(official, tokenizer):
    specs = [
        official.build(dict(task='interactive', num_regions=2)),
        official.build(dict(task='interactive', num_regions=1)),
    ]
    num_image, num_mask = 5, official.num_mask_tokens
    image = torch.randn(2, num_image, DIM, requires_grad=True)
    masks = torch.randn(num_mask, DIM, requires_grad=True)
    regions = [torch.randn(2, DIM), torch.randn(1, DIM)]
    calls = []

    def embed(ids):
        calls.append(ids)
        return _embed(ids)

    out = official.assemble(specs, embed, image, masks, regions)
    assert len(calls) == 1 and calls[0].dim() == 1
    lengths = [
        len(spec.input_ids) - 2 + num_image + num_mask for spec in specs
    ]
    assert out['attention_mask'].tolist() == [
        [int(i < length) for i in range(max(lengths))] for length in lengths
    ]
    embeds = out['inputs_embeds']
    assert embeds.shape == (2, max(lengths), DIM)
    assert torch.all(embeds[1, lengths[1]:] == 0)
    assert torch.all(out['labels'] == IGNORE_INDEX)
    for b, spec in enumerate(specs):
        start, end = out['image_span'][b].tolist()
        assert end - start == num_image
        assert spec.input_ids.index(IMAGE_TOKEN_INDEX) == start
        torch.testing.assert_close(embeds[b, start:end], image[b])
        torch.testing.assert_close(embeds[b, out['mask_index'][b]], masks)
        spans = out['cond_spans'][b]
        assert spans.shape == (len(regions[b]), 2)
        torch.testing.assert_close(embeds[b, spans[:, 0]], regions[b])
        assert torch.all(spans[:, 1] - spans[:, 0] == 1)
        # Text after the mask tokens is the embedding of the spec's tail.
        tail = torch.tensor(spec.input_ids[-2:])
        torch.testing.assert_close(embeds[b, lengths[b] - 2:lengths[b]],
                                   _embed(tail))
    embeds.sum().backward()
    assert torch.all(image.grad == 1) and torch.all(masks.grad == 2)


def test_assemble_conversation_labels(paper, llava_records):
    specs = [
        paper.build(dict(task='vqa', conversations=r['conversations']))
        for r in llava_records[:2]
    ]
    out = paper.assemble(specs, _embed, torch.zeros(2, 6, DIM))
    labels = out['labels']
    for b, spec in enumerate(specs):
        start, end = out['image_span'][b].tolist()
        assert torch.all(labels[b, start:end] == IGNORE_INDEX)
        valid = labels[b] != IGNORE_INDEX
        supervised = [t for t in spec.labels if t != IGNORE_INDEX]
        assert labels[b, valid].tolist() == supervised
        # Each label sits on its own token, so the LM shift happens later.
        assert torch.equal(out['inputs_embeds'][b, valid],
                           _embed(labels[b, valid]))
    assert 'mask_index' not in out
    assert [s.shape for s in out['cond_spans']] == [(0, 2), (0, 2)]


def test_category_spans_after_expansion(official, tokenizer):
    spec = official.build(dict(task='panoptic', class_names=['cat', 'dog']))
    out = official.assemble([spec], _embed, torch.zeros(1, 7, DIM),
                            torch.zeros(official.num_mask_tokens, DIM))
    for (s, e), (es, ee) in zip(spec.cond_spans,
                                out['cond_spans'][0].tolist()):
        assert (es, ee) == (s + 6, e + 6)  # after the 7 image tokens
        torch.testing.assert_close(out['inputs_embeds'][0, es:ee],
                                   _embed(torch.tensor(spec.input_ids[s:e])))


def test_errors(official, paper, tokenizer, llava_records):
    image = torch.zeros(1, 256, DIM)
    masks = torch.zeros(100, DIM)
    short = InputSchema(tokenizer, max_length=300)
    spec = short.build(
        dict(task='panoptic', class_names=['cat'], sample_id='img_42'))
    with pytest.raises(ValueError, match='img_42'):
        short.assemble([spec], _embed, image, masks)

    spec = official.build(
        dict(task='interactive', num_regions=2, sample_id='img_7'))
    with pytest.raises(ValueError, match='img_7'):
        official.assemble([spec], _embed, image, masks, [torch.zeros(3, DIM)])
    with pytest.raises(ValueError, match='img_7'):
        official.assemble([spec], _embed, image, masks)
    with pytest.raises(ValueError, match=r'mask_embeds must be \[100'):
        official.assemble([spec], _embed, image, None, [torch.zeros(2, DIM)])

    bad_prompts = [
        dict(task='panoptic', sample_id='s1'),
        dict(task='panoptic', class_names=[], sample_id='s1'),
        dict(task='semantic', class_names=['cat', ' '], sample_id='s1'),
        dict(task='panoptic', class_names=['background'], sample_id='s1'),
        dict(task='referring', sentences=[''], sample_id='s1'),
        dict(task='gres', sample_id='s1'),
        dict(task='interactive', num_regions=0, sample_id='s1'),
        dict(task='vqa', conversations=[], sample_id='s1'),
        dict(
            task='vqa',
            sample_id='s1',
            conversations=[{
                'from': 'human',
                'value': 'no image'
            }]),
        dict(
            task='vqa',
            sample_id='s1',
            conversations=[{
                'from': 'gpt',
                'value': '<image> hi'
            }]),
        dict(task='detection', sample_id='s1'),
    ]
    for prompt in bad_prompts:
        with pytest.raises(ValueError, match='s1'):
            official.build(prompt)
    with pytest.raises(ValueError, match='merge_sentences'):
        paper.build(dict(task='referring', sentences=['a', 'b']))
    with pytest.raises(ValueError, match='tokenizer'):
        InputSchema().build(dict(task='panoptic', class_names=['cat']))
    with pytest.raises(ValueError, match=r'\[REF\]'):
        InputSchema(build_tokenizer(DEFAULT_TOKENIZER_DIR))
    with pytest.raises(ValueError, match='prompt_style'):
        InputSchema(prompt_style='fancy')
    with pytest.raises(ValueError, match='mask_token_position'):
        InputSchema(mask_token_position='middle')

    # Conversations are cut instead when truncation is enabled.
    convs = llava_records[1]['conversations']
    cut = InputSchema(tokenizer, max_length=400, truncate_conversations=True)
    spec = cut.build(dict(task='vqa', conversations=convs))
    out = cut.assemble([spec], _embed, image)
    assert out['inputs_embeds'].shape[1] == 400
    assert out['attention_mask'].all()
    with pytest.raises(ValueError, match='max_length=400'):
        InputSchema(tokenizer, max_length=400).assemble([spec], _embed, image)
