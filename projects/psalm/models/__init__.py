# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
from .backbones import *  # noqa: F401,F403
from .baselines import TrivialBaseline
from .data_preprocessor import PSALMDataPreprocessor
from .inference import *  # noqa: F401,F403
from .lmm import *  # noqa: F401,F403
from .lmm.conditions import ConditionEncoder
from .mask_generator import *  # noqa: F401,F403
from .object_classifier import ObjectClassifier
from .psalm import PSALM

__all__ = [
    'PSALM', 'PSALMDataPreprocessor', 'ConditionEncoder', 'TrivialBaseline',
    'ObjectClassifier'
]
