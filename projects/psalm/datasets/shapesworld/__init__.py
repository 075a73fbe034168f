# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""ShapesWorld: a seeded synthetic world written in the formats of the real
datasets (COCO panoptic / instances / COCO-Interactive, RefCOCO/+/g,
gRefCOCO, LLaVA, VQA, CC3M captions, DAVIS-2017), so the project's real
loaders, pipelines and metrics run on it unchanged.

Not imported by :mod:`projects.psalm.datasets`; import it explicitly::

    from projects.psalm.datasets.shapesworld import generate_shapesworld
"""
from .examples import ImageExamples, ObjectPrompts, load_examples
from .expressions import (caption, gref_expressions, qa_pairs,
                          referring_expressions)
from .generate import CATEGORIES, QUESTION_SUFFIX, generate_shapesworld
from .predicates import evaluate_predicate, make_predicate
from .scene import (COLOURS, SIZE_CLASSES, STUFF_CLASSES, THING_CLASSES,
                    Scene, object_attributes, sample_scene)
from .video import Video, sample_video

__all__ = [
    'generate_shapesworld', 'CATEGORIES', 'QUESTION_SUFFIX',
    'THING_CLASSES', 'STUFF_CLASSES', 'COLOURS', 'SIZE_CLASSES', 'Scene',
    'sample_scene', 'object_attributes', 'Video', 'sample_video',
    'make_predicate', 'evaluate_predicate', 'referring_expressions',
    'gref_expressions', 'qa_pairs', 'caption', 'load_examples',
    'ImageExamples', 'ObjectPrompts'
]
