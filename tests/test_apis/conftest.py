# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Fixtures: a random tiny-PSALM checkpoint and an inferencer on it."""
import os.path as osp

import pytest
from config_testing import TINY_MODEL, save_random_checkpoint
from mmengine.config import Config

IMAGE = 'coco_panoptic_sample/input_images/000000439180.jpg'  # 640x360


@pytest.fixture(scope='session')
def image_path(data_root) -> str:
    return osp.join(data_root, IMAGE)


@pytest.fixture(scope='session')
def tiny_checkpoint(repo_root, tmp_path_factory) -> str:
    """Weights-only checkpoint of the randomly initialised tiny PSALM."""
    cfg = Config.fromfile(osp.join(repo_root, TINY_MODEL))
    cfg.model.language_model.tokenizer = osp.join(
        repo_root, cfg.model.language_model.tokenizer)
    path = str(tmp_path_factory.mktemp('tiny_psalm') / 'random.pth')
    save_random_checkpoint(cfg, path)
    return path


@pytest.fixture(scope='session')
def inferencer(repo_root, tiny_checkpoint):
    from projects.psalm.apis import PSALMInferencer
    return PSALMInferencer(
        osp.join(repo_root, TINY_MODEL), tiny_checkpoint, device='cpu')
