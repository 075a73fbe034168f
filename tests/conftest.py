# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Shared pytest fixtures."""
import os.path as osp

import pytest

REPO_ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..'))
DATA_ROOT = osp.join(REPO_ROOT, 'tests', 'data')


@pytest.fixture(scope='session')
def repo_root() -> str:
    return REPO_ROOT


@pytest.fixture(scope='session')
def data_root() -> str:
    return DATA_ROOT
