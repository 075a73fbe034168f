# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Fixtures of the web-demo tests: a random tiny-PSALM checkpoint and a
backbone call counter (the trained ``shapesworld_model`` is shared, in
tests/conftest.py)."""
import os.path as osp

import pytest
from config_testing import TINY_MODEL, save_random_checkpoint
from mmengine.config import Config


@pytest.fixture(scope='session')
def random_checkpoint(repo_root, tmp_path_factory) -> str:
    """Weights-only checkpoint of the randomly initialised tiny PSALM."""
    cfg = Config.fromfile(osp.join(repo_root, TINY_MODEL))
    cfg.model.language_model.tokenizer = osp.join(
        repo_root, cfg.model.language_model.tokenizer)
    path = str(tmp_path_factory.mktemp('web_demo_tiny') / 'random.pth')
    save_random_checkpoint(cfg, path)
    return path


class BackboneCalls:
    """Counts the vision-encoder forwards of a model (a forward hook)."""

    def __init__(self, model) -> None:
        self.count = 0
        self._handle = model.backbone.register_forward_hook(self._hook)

    def _hook(self, module, args, output) -> None:
        self.count += 1

    def remove(self) -> None:
        self._handle.remove()


@pytest.fixture
def backbone_calls():
    """``backbone_calls(model)`` -> a :class:`BackboneCalls`, removed at
    the end of the test."""
    counters = []

    def attach(model) -> BackboneCalls:
        counters.append(BackboneCalls(model))
        return counters[-1]

    yield attach
    for counter in counters:
        counter.remove()
