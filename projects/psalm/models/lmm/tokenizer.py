# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Phi-1.5 tokenizer construction and memoised encoding.

PSALM uses the Phi-1.5 tokenizer (GPT-2 byte-level BPE plus 38 whitespace
tokens, ``len == 50295``) and appends ``[PAD]`` (pad token, id 50295) and
``[SEG]`` (id 50296); the paper's ``[REF]`` sentence anchor, when used, gets
id 50297.
A copy of the tokenizer lives in ``resources/tokenizers/phi-1_5``.
"""
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from transformers import AutoTokenizer, PreTrainedTokenizerBase

PAD_TOKEN = '[PAD]'
#: The tokenizer folder shipped with the repository.
DEFAULT_TOKENIZER_DIR = str(
    Path(__file__).resolve().parents[4] / 'resources' / 'tokenizers' /
    'phi-1_5')


def load_tokenizer(path: str) -> PreTrainedTokenizerBase:
    """Load a fast Hugging Face tokenizer from a local folder.

    Args:
        path (str): Local tokenizer folder (``vocab.json``/``merges.txt`` or
            ``tokenizer.json`` plus ``tokenizer_config.json``).

    Returns:
        PreTrainedTokenizerBase: The fast tokenizer, without added tokens.
    """
    if not path or not Path(path).is_dir():
        raise ValueError(f'tokenizer path {path!r} is not an existing '
                         'directory')
    tokenizer = AutoTokenizer.from_pretrained(path, use_fast=True)
    if not tokenizer.is_fast:
        raise ValueError(f'tokenizer at {path!r} has no fast implementation')
    return tokenizer


def add_tokens(tokenizer: PreTrainedTokenizerBase,
               tokens: Sequence[str]) -> List[str]:
    """Append tokens to a tokenizer in order, as the official code does.

    ``[PAD]`` is added as the (special) pad token, every other token as a
    normal added token (the official ``[SEG]`` is not special, so it survives
    ``decode(skip_special_tokens=True)``). Tokens already in the vocabulary are
    left where they are.

    Args:
        tokenizer (PreTrainedTokenizerBase): Tokenizer modified in place.
        tokens (Sequence[str]): Tokens to append, e.g. ``('[PAD]', '[SEG]')``.

    Returns:
        List[str]: The tokens that were actually new, in id order.
    """
    if len(set(tokens)) != len(tokens):
        raise ValueError(f'added_tokens has duplicates: {list(tokens)}')
    vocab = tokenizer.get_vocab()
    new_tokens = []
    for token in tokens:
        if not isinstance(token, str) or not token:
            raise ValueError(f'added token {token!r} must be a non-empty str')
        if token in vocab:
            if token == PAD_TOKEN:
                tokenizer.pad_token = token
            continue
        if token == PAD_TOKEN:
            tokenizer.add_special_tokens({'pad_token': token})
        else:
            tokenizer.add_tokens([token])
        new_tokens.append(token)
    return new_tokens


def build_tokenizer(
    path: str, added_tokens: Sequence[str] = (PAD_TOKEN, '[SEG]')
) -> PreTrainedTokenizerBase:
    """Build the PSALM tokenizer.

    Args:
        path (str): Local tokenizer folder, e.g. :data:`DEFAULT_TOKENIZER_DIR`.
        added_tokens (Sequence[str]): Tokens appended in order. Official:
            ``('[PAD]', '[SEG]')`` -> ids 50295, 50296; the paper's sentence
            anchor adds ``'[REF]'`` -> 50297.

    Returns:
        PreTrainedTokenizerBase: Fast tokenizer with ``[PAD]`` as pad token.
    """
    tokenizer = load_tokenizer(path)
    add_tokens(tokenizer, added_tokens)
    if tokenizer.pad_token is None:
        raise ValueError(f'tokenizer at {path!r} has no pad token; include '
                         f'{PAD_TOKEN!r} in added_tokens={list(added_tokens)}')
    return tokenizer


def _check_unicode(text: str) -> None:
    """Raise a clear error for prompt text the tokenizer cannot take."""
    if not isinstance(text, str):
        raise ValueError(f'prompt text must be str, got {type(text).__name__}'
                         f' {text!r}')
    try:
        text.encode('utf-8')
    except UnicodeEncodeError as err:
        raise ValueError(
            f'prompt text {text!r} is not valid Unicode ({err.reason} at '
            f'position {err.start}); decode the source as UTF-8') from None


class CachedEncoder:
    """Tokenise text chunks without special tokens, memoising short strings.

    Template pieces and class names are tokenised for every sample of every
    iteration; they are looked up here instead. Long strings (conversation
    answers) bypass the cache. All misses of one call go to the fast tokenizer
    in a single batched call.

    Args:
        tokenizer (PreTrainedTokenizerBase): A fast tokenizer.
        max_cached_chars (int): Strings longer than this are not cached.
        max_entries (int): Cache capacity; the oldest entry is evicted first.
    """

    def __init__(self,
                 tokenizer: PreTrainedTokenizerBase,
                 max_cached_chars: int = 512,
                 max_entries: int = 100_000) -> None:
        self.tokenizer = tokenizer
        self.max_cached_chars = max_cached_chars
        self.max_entries = max_entries
        self._cache: Dict[str, Tuple[int, ...]] = {}

    def encode(self, texts: Sequence[str]) -> List[Tuple[int, ...]]:
        """Tokenise several chunks (``add_special_tokens=False``).

        Args:
            texts (Sequence[str]): Text chunks.

        Returns:
            List[Tuple[int, ...]]: Token ids of each chunk.

        Raises:
            ValueError: A chunk is not text that UTF-8 can encode (e.g. it
                holds lone surrogates from badly decoded bytes).
        """
        out: List[Tuple[int, ...]] = [()] * len(texts)
        missing: Dict[str, List[int]] = {}
        for i, text in enumerate(texts):
            cached = self._cache.get(text)
            if cached is not None:
                out[i] = cached
            elif text:
                _check_unicode(text)
                missing.setdefault(text, []).append(i)
        if missing:
            miss_texts = list(missing)
            encoded = self.tokenizer(
                miss_texts, add_special_tokens=False)['input_ids']
            for text, ids in zip(miss_texts, encoded):
                ids = tuple(ids)
                for i in missing[text]:
                    out[i] = ids
                if len(text) <= self.max_cached_chars:
                    if len(self._cache) >= self.max_entries:
                        del self._cache[next(iter(self._cache))]
                    self._cache[text] = ids
        return out

    def __call__(self, text: str) -> Tuple[int, ...]:
        """Tokenise one chunk (``add_special_tokens=False``)."""
        return self.encode([text])[0]
