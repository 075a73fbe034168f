# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""gRefCOCO for PSALM's generalised referring segmentation (GRES)."""
from typing import Any, Dict, List

from mmdet.registry import DATASETS
from .refcoco import PSALMRefCocoDataset

NO_TARGET_ANN_ID = -1


@DATASETS.register_module()
class PSALMGRefCocoDataset(PSALMRefCocoDataset):
    """gRefCOCO samples (task ``'gres'``): an expression may refer to one,
    several or no object.

    Sources, protocols and data-info fields are those of
    :class:`PSALMRefCocoDataset`, with:

    * the refer-toolkit refs file is ``grefs(unc).json`` (a json list; each
      ref's ``ann_id`` is a list of ann ids, ``[-1]`` for no target);
    * the official PSALM json may have several anns per entry, or none
      (no target);
    * ``instances`` holds one entry per target (possibly none), so a sample
      has ``T >= 0`` GT masks; the evaluation GT is their union (all zeros
      for no-target expressions), see :class:`PackPSALMInputs`.

    Args:
        **kwargs: Arguments of :class:`PSALMRefCocoDataset`
            (``split_file='grefs(unc).json'`` for the refer-toolkit format).
    """
    TASK = 'gres'
    SPLIT_FILE_FORMAT = 'json'
    ALLOW_NO_TARGET = True

    def _ref_anns(self, ref: Dict[str, Any], anns: Dict[int, dict],
                  source: str) -> List[dict]:
        """The target anns of a gRefCOCO ref (empty for no target)."""
        ann_ids = ref['ann_id']
        if not isinstance(ann_ids, list) or not ann_ids:
            raise ValueError(f'{source}: ann_id must be a non-empty list, got '
                             f'{ann_ids!r}')
        no_target = NO_TARGET_ANN_ID in ann_ids
        if no_target and len(ann_ids) != 1:
            raise ValueError(f'{source}: ann_id mixes -1 (no target) with '
                             f'targets: {ann_ids}')
        if 'no_target' in ref and bool(ref['no_target']) != no_target:
            raise ValueError(f'{source}: no_target={ref["no_target"]} '
                             f'contradicts ann_id={ann_ids}')
        if no_target:
            return []
        targets = []
        for ann_id in ann_ids:
            if ann_id not in anns:
                raise ValueError(f'{source}: ann {ann_id} is not in '
                                 f'{self.ann_file}')
            targets.append(anns[ann_id])
        return targets
