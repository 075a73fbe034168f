# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""PSALM.encode_image + predict_prompts (many prompts on one image) equal
separate predict calls, without re-running the image side."""
import pytest
import torch
from psalm_testing import RealSample

from projects.psalm.models.lmm.input_schema import (IMAGE_TOKEN_INDEX,
                                                    MASK_TOKEN_INDEX)

SENTENCES = [
    'the big person', 'a horse', 'the man in the red shirt on the left',
    'trees', 'the white horse in the middle of the road', 'sky', 'flag',
    'the grass behind the people and the horses on the right side'
]
REGIONS = [[0], [1, 2], [2, 0, 1]]  # prompt masks of the 3 visual prompts


@pytest.fixture(scope='module')
def model(inferencer):
    return inferencer.model


@pytest.fixture(scope='module')
def real_sample(data_root):
    return RealSample(data_root)


def _samples(model, real_sample, task):
    samples = []
    if task == 'referring':
        for sentence in SENTENCES:
            sample = real_sample.data_sample(task)
            sample.set_metainfo(
                dict(prompt=dict(task=task, sentences=[sentence])))
            samples.append(sample)
    else:
        for regions in REGIONS:
            sample = real_sample.data_sample(task)
            sample.prompt_masks = sample.prompt_masks[regions]
            samples.append(sample)
    for sample in samples:
        del sample.gt_instances
    data = model.data_preprocessor(
        dict(inputs=[real_sample.image] * len(samples),
             data_samples=samples), False)
    return data['inputs'][:1], data['data_samples']


class _Outputs:
    """Records the last-layer logits of every mask generator call."""

    def __init__(self, model):
        self.calls = []
        self.handle = model.mask_generator.register_forward_hook(
            lambda mod, args, out: self.calls.append(
                (out[0][-1].clone(), out[1][-1].clone())))


@pytest.mark.parametrize('task', ['referring', 'interactive'])
def test_cached_prompts_equal_separate_predicts(model, real_sample, task):
    inputs, samples = _samples(model, real_sample, task)
    outputs = _Outputs(model)
    with torch.no_grad():
        cache = model.encode_image(inputs)
        cached = model.predict_prompts(cache, [s.clone() for s in samples])
        separate = [
            model.predict(inputs, [sample.clone()])[0] for sample in samples
        ]
    outputs.handle.remove()
    (cls_k, masks_k), singles = outputs.calls[0], outputs.calls[1:]
    assert len(singles) == len(samples) == len(cached)
    for k, (cls_1, masks_1) in enumerate(singles):
        num_conds = cls_1.shape[-1]
        torch.testing.assert_close(cls_k[k, :, :num_conds], cls_1[0],
                                   rtol=0, atol=1e-4)
        torch.testing.assert_close(masks_k[k], masks_1[0], rtol=0, atol=1e-4)
    for ours, theirs in zip(cached, separate):
        assert torch.equal(ours.pred_instances.masks,
                           theirs.pred_instances.masks)
        torch.testing.assert_close(ours.pred_instances.scores,
                                   theirs.pred_instances.scores, rtol=0,
                                   atol=1e-4)


def test_the_image_side_runs_once(model, real_sample):
    inputs, samples = _samples(model, real_sample, 'referring')
    calls = []
    handles = [
        model.backbone.register_forward_hook(
            lambda *_: calls.append('backbone')),
        model.projector.register_forward_hook(
            lambda *_: calls.append('projector')),
        model.mask_generator.pixel_decoder.register_forward_hook(
            lambda *_: calls.append('pixel_decoder')),
    ]
    pixel_decoder = model.mask_generator.pixel_decoder
    try:
        with torch.no_grad():
            cache = model.encode_image(inputs, samples[:1])
            assert calls == ['backbone', 'projector', 'pixel_decoder']
            assert len(cache.prefixes) == 1  # warmed with the task prefix
            model.predict_prompts(cache, samples[:4])
            model.predict_prompts(cache, samples[4:])
    finally:
        for handle in handles:
            handle.remove()
    assert calls == ['backbone', 'projector', 'pixel_decoder']
    # the real pixel decoder is back in place
    assert model.mask_generator.pixel_decoder is pixel_decoder


def test_reused_prefix_is_never_modified(model, real_sample):
    inputs, samples = _samples(model, real_sample, 'referring')
    with torch.no_grad():
        cache = model.encode_image(inputs)
        first = model.predict_prompts(cache, [s.clone() for s in samples])
        (prefix, ) = cache.prefixes.values()
        snapshot = [(k.clone(), v.clone()) for k, v in prefix.layers]
        model.predict_prompts(cache, [s.clone() for s in samples[:3]])
        again = model.predict_prompts(cache, [s.clone() for s in samples])
    assert len(cache.prefixes) == 1
    for (keys, values), (keys_0, values_0) in zip(prefix.layers, snapshot):
        assert keys.shape[0] == 1 and keys.shape[2] == prefix.length
        assert torch.equal(keys, keys_0) and torch.equal(values, values_0)
    for a, b in zip(first, again):
        assert torch.equal(a.pred_instances.masks, b.pred_instances.masks)
        assert torch.equal(a.pred_instances.scores, b.pred_instances.scores)


def test_split_prefix_ends_before_the_conditions(model, real_sample):
    schema = model.input_schema
    _, samples = _samples(model, real_sample, 'referring')
    specs = [schema.build(s.metainfo['prompt']) for s in samples[:3]]
    prefix, suffixes = schema.split_prefix(specs)
    assert IMAGE_TOKEN_INDEX in prefix.input_ids
    assert schema.decode(prefix.input_ids).endswith(
        'according to the following instruction:')
    for spec, suffix in zip(specs, suffixes):
        assert prefix.input_ids + suffix.input_ids == spec.input_ids
        assert MASK_TOKEN_INDEX in suffix.input_ids
        n = len(prefix.input_ids)
        assert [(s - n, e - n) for s, e in spec.cond_spans] == \
            suffix.cond_spans
    # a suffix that would not fit the LLM context next to its prefix
    with pytest.raises(ValueError, match='exceeds max_length'):
        schema.assemble(
            suffixes,
            model.language_model.embed_tokens,
            None,
            model.mask_tokens,
            prefix_length=schema.max_length - 5,
            device=model.mask_tokens.device)


def test_predict_prompts_checks_its_inputs(model, real_sample):
    inputs, samples = _samples(model, real_sample, 'referring')
    with pytest.raises(ValueError, match='ONE image'):
        model.encode_image(inputs.expand(2, -1, -1, -1))
    with pytest.raises(TypeError, match='ImageCache'):
        model.predict_prompts(inputs, samples)
