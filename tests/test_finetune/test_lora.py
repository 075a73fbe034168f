# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""LoRA on PSALM's LLM (``language_model.lora``, peft) with the tiny model.

* only the adapters of the LLM train (with the non-LLM parts of the
  recipe); the frozen-LLM recipe trains no LLM weight;
* the prefix-cache API (``encode_prefix`` / ``forward_suffix``) gives the
  full forward's states with adapters too;
* a plain checkpoint loads into a LoRA model (fresh adapters, same outputs);
  a LoRA checkpoint refuses to load into a plain model (merge first);
* ``tools/model_converters/merge_lora.py`` writes a weights-only plain
  checkpoint whose model, built without LoRA, gives the LoRA model's outputs
  on a real image for every task (within 1e-5).
"""

import pytest
import torch
from psalm_testing import RealSample, build_tiny_psalm, load_tool

from projects.psalm.models.lmm.language_model import PhiLanguageModel
from projects.psalm.models.lmm.lora import (build_lora_config,
                                            merge_lora_state_dict)
from projects.psalm.models.lmm.tokenizer import DEFAULT_TOKENIZER_DIR

LORA = dict(r=4, alpha=8, dropout=0.0)
TINY_PHI = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                intermediate_size=128)
TASKS = ('panoptic', 'referring', 'interactive', 'vqa')


def _lora_psalm(repo_root, seed=0):
    torch.manual_seed(seed)
    return build_tiny_psalm(repo_root,
                            {'model.language_model.lora': dict(LORA)})


def _randomise_adapters(model, seed=1):
    """Non-zero lora_B (a fresh adapter is the identity)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if '.lora_' in name:
                param.copy_(torch.randn(param.shape, generator=generator) *
                            0.2)


def _outputs(model, sample, task):
    data = model.data_preprocessor(sample.batch(task, 2), training=False)
    with torch.no_grad():
        return model(**data, mode='tensor')


def _flatten(outputs):
    if isinstance(outputs, torch.Tensor):
        return [outputs]
    return [t for item in outputs for t in _flatten(item)]


@pytest.fixture(scope='module')
def sample(data_root):
    return RealSample(data_root)


def test_only_adapters_of_the_llm_train(repo_root):
    model = _lora_psalm(repo_root)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    llm = {n for n in trainable if n.startswith('language_model.')}
    assert llm and all('.lora_A.' in n or '.lora_B.' in n for n in llm)
    # 2 layers x (q, k, v, dense, fc1, fc2) x (A, B)
    assert len(llm) == 24
    assert not any(n.startswith('backbone.') for n in trainable)
    for part in ('projector.', 'condition_encoder.', 'mask_generator.',
                 'mask_tokens'):
        assert any(n.startswith(part) for n in trainable), part
    # the adapters' scaling travels in the state dict
    assert float(model.state_dict()['language_model.lora_scaling']) == 2.0
    # the LLM stays in train mode (its checkpointing needs it)
    model.train()
    assert model.language_model.training and not model.backbone.training


def test_frozen_llm_trains_no_llm_weight(repo_root):
    model = build_tiny_psalm(
        repo_root, {'model.frozen_modules': ('backbone', 'language_model')})
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and not any(
        n.startswith(('language_model.', 'backbone.')) for n in trainable)
    # frozen and not checkpointed: eval mode like every frozen part
    assert not model.train().language_model.training


def test_frozen_llm_with_checkpointing_keeps_checkpointing(repo_root):
    """Hugging Face checkpoints only in train mode: a frozen LLM with
    gradient checkpointing (and no dropout) stays in train mode, so its
    layers keep only their inputs."""
    model = build_tiny_psalm(
        repo_root, {
            'model.frozen_modules': ('backbone', 'language_model'),
            'model.language_model.gradient_checkpointing': True
        })
    model.train()
    llm = model.language_model.llm
    assert model.language_model.training and llm.is_gradient_checkpointing
    assert not model.backbone.training
    assert not model.eval().language_model.training


def test_lora_gradients_with_checkpointing():
    torch.manual_seed(0)
    lm = PhiLanguageModel(DEFAULT_TOKENIZER_DIR, config=TINY_PHI,
                          lora=dict(LORA), gradient_checkpointing=True)
    _randomise_adapters(lm)
    lm.train()
    embeds = torch.randn(2, 7, 64, requires_grad=True)
    lm(embeds, torch.ones(2, 7, dtype=torch.long)).sum().backward()
    grads = {n: p.grad for n, p in lm.named_parameters() if p.requires_grad}
    assert all(g is not None and g.abs().sum() > 0 for g in grads.values())
    assert embeds.grad is not None  # the projector still gets gradients


