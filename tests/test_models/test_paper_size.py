# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""The paper-size PSALM builds (on the meta device) with the reference
parameter counts of official_psalm.md §7."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mmdet.registry import MODELS
from mmdet.utils import register_all_modules

CONFIG = 'configs/_base_/models/psalm_swin-b_phi-1.5.py'


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope='module')
def paper_model(repo_root):
    """Build on the meta device: shapes only, no memory, ~2 s."""
    import projects.psalm  # noqa: F401
    register_all_modules()
    cfg = Config.fromfile(osp.join(repo_root, CONFIG))
    lm = cfg.model.language_model
    lm.tokenizer = osp.join(repo_root, lm.tokenizer)
    lm.pretrained = None
    lm.config = cfg.phi_1_5_config
    lm.added_tokens = ('[PAD]', '[SEG]')  # the released vocabulary
    cfg.model.input_schema.sentence_terminator = '[SEG]'
    cfg.model.projector = dict(type='ResNetSwinProjector')  # official
    cfg.model.mask_generator.pixel_decoder.conv_bias = True  # official
    # mmdet's Swin calls .item() on a linspace of drop-path rates, which
    # meta tensors cannot do: that one linspace is made on the CPU
    linspace = torch.linspace
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch, 'linspace',
                   lambda *a, **k: linspace(*a, **{'device': 'cpu', **k}))
        with torch.device('meta'):
            return MODELS.build(cfg.model)


def test_component_parameter_counts(paper_model):
    model = paper_model
    # Swin-B: exactly the official vision tower's parameters (summed from
    # psalm_state_dict_keys.txt); §7's "87.4 M" also counts the 24
    # relative_position_index buffers of 144 x 144
    assert count(model.backbone) == 86_880_376
    index_buffers = sum(b.numel() for n, b in model.backbone.named_buffers()
                        if n.endswith('relative_position_index'))
    assert count(model.backbone) + index_buffers == pytest.approx(
        87.4e6, abs=0.05e6)
    # Phi-1.5 with the 50297-row vocabulary and a bias-free lm_head
    llm = model.language_model.llm
    assert llm.get_input_embeddings().weight.shape == (50297, 2048)
    assert llm.lm_head.weight.shape == (50297, 2048)
    assert llm.lm_head.bias is None
    layers = sum(count(layer) for layer in llm.model.layers)
    assert layers == pytest.approx(1208.5e6, abs=0.1e6)
    assert count(model.language_model) == pytest.approx(
        1208.5e6 + 2 * 103.0e6, abs=0.2e6)
    # the official ResNetSwin projector: 62.9 M
    assert count(model.projector) == pytest.approx(62.9e6, abs=0.05e6)
    # pixel decoder with the official conv biases: exactly the official 5.5 M
    assert count(model.mask_generator.pixel_decoder) == 5_544_896
    # decoder + heads: 14.9 M in the official model minus its two unused
    # tables query_feat [100, 256] and SEG_query_embed [101, 256]
    decoder = count(model.mask_generator) - count(
        model.mask_generator.pixel_decoder)
    assert decoder == 14_879_232 - 100 * 256 - 101 * 256
    # 100 mask tokens of the LLM width, 4 projections 2048 -> 256
    assert model.mask_tokens.shape == (100, 2048)
    assert count(model.condition_encoder) == 4 * (2048 * 256 + 256)
    # all parameters of psalm_state_dict_keys.txt (1,587,057,208, buffers
    # excluded) but the unused query_feat and SEG_query_embed
    assert count(model) == 1_587_057_208 - 100 * 256 - 101 * 256


def test_paper_defaults_differ_from_official_where_the_paper_says(repo_root):
    cfg = Config.fromfile(osp.join(repo_root, CONFIG)).model
    assert cfg.projector.type == 'ConvLinearProjector'  # 3x3 conv + linear
    assert cfg.condition_encoder.sentence_pooling == 'ref_token'  # [REF]
    assert '[REF]' in cfg.language_model.added_tokens
    assert cfg.condition_encoder.visual_pooling == 'mask_avg'
    assert cfg.input_schema.mask_token_position == 'suffix'
    assert cfg.frozen_modules == ('backbone', )


def test_paper_projector_gives_256_tokens(paper_model):
    tokens = paper_model.projector(torch.empty(1, 1024, 32, 32,
                                               device='meta'))
    assert tokens.shape == (1, 256, 2048)
