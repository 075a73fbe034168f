# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""PSALM for OpenMMLab.

Importing this package (``custom_imports=dict(imports=['projects.psalm'])``)
registers every PSALM component into the mmdet registries and makes mmengine
checkpoints loadable with ``torch.load(weights_only=True)``.
"""
from . import datasets, engine, evaluation, models, visualization  # noqa: F401
from .version import __version__

__all__ = ['__version__']
