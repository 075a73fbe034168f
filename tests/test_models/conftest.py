# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Fixtures: a tiny PSALM and real-image samples for every task."""
import pytest
import torch
from psalm_testing import RealSample, build_tiny_psalm


@pytest.fixture(scope='session')
def real_sample(data_root):
    return RealSample(data_root)


@pytest.fixture(scope='module')
def tiny_psalm(repo_root):
    torch.manual_seed(0)
    return build_tiny_psalm(repo_root)
