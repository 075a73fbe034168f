# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""The computed memory table of docs/finetune.md.

* the table in the docs is ``memory_budget.py``'s output for its recorded
  counts (so it changes only with them);
* the recorded parameter counts are the paper-size model's (meta device)
  and the recorded bytes per token of a Phi-1.5 decoder layer are recounted
  at 128 tokens;
* the recipes order as expected: frozen LLM < LoRA (the same checkpointed
  LLM plus adapters) < full, ZeRO shards
  only optimizer states (and gradients for ZeRO-2).
"""
import os.path as osp

import pytest
from memory_budget import (COUNTS, count_llm_layer, count_parameters,
                           estimate, render_table)


def test_docs_table_is_the_computed_one(repo_root):
    with open(osp.join(repo_root, 'docs', 'finetune.md')) as f:
        docs = f.read()
    table = render_table(COUNTS)
    assert table in docs
    assert 'computed, not measured' in docs


def test_recorded_counts_are_current():
    assert count_parameters() == COUNTS['params']
    layer = count_llm_layer(128)
    assert layer['bytes'] / 128 == pytest.approx(
        COUNTS['llm_layer_per_token'], rel=0.01)
    assert layer['copies'] == COUNTS['llm_layer_weight_copies']
    assert layer['stream'] == COUNTS['llm_checkpoint_per_token']


def test_recipe_ordering():
    peak = {
        recipe: estimate(COUNTS, recipe, 4)['peak']
        for recipe in ('full', 'frozen LLM', 'LoRA r=16')
    }
    assert peak['frozen LLM'] < peak['LoRA r=16'] < peak['full']
    one, zero1, zero2 = (estimate(COUNTS, 'full', 1, zero_gpus=8,
                                  zero_stage=stage) for stage in (0, 1, 2))
    assert one['weights'] == zero1['weights'] == zero2['weights']
    assert zero1['grads'] == one['grads'] == 8 * zero2['grads']
    assert one['adam'] == 8 * zero1['adam']
    # activations grow with the images, the static part does not
    four = estimate(COUNTS, 'full', 4)
    assert four['rest'] > 3.9 * one['rest'] and four['weights'] == \
        one['weights']
