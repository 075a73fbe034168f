# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Tests of the Phi-1.5 tokenizer folder and ``build_tokenizer``."""
import os.path as osp
import re
from typing import List

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers

from projects.psalm.models.lmm.tokenizer import (DEFAULT_TOKENIZER_DIR,
                                                 CachedEncoder,
                                                 build_tokenizer,
                                                 load_tokenizer)

EOT = 50256
# Phi-1.5 whitespace tokens: 31..2 spaces -> 50257..50286, 9..2 tabs ->
# 50287..50294.
WHITESPACE_IDS = {' ' * n: 50257 + 31 - n for n in range(31, 1, -1)}
WHITESPACE_IDS.update({'\t' * n: 50287 + 9 - n for n in range(9, 1, -1)})
WHITESPACE_RUN = re.compile(' {2,31}|\t{2,9}')


@pytest.fixture(scope='module')
def base_tokenizer():
    return load_tokenizer(DEFAULT_TOKENIZER_DIR)


@pytest.fixture(scope='module')
def known_answers(data_root):
    folder = osp.join(data_root, 'tokenizer_known_answers')
    with open(
            osp.join(folder, 'ggml-vocab-gpt-2.gguf.inp'),
            encoding='utf-8') as f:
        texts = f.read().split('\n__ggml_vocab_test__\n')
    with open(osp.join(folder, 'ggml-vocab-gpt-2.gguf.out')) as f:
        answers = [[int(i) for i in line.split()]
                   for line in f.read().split('\n')]
    assert len(texts) == len(answers) == 47
    return list(zip(texts, answers))


@pytest.fixture(scope='module')
def plain_gpt2():
    """GPT-2 BPE from the folder's own vocab/merges, no added tokens."""
    bpe = models.BPE.from_file(
        osp.join(DEFAULT_TOKENIZER_DIR, 'vocab.json'),
        osp.join(DEFAULT_TOKENIZER_DIR, 'merges.txt'))
    tokenizer = Tokenizer(bpe)
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    return tokenizer


def test_folder_loads_as_fast_phi_tokenizer(base_tokenizer):
    assert base_tokenizer.is_fast
    assert len(base_tokenizer) == 50295
    assert base_tokenizer.bos_token_id == EOT
    assert base_tokenizer.eos_token_id == EOT
    assert base_tokenizer.unk_token_id == EOT
    assert base_tokenizer.pad_token is None
    # No BOS/EOS is added around a text.
    assert base_tokenizer('dog').input_ids == [9703]
    assert base_tokenizer('dog dog').input_ids == [9703, 3290]
    assert base_tokenizer('<|endoftext|>').input_ids == [EOT]


def test_whitespace_tokens(base_tokenizer):
    assert len(WHITESPACE_IDS) == 38
    for text, token_id in WHITESPACE_IDS.items():
        assert base_tokenizer.convert_tokens_to_ids(text) == token_id
        assert base_tokenizer(text).input_ids == [token_id]
        assert base_tokenizer.decode([token_id]) == text
    assert base_tokenizer('    Hello').input_ids == [50284, 15496]
    # 40 spaces: the longest token first, then the rest.
    assert base_tokenizer(' ' * 40).input_ids == [50257, 50279]


def test_plain_bpe_reproduces_every_gpt2_known_answer(plain_gpt2,
                                                      known_answers):
    for text, answer in known_answers:
        assert plain_gpt2.encode(text).ids == answer, text


def _phi_reference(plain_gpt2, text: str) -> List[int]:
    """GPT-2 ids with runs of 2+ spaces/tabs taken as whitespace tokens."""
    ids, last = [], 0
    for match in WHITESPACE_RUN.finditer(text):
        ids += plain_gpt2.encode(text[last:match.start()]).ids
        ids.append(WHITESPACE_IDS[match.group()])
        last = match.end()
    return ids + plain_gpt2.encode(text[last:]).ids


def test_known_answers(base_tokenizer, plain_gpt2, known_answers):
    """GPT-2 answers hold except that whitespace runs use the added tokens."""
    num_exact = 0
    for text, answer in known_answers:
        ids = base_tokenizer(text, add_special_tokens=False).input_ids
        if WHITESPACE_RUN.search(text) is None:
            assert ids == answer, text
            num_exact += 1
        else:
            assert ids == _phi_reference(plain_gpt2, text), text
        assert base_tokenizer.decode(ids) == text
    assert num_exact == 40


def test_build_tokenizer_added_tokens():
    tokenizer = build_tokenizer(DEFAULT_TOKENIZER_DIR)
    assert len(tokenizer) == 50297
    assert tokenizer.pad_token == '[PAD]'
    assert tokenizer.pad_token_id == 50295
    assert tokenizer.convert_tokens_to_ids('[SEG]') == 50296
    assert tokenizer(
        'a[SEG]', add_special_tokens=False).input_ids == [64, 50296]
    # [PAD] is special, [SEG] is not (as in the official tokenizer).
    assert tokenizer.decode([64, 50296, 50295],
                            skip_special_tokens=True) == 'a[SEG]'

    with_ref = build_tokenizer(DEFAULT_TOKENIZER_DIR,
                               ('[PAD]', '[SEG]', '[REF]'))
    assert len(with_ref) == 50298
    assert with_ref.convert_tokens_to_ids(['[PAD]', '[SEG]',
                                           '[REF]']) == [50295, 50296, 50297]


def test_build_tokenizer_errors(tmp_path):
    missing = str(tmp_path / 'nowhere')
    with pytest.raises(ValueError, match='nowhere'):
        build_tokenizer(missing)
    with pytest.raises(ValueError, match='duplicates'):
        build_tokenizer(DEFAULT_TOKENIZER_DIR, ('[PAD]', '[SEG]', '[SEG]'))
    with pytest.raises(ValueError, match='pad token'):
        build_tokenizer(DEFAULT_TOKENIZER_DIR, ('[SEG]', ))


def test_cached_encoder(base_tokenizer):
    calls = []

    def counting_tokenizer(texts, **kwargs):
        calls.append(list(texts))
        return base_tokenizer(texts, **kwargs)

    encoder = CachedEncoder(counting_tokenizer, max_cached_chars=20)
    long_text = 'a much longer sentence than twenty characters'
    first = encoder.encode(['person', ', ', 'person', long_text, ''])
    assert first == [(6259, ), (11, 220), (6259, ),
                     tuple(base_tokenizer(long_text).input_ids), ()]
    assert calls == [['person', ', ', long_text]]
    assert encoder('person') == (6259, )
    assert len(calls) == 1
    encoder(long_text)
    assert calls[-1] == [long_text]
