# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Fixtures: the custom dataset made from tests/data, a tiny checkpoint."""
import pytest
import torch
from custom_data import build_custom_data
from mmengine.config import Config
from recipe_testing import RECIPES, REPO_ROOT, tiny_model


@pytest.fixture(scope='session')
def custom_data(tmp_path_factory):
    """The converted custom dataset (see custom_data.py)."""
    return build_custom_data(str(tmp_path_factory.mktemp('custom')))


@pytest.fixture(scope='session')
def tiny_checkpoint(tmp_path_factory):
    """A random-init tiny PSALM (no LoRA), weights-only: the "pretrained"
    model every recipe fine-tunes."""
    import projects.psalm  # noqa: F401
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(f'{REPO_ROOT}/{RECIPES["full"]}')
    torch.manual_seed(0)
    model = MODELS.build(tiny_model(cfg))
    model.init_weights()
    path = str(tmp_path_factory.mktemp('pretrained') / 'tiny.pth')
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)
    return path
