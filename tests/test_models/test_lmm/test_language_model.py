# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Tests of the Phi-1.5 wrapper (tiny random Phi: hidden 64, 2 layers)."""
import pytest
import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from safetensors.torch import load_file, save_file
from transformers import PhiConfig, PhiForCausalLM

from projects.psalm.models.lmm.language_model import PhiLanguageModel
from projects.psalm.models.lmm.tokenizer import DEFAULT_TOKENIZER_DIR

TINY = dict(
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=128)
NUM_BASE_TOKENS = 50295


def _build(seed: int = 0, **kwargs) -> PhiLanguageModel:
    torch.manual_seed(seed)
    return PhiLanguageModel(DEFAULT_TOKENIZER_DIR, config=TINY, **kwargs)


@pytest.fixture(scope='module')
def lm():
    return _build().eval()


@pytest.fixture(scope='module')
def reference_phi():
    """The same random Phi before any PSALM change."""
    torch.manual_seed(0)
    return PhiForCausalLM(PhiConfig(**TINY)).float()


def _batch(lm, lengths=(9, 6), seed=1):
    generator = torch.Generator().manual_seed(seed)
    embeds = torch.randn(
        len(lengths), max(lengths), lm.hidden_size, generator=generator)
    mask = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    for b, length in enumerate(lengths):
        mask[b, :length] = 1
    return embeds, mask


def test_vocabulary_and_new_rows(lm, reference_phi):
    assert len(lm.tokenizer) == 50297
    assert lm.token_id('[PAD]') == 50295
    assert lm.token_id('[SEG]') == 50296
    with pytest.raises(ValueError, match=r'\[REF\]'):
        lm.token_id('[REF]')
    assert lm.hidden_size == 64
    assert lm.llm.lm_head.bias is None

    pairs = [(lm.llm.get_input_embeddings().weight,
              reference_phi.get_input_embeddings().weight),
             (lm.llm.lm_head.weight, reference_phi.lm_head.weight)]
    for weight, ref in pairs:
        assert weight.shape == (50297, 64)
        assert ref.shape[0] == 51200
        # The existing rows are kept and [PAD] is their mean.
        torch.testing.assert_close(weight[:NUM_BASE_TOKENS],
                                   ref[:NUM_BASE_TOKENS])
        torch.testing.assert_close(weight[50295],
                                   ref[:NUM_BASE_TOKENS].mean(dim=0))
        # [SEG] ~ N(0, 0.02), not the mean, not the old row.
        seg = weight[50296]
        assert 0.01 < seg.std().item() < 0.03
        assert not torch.allclose(seg, ref[:NUM_BASE_TOKENS].mean(dim=0))
        assert not torch.allclose(seg, ref[50296])
    torch.testing.assert_close(lm.llm.model.layers[1].mlp.fc1.weight,
                               reference_phi.model.layers[1].mlp.fc1.weight)


def test_ref_token_and_bias_option():
    lm = _build(added_tokens=('[PAD]', '[SEG]', '[REF]'), lm_head_bias=True)
    assert lm.token_id('[REF]') == 50297
    assert lm.llm.get_input_embeddings().weight.shape[0] == 50298
    assert lm.llm.lm_head.bias.shape == (50298, )
    assert torch.all(lm.llm.lm_head.bias[NUM_BASE_TOKENS:] == 0)


def test_init_weights_keeps_weights(lm):

    class Parent(BaseModule):

        def __init__(self, child):
            super().__init__()
            self.child = child

    before = {k: v.clone() for k, v in lm.state_dict().items()}
    Parent(lm).init_weights()
    lm.init_weights()
    after = lm.state_dict()
    assert before.keys() == after.keys()
    for key, value in before.items():
        assert torch.equal(value, after[key]), key
    with pytest.raises(ValueError, match='Pretrained'):
        PhiLanguageModel(
            DEFAULT_TOKENIZER_DIR,
            config=TINY,
            init_cfg=dict(type='Normal', layer='Linear'))


def test_forward_is_last_hidden_state(lm):
    embeds, mask = _batch(lm)
    with torch.no_grad():
        hidden = lm(embeds, mask)
        logits = lm.llm(inputs_embeds=embeds, attention_mask=mask).logits
    assert hidden.shape == (2, 9, 64)
    # lm_head(hidden) reproduces the HF logits: hidden is post-layernorm.
    torch.testing.assert_close(lm.llm.lm_head(hidden), logits)
    with pytest.raises(ValueError, match='attention_mask'):
        lm(embeds, mask[:, :3])
    with pytest.raises(ValueError, match='max_length=8'):
        _build(max_length=8)(embeds, mask)


