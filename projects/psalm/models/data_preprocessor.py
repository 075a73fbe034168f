# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Batching of PSALM inputs: fixed-size padding, normalisation, prompt masks."""
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mmdet.models.data_preprocessors import DetDataPreprocessor
from mmdet.registry import MODELS


@MODELS.register_module()
class PSALMDataPreprocessor(DetDataPreprocessor):
    """Normalise images and pad them, and their visual prompts, to one size.

    PSALM resizes the long side to 1024 (pipeline) and pads bottom/right to
    1024x1024 with the value 128 *before* normalisation (official
    ``FixedSizeCrop``), so the padding normalises to ``(128 - mean) / std``.
    Visual-prompt masks (``data_sample.prompt_masks``, ``[K, h, w]``) are
    padded with 0 to the same size. Everything else is mmdet's
    :class:`DetDataPreprocessor` (ImageNet mean/std, BGR -> RGB, GT masks
    padded in training).

    Args:
        fixed_size (tuple[int, int]): ``(H, W)`` every image is padded to.
        img_pad_value (int): Pixel value of the padding before normalisation.
        **kwargs: Passed to :class:`DetDataPreprocessor`.
    """

    def __init__(self,
                 fixed_size: Tuple[int, int] = (1024, 1024),
                 img_pad_value: int = 128,
                 mean: Sequence[float] = (123.675, 116.28, 103.53),
                 std: Sequence[float] = (58.395, 57.12, 57.375),
                 bgr_to_rgb: bool = True,
                 pad_mask: bool = True,
                 **kwargs) -> None:
        super().__init__(
            mean=mean, std=std, bgr_to_rgb=bgr_to_rgb, pad_mask=pad_mask,
            pad_size_divisor=1, **kwargs)
        self.fixed_size = tuple(fixed_size)
        self.img_pad_value = img_pad_value

    def _pad_to_fixed(self, tensor: Tensor, value: float,
                      name: str) -> Tensor:
        """Pad the last two dims of ``tensor`` bottom/right to fixed_size."""
        height, width = tensor.shape[-2:]
        fixed_h, fixed_w = self.fixed_size
        if height > fixed_h or width > fixed_w:
            raise ValueError(
                f'{name} of size {height}x{width} is larger than the fixed '
                f'input size {fixed_h}x{fixed_w}; resize it in the pipeline '
                '(long side to the fixed size) first')
        return F.pad(tensor, (0, fixed_w - width, 0, fixed_h - height),
                     value=value)

    def pad_gt_masks(self, batch_data_samples: Sequence) -> None:
        """Pad GT masks; conversation samples carry none."""
        if all('gt_instances' in sample for sample in batch_data_samples):
            super().pad_gt_masks(batch_data_samples)

    def forward(self, data: dict, training: bool = False) -> dict:
        """Pad, normalise and stack a batch.

        Args:
            data (dict): ``inputs`` (list of ``[3, h, w]`` uint8 BGR tensors)
                and ``data_samples``.
            training (bool): Whether the batch is for training.

        Returns:
            dict: ``inputs`` ``[B, 3, H, W]`` float and ``data_samples``.
        """
        data = dict(data)
        data['inputs'] = [
            self._pad_to_fixed(img, self.img_pad_value, 'image')
            for img in data['inputs']
        ]
        out = super().forward(data, training)
        for sample in out['data_samples']:
            masks: Optional[Tensor] = sample.get('prompt_masks')
            if masks is not None:
                masks = torch.as_tensor(masks, device=self.device)
                sample.prompt_masks = self._pad_to_fixed(
                    masks.to(torch.uint8), 0,
                    f'prompt masks of {sample.get("img_path", "a sample")}'
                ).bool()
        return out
