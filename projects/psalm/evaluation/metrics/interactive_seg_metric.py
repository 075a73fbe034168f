# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Interactive (visual-prompt) segmentation metric for COCO-Interactive."""
import logging
from typing import Dict, List, Optional, Sequence

import numpy as np
from mmdet.registry import METRICS
from mmengine.evaluator import BaseMetric
from mmengine.logging import print_log

from ..functional.mask_iou import cumulative_iou, mean_iou
from .utils import get_field, log_table, sample_mask_stats, sample_name


@METRICS.register_module()
class InteractiveSegMetric(BaseMetric):
    """mIoU and cIoU per visual-prompt type and overall.

    Every region (one visual prompt and its target instance) is one sample,
    as in PSALM's ``region_segmentation.py``. Data-sample fields read:

    * ``pred_instances.masks``: predicted masks of shape (N, H, W), one per
      region (PSALM: the top-1 query of the region);
    * ``gt_masks``: the regions' instance masks, shape (N, H, W);
    * ``prompt_type`` (metainfo): the prompt type of all N regions (a str),
      or one type per region (a sequence of N str).

    Skips are counted, logged as warnings and listed in the final table,
    never dropped silently:

    * a sample with no region (N = 0) among the predictions;
    * images and annotations that :class:`COCOInteractiveDataset` left out
      at load time in evaluation (no usable prompt of the requested type,
      empty GT), read from ``dataset_meta['skipped_images']`` /
      ``['skipped_annotations']``;
    * regions whose prompt vanished in the resize
      (``ResizeVisualPrompts(skip_empty=True)``), when the data samples
      carry ``skipped_regions`` (add it to ``PackPSALMInputs``'s
      ``meta_keys``).

    Results (in %): ``mIoU`` and ``cIoU`` over all regions, ``mIoU_<type>`` and
    ``cIoU_<type>`` for every type that has regions, ``num_regions`` and
    ``num_skipped`` (skipped samples: images left out at load time plus
    samples without a region). Skipped regions are in the table and the log.

    Args:
        prompt_types (Sequence[str]): Allowed prompt types. Defaults to
            ``('point', 'scribble', 'box', 'mask')``.
        collect_device (str): Device used to collect results across ranks.
            Defaults to ``'cpu'``.
        prefix (str, optional): Prefix of the metric names. Defaults to
            ``default_prefix``.
    """
    default_prefix: Optional[str] = 'interactive'

    def __init__(self,
                 prompt_types: Sequence[str] = ('point', 'scribble', 'box',
                                                'mask'),
                 collect_device: str = 'cpu',
                 prefix: Optional[str] = None) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if len(prompt_types) == 0:
            raise ValueError('prompt_types must not be empty.')
        self.prompt_types = tuple(prompt_types)

    def _region_types(self, data_sample: dict, num_regions: int) -> List[str]:
        """The validated prompt type of each region of a sample.

        Args:
            data_sample (dict): The data sample.
            num_regions (int): Its number of regions N.

        Returns:
            list[str]: N prompt types.

        Raises:
            ValueError: If the count differs from N or a type is unknown.
        """
        prompt_type = get_field(data_sample, 'prompt_type')
        types = [prompt_type] * num_regions if isinstance(
            prompt_type, str) else list(prompt_type)
        if len(types) != num_regions:
            raise ValueError(f'{sample_name(data_sample)}: {len(types)} '
                             f'prompt types for {num_regions} regions.')
        unknown = set(types) - set(self.prompt_types)
        if unknown:
            raise ValueError(f'{sample_name(data_sample)}: unknown prompt '
                             f'types {sorted(unknown)}; allowed: '
                             f'{self.prompt_types}.')
        return types

    def process(self, data_batch: dict, data_samples: Sequence[dict]) -> None:
        """Store per-region intersection / union with the prompt type.

        Args:
            data_batch (dict): A batch from the dataloader (unused).
            data_samples (Sequence[dict]): Data samples with predictions.
        """
        for data_sample in data_samples:
            vanished = data_sample.get('skipped_regions')  # None: absent
            intersections, unions, _, _ = sample_mask_stats(data_sample)
            if len(unions) == 0:
                self.results.append(
                    dict(skipped=sample_name(data_sample),
                         vanished=vanished))
                continue
            self.results.append(
                dict(
                    types=self._region_types(data_sample, len(unions)),
                    intersections=intersections,
                    unions=unions,
                    vanished=vanished))

    def compute_metrics(self, results: list) -> Dict[str, float]:
        """Compute mIoU / cIoU overall and per prompt type.

        Args:
            results (list): One dict per sample: ``types``, ``intersections``,
                ``unions`` (shape (N, )), or ``skipped``.

        Returns:
            dict[str, float]: See the class docstring.

        Raises:
            ValueError: If no sample has a region.
        """
        skipped = [r['skipped'] for r in results if 'skipped' in r]
        meta = self.dataset_meta or {}
        load_images = list(meta.get('skipped_images') or [])
        load_anns = list(meta.get('skipped_annotations') or [])
        recorded = [r['vanished'] for r in results
                    if r.get('vanished') is not None]
        vanished = sum(len(v) for v in recorded)
        for count, what, names in (
            (len(skipped), 'samples without regions were skipped', skipped),
            (len(load_images), 'images without a usable region were left '
             'out by the dataset', load_images),
            (len(load_anns), 'annotations (image, id, problem) were left '
             'out by the dataset', load_anns),
            (vanished, 'regions whose prompt vanished after resizing were '
             'skipped', [])):
            if count:
                print_log(
                    f'{count} {what}'
                    + (f': {names[:10]}{" ..." if count > 10 else ""}'
                       if names else ''),
                    logger='current',
                    level=logging.WARNING)
        evaluated = [r for r in results if 'skipped' not in r]
        if not evaluated:
            raise ValueError('No sample has a region; nothing to evaluate '
                             f'({len(skipped)} samples without regions, '
                             f'{len(load_images)} images left out by the '
                             'dataset).')
        types = np.array([t for r in evaluated for t in r['types']])
        intersections = np.concatenate([r['intersections'] for r in evaluated])
        unions = np.concatenate([r['unions'] for r in evaluated])

        metrics = {
            'mIoU': 100 * mean_iou(intersections, unions),
            'cIoU': 100 * cumulative_iou(intersections, unions)
        }
        rows = [['prompt', 'mIoU', 'cIoU', 'regions'],
                [
                    'all', f"{metrics['mIoU']:.2f}", f"{metrics['cIoU']:.2f}",
                    len(unions)
                ]]
        for prompt_type in self.prompt_types:
            keep = types == prompt_type
            if not keep.any():
                rows.append([prompt_type, '-', '-', 0])
                continue
            metrics[f'mIoU_{prompt_type}'] = 100 * mean_iou(
                intersections[keep], unions[keep])
            metrics[f'cIoU_{prompt_type}'] = 100 * cumulative_iou(
                intersections[keep], unions[keep])
            rows.append([
                prompt_type, f"{metrics[f'mIoU_{prompt_type}']:.2f}",
                f"{metrics[f'cIoU_{prompt_type}']:.2f}",
                int(keep.sum())
            ])
        metrics['num_regions'] = float(len(unions))
        metrics['num_skipped'] = float(len(skipped) + len(load_images))
        rows += [['skipped samples (no region)', '', '', len(skipped)],
                 ['skipped images (dataset)', '', '', len(load_images)],
                 ['skipped regions (dataset)', '', '', len(load_anns)],
                 ['skipped regions (resize)', '', '',
                  vanished if recorded else 'not recorded']]
        log_table('Interactive segmentation results:', rows)
        return metrics
