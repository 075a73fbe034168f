# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Shared pytest fixtures."""
import os
import os.path as osp

import pytest
from config_testing import TINY_MODEL, save_random_checkpoint
from mmengine.config import Config

REPO_ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..'))
DATA_ROOT = osp.join(REPO_ROOT, 'tests', 'data')


@pytest.fixture(scope='session')
def repo_root() -> str:
    return REPO_ROOT


@pytest.fixture(scope='session')
def data_root() -> str:
    return DATA_ROOT


@pytest.fixture(scope='session')
def tiny_checkpoint(repo_root, tmp_path_factory) -> str:
    """Weights-only checkpoint of the randomly initialised tiny PSALM
    (configs/_base_/models/psalm_tiny.py)."""
    cfg = Config.fromfile(osp.join(repo_root, TINY_MODEL))
    cfg.model.language_model.tokenizer = osp.join(
        repo_root, cfg.model.language_model.tokenizer)
    path = str(tmp_path_factory.mktemp('tiny_psalm') / 'random.pth')
    save_random_checkpoint(cfg, path)
    return path


@pytest.fixture(scope='session')
def shapesworld_model(tmp_path_factory) -> dict:
    """A tiny PSALM trained briefly on a 2-image ShapesWorld (about 3 min,
    once per session; tests/shapesworld_testing.py): ``config``,
    ``checkpoint``, ``data_root``, ``image`` (a training image), ``targets``
    (``text``, ``point``, ``mask`` of its objects) and ``examples``.
    ``PSALM_SHAPESWORLD_FIXTURE_DIR`` keeps (and reuses) it in a folder."""
    from shapesworld_testing import train_shapesworld_model
    work_dir = os.environ.get('PSALM_SHAPESWORLD_FIXTURE_DIR') or str(
        tmp_path_factory.mktemp('shapesworld'))
    return train_shapesworld_model(work_dir)


@pytest.fixture(autouse=True, scope='session')
def _single_torch_thread():
    """Tiny tensors on 2 cores: one intra-op thread avoids threads spinning
    against each other (measured: mask-generator tests 17 s -> 3 s)."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
