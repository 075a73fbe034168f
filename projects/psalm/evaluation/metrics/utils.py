# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Small helpers shared by the PSALM metrics."""
from typing import Any, Dict, Sequence

import numpy as np
import torch
from mmengine.logging import print_log
from terminaltables import AsciiTable

from ..functional.mask_iou import mask_iou_stats


def sample_name(data_sample: Any) -> str:
    """Name a data sample in error messages by its image path or id.

    Args:
        data_sample (dict | BaseDataElement): A data sample.

    Returns:
        str: e.g. ``"sample img_path='a/b.jpg'"``.
    """
    for key in ('img_path', 'img_id'):
        value = data_sample.get(key)
        if value is not None:
            return f'sample {key}={value!r}'
    return 'sample (without img_path / img_id)'


def get_field(data_sample: Any, *keys: str) -> Any:
    """Read a (nested) field of a data sample, failing with its name.

    Works on dicts (what mmengine's ``Evaluator`` passes) and on data
    elements (``DetDataSample``, ``InstanceData``, ``PixelData``), which both
    provide ``get``.

    Args:
        data_sample (dict | BaseDataElement): A data sample.
        *keys (str): The path, e.g. ``('pred_instances', 'masks')``.

    Returns:
        Any: The field.

    Raises:
        KeyError: If a key on the path is missing or None.
    """
    value = data_sample
    for depth, key in enumerate(keys):
        value = value.get(key)
        if value is None:
            path = '.'.join(keys[:depth + 1])
            raise KeyError(f'{sample_name(data_sample)} has no {path!r}.')
    return value


def to_id_map(data: Any, name: str) -> np.ndarray:
    """Convert a (1, H, W) or (H, W) label map to an (H, W) array.

    Args:
        data (torch.Tensor | np.ndarray): The label map.
        name (str): Used in the error message.

    Returns:
        np.ndarray: Shape (H, W).

    Raises:
        ValueError: If the map is not (H, W) or (1, H, W).
    """
    if isinstance(data, torch.Tensor):
        data = data.detach().cpu().numpy()
    data = np.asarray(data)
    if data.ndim == 3 and data.shape[0] == 1:
        # shape (1, H, W) -> (H, W)
        data = data[0]
    if data.ndim != 2:
        raise ValueError(f'{name}: expected a (1, H, W) or (H, W) label map, '
                         f'but got shape {data.shape}.')
    return data


def log_table(title: str, rows: Sequence[Sequence[Any]]) -> None:
    """Log a table (header row first) through the current mmengine logger.

    Args:
        title (str): Printed above the table.
        rows (Sequence[Sequence]): Header row then data rows.
    """
    table = AsciiTable([[str(cell) for cell in row] for row in rows])
    print_log(f'{title}\n{table.table}', logger='current')


def log_metrics_table(title: str, metrics: Dict[str, float]) -> None:
    """Log a one-row table of metrics; ``num_*`` counts print as integers.

    Args:
        title (str): Printed above the table.
        metrics (dict[str, float]): Metric name -> value.
    """
    log_table(title, [
        list(metrics),
        [
            f'{int(v)}' if k.startswith('num_') else f'{v:.2f}'
            for k, v in metrics.items()
        ]
    ])


def sample_mask_stats(data_sample: Any) -> tuple:
    """:func:`mask_iou_stats` of ``pred_instances.masks`` against
    ``gt_masks``, with errors naming the sample.

    Returns:
        tuple: Per mask intersections, unions, predicted and GT areas.
    """
    pred_masks = get_field(data_sample, 'pred_instances', 'masks')
    gt_masks = get_field(data_sample, 'gt_masks')
    try:
        return mask_iou_stats(pred_masks, gt_masks)
    except (TypeError, ValueError) as error:
        raise type(error)(f'{sample_name(data_sample)}: {error}') from error
