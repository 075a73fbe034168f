# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""The speed switches keep results: one training step of the tiny PSALM
in fp32 and under bf16 autocast, with and without (non-reentrant) gradient
checkpointing, and the forward with SDPA and with eager attention.

Every comparison runs the same weights on the same real batch with the same
seed; the criterion draws its loss points uniformly
(``importance_sample_ratio=0``): the default importance sampling picks the
most uncertain points of the predicted masks, so any rounding difference
moves the points and makes the two gradients incomparable (not wrong).
"""
import os.path as osp
import statistics
from typing import Dict, Optional, Tuple

import pytest
import torch
import torch.nn.functional as F
from psalm_testing import RealSample, build_tiny_psalm

# the four tasks of joint training (configs/psalm_joint.py)
JOINT_TASKS = ('panoptic', 'referring', 'interactive', 'vqa')
PARTS = ('projector', 'language_model', 'condition_encoder',
         'mask_generator', 'mask_tokens')
UNIFORM_POINTS = {'model.criterion.importance_sample_ratio': 0.0}
# bf16 keeps 8 significant bits (relative rounding 2^-9 = 0.2% per op).
# Measured over 3 random initialisations x 4 tasks: summed loss <= 0.56%,
# median term <= 0.15%, worst term 6.8% (a Hungarian match of one decoder
# layer flipping between two near-equal queries), per-part gradient
# cosine >= 0.95.
BF16_TOTAL_RTOL = 2e-2    # the summed loss
BF16_MEDIAN_RTOL = 1e-2   # the median over the loss terms
BF16_TERM_RTOL = 0.15     # any single term (room for one flipped match)
BF16_MIN_COSINE = 0.9     # gradient of each trained part


@pytest.fixture(scope='module')
def real_sample(data_root):
    return RealSample(data_root)


def _build(repo_root: str, **options) -> torch.nn.Module:
    """The tiny PSALM with uniform loss points and non-zero mask tokens.

    The mask tokens are zero-initialised (official); a zero vector is
    where LayerNorm amplifies rounding most (its gradient scales with
    1/sqrt(eps)). Training moves them away from zero at once, so they are
    drawn from N(0, 0.02) here, as after the first steps.
    """
    torch.manual_seed(0)
    model = build_tiny_psalm(repo_root, {**UNIFORM_POINTS, **options})
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        model.mask_tokens.copy_(
            torch.randn(model.mask_tokens.shape, generator=generator) * 0.02)
    return model


def _copy_weights(source: torch.nn.Module,
                  target: torch.nn.Module) -> torch.nn.Module:
    target.load_state_dict(source.state_dict())
    return target


def _train_step(model: torch.nn.Module, batch: dict,
                dtype: Optional[torch.dtype] = None
                ) -> Tuple[Dict[str, float], Dict[str, torch.Tensor]]:
    """Forward + backward of one batch (no optimizer step): the logged
    losses and the gradient of every trained parameter."""
    torch.manual_seed(0)  # category shuffling and loss points
    model.train()
    data = model.data_preprocessor(batch, True)
    with torch.autocast('cpu', dtype=dtype or torch.bfloat16,
                        enabled=dtype is not None):
        losses = model(**data, mode='loss')
    loss, log_vars = model.parse_losses(losses)
    model.zero_grad(set_to_none=True)
    loss.backward()
    grads = {
        name: param.grad.detach().clone()
        for name, param in model.named_parameters()
        if param.grad is not None
    }
    return {k: float(v) for k, v in log_vars.items()}, grads


def _flat(grads: Dict[str, torch.Tensor], names) -> torch.Tensor:
    return torch.cat([grads[name].flatten().double() for name in names])


@pytest.mark.parametrize('task', JOINT_TASKS)
def test_bf16_autocast_step_matches_fp32(repo_root, real_sample, task):
    model = _build(repo_root)
    batch = real_sample.batch(task, 2)
    fp32_losses, fp32_grads = _train_step(model, batch)
    bf16_losses, bf16_grads = _train_step(model, real_sample.batch(task, 2),
                                          torch.bfloat16)
    assert set(bf16_losses) == set(fp32_losses)
    relative = {
        name: abs(bf16_losses[name] - value) / abs(value)
        for name, value in fp32_losses.items()
    }
    assert relative['loss'] <= BF16_TOTAL_RTOL, relative
    assert statistics.median(relative.values()) <= BF16_MEDIAN_RTOL, relative
    assert max(relative.values()) <= BF16_TERM_RTOL, relative
    # the same parameters get gradients, all finite, pointing the same way
    assert set(bf16_grads) == set(fp32_grads)
    for name, grad in bf16_grads.items():
        assert grad.dtype == torch.float32, name  # fp32 master weights
        assert torch.isfinite(grad).all(), name
    for part in PARTS:
        names = [n for n in fp32_grads if n.split('.')[0] == part]
        if not names:  # e.g. no mask generator in a vqa step
            continue
        cosine = F.cosine_similarity(
            _flat(fp32_grads, names), _flat(bf16_grads, names), dim=0)
        assert cosine >= BF16_MIN_COSINE, (part, float(cosine))


def test_gradient_checkpointing_step_equals_plain(repo_root, real_sample):
    plain = _build(repo_root)
    checkpointed = _copy_weights(
        plain,
        _build(repo_root,
               **{'model.language_model.gradient_checkpointing': True}))
    # checkpointing is really on: every Phi layer runs again in backward
    # (transformers checkpoints the layer's forward, so a module inside the
    # layer sees both runs)
    calls = []
    hooks = [
        model.language_model.llm.model.layers[0].mlp.register_forward_pre_hook(
            lambda *_: calls.append(1)) for model in (checkpointed, plain)
    ]
    try:
        for task in ('referring', 'vqa'):
            calls.clear()
            losses, grads = _train_step(checkpointed,
                                        real_sample.batch(task, 2))
            assert len(calls) == 2, task  # forward + recomputation
            calls.clear()
            ref_losses, ref_grads = _train_step(plain,
                                                real_sample.batch(task, 2))
            assert len(calls) == 1, task
            assert losses.keys() == ref_losses.keys()
            for name, value in ref_losses.items():
                assert losses[name] == pytest.approx(value, rel=1e-6,
                                                     abs=1e-6), name
            assert grads.keys() == ref_grads.keys()
            for name, grad in ref_grads.items():
                torch.testing.assert_close(grads[name], grad, rtol=1e-5,
                                           atol=1e-6, msg=name)
    finally:
        for hook in hooks:
            hook.remove()


def test_sdpa_and_eager_attention_agree(repo_root, real_sample):
    sdpa = _build(repo_root)
    assert sdpa.language_model.llm.config._attn_implementation == 'sdpa'
    eager = _copy_weights(
        sdpa,
        _build(repo_root,
               **{'model.language_model.attn_implementation': 'eager'}))
    assert eager.language_model.llm.config._attn_implementation == 'eager'
    # two sentences of different lengths: right padding in the batch
    batch = real_sample.batch('referring', 2)
    batch['data_samples'][1].set_metainfo(dict(prompt=dict(
        task='referring',
        sentences=['the horse on the right of the man in the red shirt'])))
    outputs = []
    for model in (sdpa, eager):
        model.eval()
        data = model.data_preprocessor(batch, False)
        with torch.no_grad():
            _, llm_batch, hidden, _ = model._run_lmm(
                data['inputs'], data['data_samples'], 'referring')
            cls_logits, mask_logits = model(**data, mode='tensor')
        valid = llm_batch['attention_mask'].bool()  # [B, L]
        assert not valid.all()  # the shorter sequence is padded
        outputs.append((hidden[valid], cls_logits[-1], mask_logits[-1]))
    for (ours, theirs), name in zip(zip(*outputs),
                                    ('hidden', 'class', 'mask')):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5,
                                   msg=name)


def test_fused_adamw_steps_equal_the_default(repo_root, real_sample):
    """The CPU configs' fused AdamW (configs/_base_/tiny_joint_cpu.py) makes
    the same updates as torch's default AdamW: three clipped steps of the
    tiny PSALM (referring, panoptic, vqa) with the same gradients give the
    same weights. (The gradients come from one of the two models and are
    copied to the other: Phi's key biases get a mathematically zero
    gradient, pure rounding noise that Adam normalises to full-size steps,
    so gradients recomputed on weights 1e-7 apart would differ there.)"""
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(repo_root, 'configs', '_base_',
                                   'tiny_joint_cpu.py'))
    assert cfg.optim_wrapper.optimizer.fused is True
    options = {k: v for k, v in cfg.optim_wrapper.optimizer.items()
               if k not in ('type', 'fused')}
    default = _build(repo_root)
    fused = _copy_weights(default, _build(repo_root))
    initial = {k: v.detach().clone() for k, v in default.named_parameters()}
    pairs = [(p, q) for p, q in zip(default.parameters(), fused.parameters())
             if p.requires_grad]
    optimizers = [
        torch.optim.AdamW([p for p, _ in pairs], fused=False, **options),
        torch.optim.AdamW([q for _, q in pairs], fused=True, **options)
    ]
    for task in ('referring', 'panoptic', 'vqa'):
        _train_step(default, real_sample.batch(task, 2))
        torch.nn.utils.clip_grad_norm_(default.parameters(), 1.0)
        for p, q in pairs:
            q.grad = None if p.grad is None else p.grad.clone()
        for optimizer in optimizers:
            optimizer.step()
    moved = 0
    for (name, param), other in zip(default.named_parameters(),
                                    fused.parameters()):
        torch.testing.assert_close(other, param, rtol=1e-5, atol=1e-6,
                                   msg=name)
        moved += int(not torch.equal(param, initial[name]))
    assert moved > 10  # the steps did update the weights