def test_prefix_cache_with_lora():
    torch.manual_seed(0)
    lm = PhiLanguageModel(DEFAULT_TOKENIZER_DIR, config=TINY_PHI,
                          lora=dict(LORA)).eval()
    _randomise_adapters(lm)
    generator = torch.Generator().manual_seed(2)
    prefix = torch.randn(1, 5, 64, generator=generator)
    suffixes = torch.randn(3, 4, 64, generator=generator)
    mask = torch.ones(3, 4, dtype=torch.long)
    mask[1, 3:] = 0
    mask[2, 2:] = 0
    states = lm.encode_prefix(prefix)
    cached = lm.forward_suffix(suffixes, mask, states)
    with torch.no_grad():
        full = lm(torch.cat([prefix.expand(3, -1, -1), suffixes], dim=1),
                  torch.cat([torch.ones(3, 5, dtype=torch.long), mask], 1))
    valid = mask.bool()
    torch.testing.assert_close(cached[valid], full[:, 5:][valid],
                               atol=1e-5, rtol=1e-5)
    # the adapters matter: without them the states differ
    plain = PhiLanguageModel(DEFAULT_TOKENIZER_DIR, config=TINY_PHI).eval()
    plain.load_state_dict(merge_lora_state_dict(
        {k: torch.zeros_like(v) if 'lora_B' in k else v
         for k, v in lm.state_dict().items()})[0])
    with torch.no_grad():
        base = plain(torch.cat([prefix.expand(3, -1, -1), suffixes], 1),
                     torch.cat([torch.ones(3, 5, dtype=torch.long), mask],
                               1))
    assert not torch.allclose(base[:, 5:][valid], cached[valid], atol=1e-3)


def test_plain_checkpoint_into_lora_model(repo_root, sample):
    torch.manual_seed(0)
    plain = build_tiny_psalm(repo_root).eval()
    lora = _lora_psalm(repo_root, seed=1).eval()
    lora.load_state_dict(plain.state_dict(), strict=True)
    for task in ('referring', 'vqa'):
        for a, b in zip(_flatten(_outputs(plain, sample, task)),
                        _flatten(_outputs(lora, sample, task))):
            torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match='merge_lora.py'):
        plain.load_state_dict(lora.state_dict())
    state = lora.state_dict()
    state['language_model.lora_scaling'] = torch.tensor(4.0)
    with pytest.raises(ValueError, match='LoRA scaling 4 differs'):
        lora.load_state_dict(state)


def test_merge_tool_gives_the_same_outputs(repo_root, sample, tmp_path):
    lora = _lora_psalm(repo_root).eval()
    _randomise_adapters(lora)
    src = str(tmp_path / 'lora.pth')
    torch.save({'state_dict': lora.state_dict(), 'meta': {'iter': 3},
                'message_hub': {}}, src)
    tool = load_tool('tools/model_converters/merge_lora.py')
    dst = str(tmp_path / 'merged.pth')
    assert tool.main([src, dst]) == 12
    merged = torch.load(dst, weights_only=True)
    assert set(merged) == {'state_dict', 'meta'}
    assert merged['meta']['lora_merged']['layers'] == 12
    assert not any('lora' in k or 'base_layer' in k
                   for k in merged['state_dict'])
    plain = build_tiny_psalm(repo_root).eval()
    plain.load_state_dict(merged['state_dict'], strict=True)
    for task in TASKS:
        ours = _flatten(_outputs(lora, sample, task))
        theirs = _flatten(_outputs(plain, sample, task))
        assert len(ours) == len(theirs) > 0
        for a, b in zip(ours, theirs):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    # the adapters changed the model (the comparison is not trivial)
    base = build_tiny_psalm(repo_root).eval()
    base.load_state_dict(merge_lora_state_dict(
        {k: torch.zeros_like(v) if 'lora_B' in k else v
         for k, v in lora.state_dict().items()})[0])
    assert not torch.allclose(
        _flatten(_outputs(base, sample, 'referring'))[0],
        _flatten(_outputs(lora, sample, 'referring'))[0], atol=1e-3)
    # safetensors output; a plain checkpoint has nothing to merge
    assert tool.main([src, str(tmp_path / 'merged.safetensors')]) == 12
    with pytest.raises(ValueError, match='no LoRA adapter'):
        tool.main([dst, str(tmp_path / 'again.pth')])


def test_lora_config_errors():
    with pytest.raises(ValueError, match='unknown keys'):
        build_lora_config(dict(r=4, rank=4))
    with pytest.raises(ValueError, match='positive int'):
        build_lora_config(dict(r=0))
    with pytest.raises(ValueError, match='match no linear layer'):
        PhiLanguageModel(DEFAULT_TOKENIZER_DIR, config=TINY_PHI,
                         lora=dict(r=2, target_modules=['query_key_value']))
