# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""tools/analysis_tools/benchmark.py: its references are what they claim
to be, it runs end to end on the tiny model, and many prompts on one image
cost at most twice one prompt (counted in FLOPs, which a shared CPU cannot
disturb)."""
import json

import pytest
import torch
from psalm_testing import load_tool
from torch.utils.flop_counter import FlopCounterMode

from mmdet.registry import MODELS


@pytest.fixture(scope='module')
def bench(repo_root):
    module = load_tool('tools/analysis_tools/benchmark.py')
    import projects.psalm  # noqa: F401
    from mmdet.utils import register_all_modules
    register_all_modules()
    return module


@pytest.fixture(scope='module')
def tiny(bench):
    cfg = bench.load_psalm_config('tiny')
    model = bench.build_psalm(cfg, 'cpu')
    inputs = bench.BenchmarkInputs(
        int(cfg.model.data_preprocessor.fixed_size[0]))
    return cfg, model, inputs, bench._Runner(model, 'cpu', None)


def _gflop(fn) -> float:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e9


def test_naive_execution_runs_swin_twice_and_eager_attention(bench, tiny):
    _, model, inputs, runner = tiny
    llm = model.language_model.llm
    calls = []
    # a module inside Swin sees every pass (the wrapper replaces forward,
    # inside the backbone's own hooks)
    handle = model.backbone.patch_embed.register_forward_hook(
        lambda *_: calls.append(llm.config._attn_implementation))
    batch = inputs.psalm_batch('referring', 1, False)
    try:
        runner.predict(batch)
        assert calls == ['sdpa']
        calls.clear()
        with bench.naive_execution(model):
            runner.predict(batch)
            assert calls == ['eager', 'eager']
        calls.clear()
        with bench.naive_execution(model, ['eager']):  # parts are flags
            runner.predict(batch)
            assert calls == ['eager']
    finally:
        handle.remove()
    # the model is left as it was
    assert 'forward' not in vars(model.backbone)
    assert llm.config._attn_implementation == 'sdpa'
    runner.predict(batch)
    with pytest.raises(ValueError, match='unknown naive parts'):
        with bench.naive_execution(model, ['flash']):
            pass


def test_eight_prompts_cost_at_most_twice_one(bench, tiny):
    """The multi-prompt target, in FLOPs: 8 referring expressions through
    the prompt cache vs one expression predicted the plain way."""
    _, _, inputs, runner = tiny
    sentences = list(bench.SENTENCES)
    assert len(sentences) == 8
    one = _gflop(lambda: runner.predict(
        inputs.psalm_batch('referring', 1, False)))
    eight = _gflop(lambda: runner.predict_prompts(inputs, sentences))
    assert eight <= 2 * one, (eight, one)
    # and one expression through the cache costs what it costs plainly
    single = _gflop(lambda: runner.predict_prompts(inputs, sentences[:1]))
    assert single == pytest.approx(one, rel=0.05)


def test_mask2former_reference_has_the_psalm_parts(bench, repo_root):
    """Same Swin, pixel decoder and transformer decoder (paper size,
    counted on the meta device)."""
    cfg = bench.load_psalm_config('paper')
    m2f_cfg = bench.mask2former_config(cfg)
    assert m2f_cfg.type == 'Mask2Former'
    assert m2f_cfg.backbone.depths == cfg.model.backbone.depths
    assert m2f_cfg.backbone.embed_dims == cfg.model.backbone.embed_dims
    assert m2f_cfg.backbone.frozen_stages == 4  # frozen like PSALM's
    head = m2f_cfg.panoptic_head
    assert head.pixel_decoder.type == 'PSALMPixelDecoder'
    assert head.num_queries == cfg.model.mask_generator.num_queries == 100
    assert m2f_cfg.data_preprocessor.batch_augments[0].size == (1024, 1024)
    with bench._meta_device():
        psalm = MODELS.build(cfg.model)
        m2f = MODELS.build(m2f_cfg)

    def count(module):
        return sum(p.numel() for p in module.parameters())

    assert count(m2f.backbone) == count(psalm.backbone)
    m2f.train()  # mmdet's Swin freezes its stages in train()
    assert not any(p.requires_grad for p in m2f.backbone.parameters())
    generator = psalm.mask_generator
    assert count(m2f.panoptic_head.pixel_decoder) == count(
        generator.pixel_decoder)
    assert count(m2f.panoptic_head.transformer_decoder) == count(
        generator.transformer_decoder)


@pytest.mark.timeout(300)
def test_benchmark_runs_on_the_tiny_model(bench, tmp_path, capsys):
    out = str(tmp_path / 'bench.json')
    results = bench.main([
        'tiny', '--device', 'cpu', '--iters', '1', '--warmup', '0',
        '--flops', '--out', out
    ])
    table = capsys.readouterr().out
    rows = {row['mode']: row for row in results['rows']}
    assert sorted(rows) == ['infer', 'multi', 'train']
    for row in rows.values():
        assert row['device'] == 'cpu' and row['precision'] == 'fp32'
        assert row['ms'] > 0 and row['images_per_s'] > 0
        assert row['peak_mb'] > 0 and row['gflop'] > 0
        for key in ('mask2former', 'naive'):
            assert row[f'{key}_ms'] > 0
            assert row[f'{key}_ratio'] > 0
            assert row[f'{key}_flop_ratio'] > 0
        # the naive execution does more work than PSALM, Mask2Former less
        assert row['naive_flop_ratio'] > 1
        assert row['mask2former_flop_ratio'] > 1
    multi = rows['multi']
    assert multi['num_prompts'] == 8
    assert multi['one_prompt_ms'] > 0 and multi['prompts_ratio'] > 0
    assert multi['prompts_flop_ratio'] <= 2
    # one expression the plain way is what the infer row measures
    assert multi['one_prompt_gflop'] == pytest.approx(rows['infer']['gflop'])
    params = results['params']['tiny']
    assert params['psalm']['total'] > params['mask2former']['total'] > 0
    with open(out) as f:
        saved = json.load(f)
    assert saved['table'] in table
    assert len(saved['rows']) == 3
    header = table.splitlines()[0]
    for column in ('ms/iter', 'images/s', 'peak mem (MB)',
                   'PSALM / Mask2Former', 'naive / PSALM', 'N prompts / 1'):
        assert column in header
    assert torch.get_num_threads() >= 1
