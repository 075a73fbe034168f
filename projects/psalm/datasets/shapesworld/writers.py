# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Deterministic file writers of the ShapesWorld generator.

Every writer makes the parent folder and gives byte-identical files for
identical inputs: JPEGs with fixed encoder settings, PNGs without metadata,
json with a fixed key order (the insertion order) and compact separators,
pickles with a fixed protocol of a json round trip of the object (so the
pickle memo does not depend on object identities).
"""
import json
import os
import os.path as osp
import pickle
import shutil
from typing import Any, List, Sequence

import numpy as np
from PIL import Image

__all__ = [
    'JPEG_QUALITY', 'write_jpeg', 'write_panoptic_png', 'write_palette_png',
    'davis_palette', 'write_json', 'write_pickle', 'link_or_copy'
]

#: Quality of the JPEGs (4:4:4 chroma, baseline, not optimised).
JPEG_QUALITY = 95


def _parent(path: str) -> None:
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)


def write_jpeg(path: str, image: np.ndarray,
               quality: int = JPEG_QUALITY) -> None:
    """Write an RGB image as a real JPEG.

    Args:
        path (str): Output file.
        image (np.ndarray): (H, W, 3) uint8 RGB.
        quality (int): JPEG quality.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f'{path}: expected an (H, W, 3) uint8 RGB image, '
                         f'got {image.dtype} {image.shape}')
    _parent(path)
    Image.fromarray(image, 'RGB').save(
        path, format='JPEG', quality=quality, subsampling=0,
        optimize=False, progressive=False)


def write_panoptic_png(path: str, ids: np.ndarray) -> None:
    """Write a COCO panoptic PNG (``id = R + 256 G + 256^2 B``).

    Args:
        path (str): Output file.
        ids (np.ndarray): (H, W) int segment ids in ``[0, 256^3)``.
    """
    ids = np.asarray(ids, dtype=np.int64)
    if ids.min() < 0 or ids.max() >= 256**3:
        raise ValueError(f'{path}: segment ids must be in [0, 256^3), got '
                         f'[{ids.min()}, {ids.max()}]')
    rgb = np.stack([ids % 256, ids // 256 % 256, ids // 256**2],
                   axis=-1).astype(np.uint8)
    _parent(path)
    Image.fromarray(rgb, 'RGB').save(path, format='PNG', compress_level=6)


def davis_palette() -> List[int]:
    """The DAVIS-2017 / PASCAL VOC colour map: 256 RGB triples, flattened
    (index i's bits are spread over the high bits of R, G and B)."""
    palette = []
    for index in range(256):
        red = green = blue = 0
        value = index
        for bit in range(8):
            red |= ((value >> 0) & 1) << (7 - bit)
            green |= ((value >> 1) & 1) << (7 - bit)
            blue |= ((value >> 2) & 1) << (7 - bit)
            value >>= 3
        palette += [red, green, blue]
    return palette


def write_palette_png(path: str, ids: np.ndarray,
                      palette: Sequence[int]) -> None:
    """Write an indexed (mode P) PNG, DAVIS-2017's annotation format.

    Args:
        path (str): Output file.
        ids (np.ndarray): (H, W) uint8 object ids.
        palette (Sequence[int]): 768 palette values.
    """
    if ids.dtype != np.uint8 or ids.ndim != 2:
        raise ValueError(f'{path}: expected an (H, W) uint8 id map, got '
                         f'{ids.dtype} {ids.shape}')
    image = Image.fromarray(ids, 'P')
    image.putpalette(list(palette))
    _parent(path)
    image.save(path, format='PNG', compress_level=6)


def write_json(path: str, data: Any) -> None:
    """Write compact json (keys in insertion order).

    Args:
        path (str): Output file.
        data (Any): json-serialisable data.
    """
    _parent(path)
    with open(path, 'w') as f:
        json.dump(data, f, separators=(',', ':'))


def write_pickle(path: str, data: Any, protocol: int = 2) -> None:
    """Write a pickle of json-like data (refer-toolkit refs).

    Args:
        path (str): Output file.
        data (Any): json-serialisable data (round-tripped through json).
        protocol (int): Pickle protocol (2, as the refer toolkit's files).
    """
    _parent(path)
    with open(path, 'wb') as f:
        pickle.dump(json.loads(json.dumps(data)), f, protocol=protocol)


def link_or_copy(src: str, dst: str) -> None:
    """Hard-link ``src`` to ``dst`` (a copy where links are impossible),
    replacing an existing ``dst``.

    Args:
        src (str): Existing file.
        dst (str): New path.
    """
    if not osp.isfile(src):
        raise FileNotFoundError(f'{src} does not exist')
    _parent(dst)
    if osp.lexists(dst):
        os.remove(dst)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