def test_gradient_checkpointing_gradients():
    plain = _build().train()
    ckpt = _build(gradient_checkpointing=True).train()
    assert ckpt.llm.config.use_cache is False
    layer = ckpt.llm.model.layers[0]
    assert layer.gradient_checkpointing
    assert layer._gradient_checkpointing_func.keywords == {
        'use_reentrant': False
    }
    embeds, mask = _batch(plain)
    weights = torch.randn(2, 9, 64, generator=torch.Generator().manual_seed(2))
    grads = []
    for model in (plain, ckpt):
        inputs = embeds.clone().requires_grad_()
        (model(inputs, mask) * weights).sum().backward()
        grads.append(inputs.grad)
    assert grads[1].abs().sum() > 0
    torch.testing.assert_close(grads[1], grads[0])


def test_lm_loss(lm):
    embeds, mask = _batch(lm)
    hidden = lm(embeds, mask)
    labels = torch.full((2, 9), -100)
    labels[0, 3:6] = torch.tensor([11, 2000, 50296])
    labels[1, 2] = 50256
    logits = lm.llm.lm_head(hidden)
    expected = F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]),
        labels[:, 1:].reshape(-1),
        ignore_index=-100)
    loss = lm.lm_loss(hidden, labels)
    torch.testing.assert_close(loss, expected)
    # Ignored positions do not matter.
    perturbed = hidden.detach().clone()
    perturbed[1, 5:] += 3.0
    perturbed[0, 6:] -= 1.0
    torch.testing.assert_close(lm.lm_loss(perturbed, labels), loss.detach())

    # No valid label: a zero that still reaches hidden and lm_head.
    hidden = hidden.detach().requires_grad_()
    lm.llm.lm_head.weight.grad = None
    zero = lm.lm_loss(hidden, torch.full((2, 9), -100))
    assert zero.item() == 0.0
    zero.backward()
    assert hidden.grad is not None and hidden.grad.abs().sum() == 0
    assert lm.llm.lm_head.weight.grad is not None
    lm.llm.lm_head.weight.grad = None


def test_generate_handles_right_padding(lm):
    embeds, mask = _batch(lm, lengths=(7, 4))
    texts = lm.generate(embeds, mask, max_new_tokens=4)
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
    alone = lm.generate(embeds[1:, :4], mask[1:, :4], max_new_tokens=4)
    assert texts[1] == alone[0]


def test_pretrained_loading(tmp_path):
    torch.manual_seed(3)
    phi = PhiForCausalLM(PhiConfig(**TINY)).to(torch.bfloat16)
    good = tmp_path / 'phi'
    phi.save_pretrained(good)
    lm = PhiLanguageModel(DEFAULT_TOKENIZER_DIR, pretrained=str(good))
    assert lm.llm.dtype == torch.float32
    assert lm.llm.lm_head.bias is None
    torch.testing.assert_close(
        lm.llm.model.layers[0].self_attn.q_proj.weight,
        phi.model.layers[0].self_attn.q_proj.weight.float())

    # A checkpoint without q/k/v (e.g. the fused 4.36 layout) must not load.
    broken = tmp_path / 'broken'
    phi.save_pretrained(broken)
    state = load_file(str(broken / 'model.safetensors'))
    state = {k: v for k, v in state.items() if 'q_proj' not in k}
    save_file(
        state, str(broken / 'model.safetensors'), metadata={'format': 'pt'})
    with pytest.raises(ValueError, match='q_proj'):
        PhiLanguageModel(DEFAULT_TOKENIZER_DIR, pretrained=str(broken))

    with pytest.raises(ValueError, match='nowhere'):
        PhiLanguageModel(
            DEFAULT_TOKENIZER_DIR, pretrained=str(tmp_path / 'nowhere'))
    with pytest.raises(ValueError, match='exactly one'):
        PhiLanguageModel(
            DEFAULT_TOKENIZER_DIR, pretrained=str(good), config=TINY)
    with pytest.raises(ValueError, match='exactly one'):
        PhiLanguageModel(DEFAULT_TOKENIZER_DIR)
    with pytest.raises(ValueError, match='tok_missing'):
        PhiLanguageModel(str(tmp_path / 'tok_missing'), config=TINY)
