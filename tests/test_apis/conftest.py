# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Fixtures: a real image and an inferencer on the random tiny PSALM
(``tiny_checkpoint``, tests/conftest.py)."""
import os.path as osp

import pytest
from config_testing import TINY_MODEL

IMAGE = 'coco_panoptic_sample/input_images/000000439180.jpg'  # 640x360


@pytest.fixture(scope='session')
def image_path(data_root) -> str:
    return osp.join(data_root, IMAGE)


@pytest.fixture(scope='session')
def inferencer(repo_root, tiny_checkpoint):
    from projects.psalm.apis import PSALMInferencer
    return PSALMInferencer(
        osp.join(repo_root, TINY_MODEL), tiny_checkpoint, device='cpu')
