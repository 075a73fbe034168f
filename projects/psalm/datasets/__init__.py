# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
from .coco_interactive import COCOInteractiveDataset
from .coco_panoptic import LoadPanopticSegments, PSALMCocoPanopticDataset
from .davis import LoadDAVISAnnotations, PSALMDAVISDataset
from .grefcoco import PSALMGRefCocoDataset
from .ov_semseg import (LoadCityscapesInstances, LoadPanopticInstances,
                        LoadSemSegAnnotations, PSALMADE20KDataset,
                        PSALMCityscapesDataset, PSALMOVPanopticDataset,
                        PSALMPascalContext59Dataset,
                        PSALMPascalContext459Dataset, PSALMPascalVOC20Dataset)
from .llava import LLaVACaptionDataset, LLaVAInstructDataset, VQADataset
from .refcoco import PSALMRefCocoDataset
from .samplers import MultiTaskBatchSampler
from .transforms import (PSALM_META_KEYS, LoadVisualPrompts, PackPSALMInputs,
                         ResizeVisualPrompts)

__all__ = [
    'PSALMCocoPanopticDataset', 'LoadPanopticSegments', 'PSALMRefCocoDataset',
    'PSALMGRefCocoDataset', 'LLaVAInstructDataset', 'LLaVACaptionDataset',
    'VQADataset', 'PackPSALMInputs', 'PSALM_META_KEYS',
    'COCOInteractiveDataset', 'LoadVisualPrompts', 'MultiTaskBatchSampler',
    'ResizeVisualPrompts', 'PSALMDAVISDataset', 'LoadDAVISAnnotations',
    'PSALMADE20KDataset', 'PSALMCityscapesDataset', 'PSALMOVPanopticDataset',
    'PSALMPascalContext59Dataset', 'PSALMPascalContext459Dataset',
    'PSALMPascalVOC20Dataset', 'LoadSemSegAnnotations',
    'LoadCityscapesInstances', 'LoadPanopticInstances'
]
