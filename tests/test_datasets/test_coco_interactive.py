# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""COCO-Interactive: prompt rules (paper appendix 8), builder, dataset and
visual-prompt transforms, on the real COCO val2017 sample (2 images, 50 RLE
segments, 3 of them crowd)."""
import copy
import io
import json
import os.path as osp
from contextlib import redirect_stderr, redirect_stdout

import cv2
import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch
from psalm_testing import load_tool
from scipy import ndimage

import projects.psalm  # noqa: F401  (registers the dataset / transforms)
from mmdet.registry import DATASETS
from mmdet.structures.mask import BitmapMasks
from mmdet.utils import register_all_modules
from projects.psalm.datasets.coco_interactive import (
    PROMPT_FIELDS, PROMPT_TYPES, blur_mask_prompt, draw_sine_scribble,
    jitter_scribble_box, mask_to_box, sample_point_prompt)
from projects.psalm.datasets.transforms import (LoadVisualPrompts,
                                                ResizeVisualPrompts)
from projects.psalm.datasets.transforms.formatting import PSALM_META_KEYS
from projects.psalm.evaluation.metrics import InteractiveSegMetric

SAMPLE = 'coco_panoptic_sample'
BUILDER = 'tools/dataset_converters/build_coco_interactive.py'
IMAGE_SIZE = 256
# pixel rasterisation: pixel centre vs curve point (0.71 px) + line drawing
RASTER_TOL = 1.5


def decode(rle: dict) -> np.ndarray:
    return mask_utils.decode(rle).astype(bool)


@pytest.fixture(scope='module')
def coco_json(data_root) -> str:
    return osp.join(data_root, SAMPLE, 'panoptic_coco_detection_format.json')


@pytest.fixture(scope='module')
def image_dir(data_root) -> str:
    return osp.join(data_root, SAMPLE, 'input_images')


@pytest.fixture(scope='module')
def built(repo_root, coco_json, image_dir, tmp_path_factory):
    """The builder CLI (``main(argv)`` in-process) on the real COCO json,
    seed 0, with its printed output."""
    out = str(tmp_path_factory.mktemp('coco_interactive') / 'seed0.json')
    stdout, stderr = io.StringIO(), io.StringIO()
    with redirect_stdout(stdout), redirect_stderr(stderr):
        stats = load_tool(BUILDER).main(
            [coco_json, out, '--seed', '0', '--image-root', image_dir])
    with open(out) as f:
        entries = json.load(f)
    return dict(path=out, entries=entries, stats=stats,
                stdout=stdout.getvalue(), stderr=stderr.getvalue())


@pytest.fixture(scope='module')
def regions(built):
    """(entry, ann, GT mask, {type: prompt}) of every written annotation."""
    out = []
    for entry in built['entries']:
        for ann in entry['anns']:
            gt = decode(ann['segmentation'])
            prompts = {t: decode(ann[PROMPT_FIELDS[t]]) for t in PROMPT_TYPES}
            out.append((entry, ann, gt, prompts))
    return out


def build_dataset(ann_file, image_dir, pipeline, **kwargs):
    register_all_modules()
    return DATASETS.build(
        dict(type='COCOInteractiveDataset', ann_file=ann_file,
             data_prefix=dict(img=image_dir), pipeline=pipeline, **kwargs))


def train_pipeline(pack=True):
    steps = [
        dict(type='LoadImageFromFile'),
        dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
        dict(type='LoadVisualPrompts'),
        dict(type='Resize', scale=(IMAGE_SIZE, IMAGE_SIZE), keep_ratio=True),
        dict(type='ResizeVisualPrompts'),
    ]
    return steps + [dict(type='PackPSALMInputs')] if pack else steps


def eval_pipeline():
    return [
        dict(type='LoadImageFromFile'),
        dict(type='LoadVisualPrompts'),
        dict(type='Resize', scale=(IMAGE_SIZE, IMAGE_SIZE), keep_ratio=True),
        dict(type='ResizeVisualPrompts', skip_empty=True),
        dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
        dict(type='PackPSALMInputs',
             meta_keys=PSALM_META_KEYS + ('gt_masks', )),
    ]


def disk(radius):
    offsets = np.arange(-radius, radius + 1)
    return offsets[:, None]**2 + offsets[None, :]**2 <= radius**2


def nearest_resize(masks, height, width):
    """(K, H, W) bool -> (K, h, w) with cv2 nearest (independent of mmdet)."""
    return np.stack([
        cv2.resize(m.astype(np.uint8), (width, height),
                   interpolation=cv2.INTER_NEAREST) for m in masks
    ]).astype(bool)


# ----------------------------------------------------------------------
# builder output and the appendix-8 rules, checked on every instance
# ----------------------------------------------------------------------
def test_builder_output_format(built, coco_json):
    with open(coco_json) as f:
        coco = json.load(f)
    entries = built['entries']
    assert isinstance(entries, list) and len(entries) == 2
    assert built['stats'] == dict(
        images=2, annotations=47, crowd_annotations=3, empty_annotations=0,
        images_without_annotations=0)
    assert 'wrote 2 images / 47 annotations' in built['stdout']
    assert '0 images without annotations, 3 crowd' in built['stdout']
    assert '100%' in built['stderr']  # the tqdm bar
    anns_by_id = {a['id']: a for a in coco['annotations']}
    images = {img['id']: img for img in coco['images']}
    for new_id, entry in enumerate(entries):
        assert entry['new_img_id'] == new_id
        assert entry['image_info'] == images[entry['image_info']['id']]
        assert entry['image'] == entry['image_info']['file_name']
        height, width = entry['image_info']['height'], entry['image_info'][
            'width']
        for ann in entry['anns']:
            original = anns_by_id[ann['id']]
            assert original['iscrowd'] == 0
            # all COCO fields kept unchanged, plus the four prompt RLEs
            assert {k: ann[k] for k in original} == original
            assert set(ann) - set(original) == set(PROMPT_FIELDS.values())
            for field in PROMPT_FIELDS.values():
                assert isinstance(ann[field]['counts'], str)
                assert ann[field]['size'] == [height, width]
    assert sum(len(e['anns']) for e in entries) == 47


def test_point_rule(regions):
    """One pixel on the object, in the disk of radius min(w, h) / 2 around
    the bbox centre."""
    for _, ann, gt, prompts in regions:
        rows, cols = np.nonzero(prompts['point'])
        assert len(rows) == 1, ann['id']
        assert gt[rows[0], cols[0]], f'point off the object in {ann["id"]}'
        x0, y0, x1, y1 = mask_to_box(gt)
        radius = min(x1 - x0, y1 - y0) / 2
        dist = np.hypot(cols[0] + 0.5 - (x0 + x1) / 2,
                        rows[0] + 0.5 - (y0 + y1) / 2)
        assert dist <= radius + np.sqrt(0.5), (ann['id'], dist, radius)


def fit_sine_scribble(scribble, gt_box, step=0.005):
    """Scales (sw, sh) of the boxes, concentric with ``gt_box``, whose
    diagonal the scribble follows: every pixel within 20 px (the largest
    amplitude) of the diagonal, along it within [0, L], and (unless the
    scribble is clipped by the image border) covering it from end to end.
    Searched on a grid of (sw, sh) in [0.5, 1.2]^2 with IoU > 0.5."""
    height, width = scribble.shape
    rows, cols = np.nonzero(scribble)
    clipped = (rows.min() == 0 or cols.min() == 0 or rows.max() == height - 1
               or cols.max() == width - 1)
    # extremes of linear functionals lie on the convex hull: (V, 2) xy
    hull = cv2.convexHull(
        np.stack([cols + 0.5, rows + 0.5], 1).astype(np.float32)).reshape(
            -1, 2).astype(np.float64)
    x0, y0, x1, y1 = gt_box
    cx, cy, w, h = (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0
    scales = np.arange(0.5, 1.2 + 1e-9, step)
    sw, sh = (a.ravel() for a in np.meshgrid(scales, scales, indexing='ij'))
    bw, bh = w * sw, h * sh  # (M, )
    inter = np.minimum(w, bw) * np.minimum(h, bh)
    iou = inter / (w * h + bw * bh - inter)
    tol = RASTER_TOL + step * np.hypot(w, h)  # + grid error
    fits = np.zeros_like(sw, dtype=bool)
    for sign in (1, -1):  # the two diagonals
        start = np.stack([cx - bw / 2, cy - sign * bh / 2], 1)  # (M, 2)
        direction = np.stack([bw, sign * bh], 1)
        length = np.hypot(bw, bh)
        unit = direction / length[:, None]
        rel = hull[None] - start[:, None]  # (M, V, 2)
        along = rel[..., 0] * unit[:, None, 0] + rel[..., 1] * unit[:, None, 1]
        perp = rel[..., 0] * unit[:, None, 1] - rel[..., 1] * unit[:, None, 0]
        ok = ((np.abs(perp).max(1) <= 20 + tol) & (along.min(1) >= -tol) &
              (along.max(1) <= length + tol))
        if not clipped:
            ok &= (along.min(1) <= tol) & (along.max(1) >= length - tol)
        fits |= ok
    fits &= iou > 0.5 - 0.01  # grid tolerance of the IoU condition
    return sw[fits], sh[fits]


def test_scribble_rule(regions):
    """Scribble along a diagonal of a box jittered by scales in [0.5, 1.2]
    with IoU > 0.5 with the GT bbox; a 1-px wide 8-connected curve."""
    unclipped = 0
    for _, ann, gt, prompts in regions:
        scribble = prompts['scribble']
        assert scribble.any(), ann['id']
        sw, sh = fit_sine_scribble(scribble, mask_to_box(gt))
        assert len(sw) > 0, f'scribble of {ann["id"]} fits no jittered box'
        # one 8-connected curve, unless it leaves the image and comes back
        _, labels = cv2.connectedComponents(scribble.astype(np.uint8),
                                            connectivity=8)
        border = np.ones_like(scribble)
        border[1:-1, 1:-1] = False
        if not (scribble & border).any():
            unclipped += 1
            assert labels.max() == 1, f'scribble of {ann["id"]} is broken'
        # 1 px wide: hardly any full 2x2 block of pixels
        full = (scribble[:-1, :-1] & scribble[1:, :-1] & scribble[:-1, 1:]
                & scribble[1:, 1:])
        assert full.sum() <= 0.05 * scribble.sum(), ann['id']
    assert unclipped >= 35


def test_box_rule(regions):
    """Filled rectangle, each side the bbox side scaled by [0.9, 1.1]
    around the bbox centre (1 px of rounding, clipped sides measured from
    the centre)."""
    measured = 0
    for entry, ann, gt, prompts in regions:
        box = prompts['box']
        rows, cols = np.nonzero(box)
        top, bottom, left, right = (rows.min(), rows.max() + 1, cols.min(),
                                    cols.max() + 1)
        assert box.sum() == (bottom - top) * (right - left), ann['id']
        x0, y0, x1, y1 = mask_to_box(gt)
        height, width = box.shape
        for lo, hi, lo_gt, hi_gt, limit in ((left, right, x0, x1, width),
                                            (top, bottom, y0, y1, height)):
            size, center = hi_gt - lo_gt, (lo_gt + hi_gt) / 2
            if lo > 0 and hi < limit:
                scale = (hi - lo) / size
                assert abs((lo + hi) / 2 - center) <= 0.5, ann['id']
            elif lo > 0:
                scale = 2 * (center - lo) / size
            elif hi < limit:
                scale = 2 * (hi - center) / size
            else:  # clipped on both sides: the box spans the image
                assert size >= limit / 1.1 - 1, ann['id']
                continue
            measured += 1
            assert 0.9 - 1 / size <= scale <= 1.1 + 1 / size, (ann['id'],
                                                                scale)
    assert measured >= 80  # of 94 sides


def test_mask_rule(regions):
    """Gaussian blur (sigma 2) of the GT, binarised at the blurred map's
    mean; compared with an independent scipy implementation."""
    large = 0
    for _, ann, gt, prompts in regions:
        prompt = prompts['mask']
        blurred = ndimage.gaussian_filter(
            gt.astype(np.float64), sigma=2, mode='mirror', truncate=4.0)
        expected = blurred > blurred.mean()
        assert (prompt == expected).mean() > 0.999, ann['id']
        # within the kernel radius (4 sigma) of the object, covering it
        near = cv2.dilate(gt.astype(np.uint8), np.ones((17, 17), np.uint8))
        assert not (prompt & ~near.astype(bool)).any(), ann['id']
        assert (prompt & gt).sum() >= 0.97 * gt.sum(), ann['id']
        if gt.sum() > 12000:  # large objects: a slightly grown GT
            large += 1
            iou = (prompt & gt).sum() / (prompt | gt).sum()
            assert iou > 0.85, (ann['id'], iou)
    assert large == 5


def test_builder_deterministic_and_seed_dependent(repo_root, built,
                                                  coco_json, image_dir,
                                                  tmp_path):
    builder = load_tool(BUILDER)
    again, other = str(tmp_path / 'again.json'), str(tmp_path / 'seed1.json')
    builder.main([coco_json, again, '--image-root', image_dir])  # seed 0
    builder.main([coco_json, other, '--seed', '1'])
    with open(again) as f:
        assert json.load(f) == built['entries']
    with open(other) as f:
        seed1 = json.load(f)
    pairs = [(a0, a1) for e0, e1 in zip(built['entries'], seed1)
             for a0, a1 in zip(e0['anns'], e1['anns'])]
    assert len(pairs) == 47
    for prompt_type in ('point', 'scribble', 'box'):
        field = PROMPT_FIELDS[prompt_type]
        differ = sum(a0[field] != a1[field] for a0, a1 in pairs)
        assert differ >= 40, (prompt_type, differ)
    # the mask prompt draws no random number
    assert all(a0[PROMPT_FIELDS['mask']] == a1[PROMPT_FIELDS['mask']]
               for a0, a1 in pairs)


def test_builder_reports_and_raises(repo_root, coco_json, tmp_path):
    builder = load_tool(BUILDER)
    with open(coco_json) as f:
        coco = json.load(f)
    coco['images'].append(
        dict(id=1, file_name='no_anns.jpg', height=20, width=30))
    entries, stats = builder.build_entries(coco, seed=0)
    assert stats['images_without_annotations'] == 1
    assert stats['crowd_annotations'] == 3
    assert 'no_anns.jpg' not in [e['image'] for e in entries]
    with pytest.raises(FileNotFoundError, match='000000142238.jpg'):
        builder.build_entries(coco, seed=0, image_root=str(tmp_path))


# ----------------------------------------------------------------------
# generator functions
# ----------------------------------------------------------------------
def test_point_fallback_when_the_disk_misses_the_object():
    mask = np.zeros((100, 100), dtype=bool)
    mask[:5, :5] = True  # two corner blobs: the disk (radius 50 around
    mask[95:, 95:] = True  # (50, 50)) does not reach them
    prompt = sample_point_prompt(mask, np.random.default_rng(0))
    rows, cols = np.nonzero(prompt)
    # the object pixel nearest to the bbox centre
    assert len(rows) == 1 and mask[rows[0], cols[0]]
    assert (rows[0], cols[0]) in ((4, 4), (95, 95))


def test_jitter_scribble_box_ranges():
    box = (10.0, 20.0, 110.0, 60.0)
    rng = np.random.default_rng(0)
    for _ in range(200):
        x0, y0, x1, y1 = jitter_scribble_box(box, rng)
        assert np.isclose((x0 + x1) / 2, 60) and np.isclose((y0 + y1) / 2, 40)
        scale_w, scale_h = (x1 - x0) / 100, (y1 - y0) / 40
        assert 0.5 <= scale_w <= 1.2 and 0.5 <= scale_h <= 1.2
        inter = min(x1 - x0, 100) * min(y1 - y0, 40)
        assert inter / ((x1 - x0) * (y1 - y0) + 4000 - inter) > 0.5


def test_sine_scribble_geometry():
    box = (20.0, 30.0, 220.0, 130.0)
    scribble = draw_sine_scribble(box, diagonal=1, amplitude=15.0,
                                  omega=2 * np.pi, phase=0.3,
                                  shape=(200, 300))
    rows, cols = np.nonzero(scribble)
    start, end = np.array([20.0, 130.0]), np.array([220.0, 30.0])
    unit = (end - start) / np.linalg.norm(end - start)
    rel = np.stack([cols + 0.5, rows + 0.5], 1) - start
    perp = rel[:, 0] * unit[1] - rel[:, 1] * unit[0]
    along = rel @ unit
    # one full period: the curve reaches +-amplitude on both sides
    assert 15 - RASTER_TOL <= perp.max() <= 15 + RASTER_TOL
    assert -15 - RASTER_TOL <= perp.min() <= -15 + RASTER_TOL
    assert along.min() >= -RASTER_TOL
    assert along.max() <= np.linalg.norm(end - start) + RASTER_TOL


def test_blur_mask_prompt_of_a_full_mask():
    mask = np.ones((8, 9), dtype=bool)
    assert blur_mask_prompt(mask).all()


# ----------------------------------------------------------------------
# dataset + pipeline
# ----------------------------------------------------------------------
def test_training_samples_are_aligned(built, image_dir):
    dataset = build_dataset(built['path'], image_dir, train_pipeline())
    assert len(dataset) == 2
    for idx, entry in enumerate(built['entries']):
        height, width = (entry['image_info']['height'],
                         entry['image_info']['width'])
        out = dataset[idx]
        sample = out['data_samples']
        h, w = out['inputs'].shape[1:]
        assert max(h, w) == IMAGE_SIZE
        assert (h, w) == tuple(sample.metainfo['img_shape'])
        assert sample.metainfo['prompt'] == dict(task='interactive')
        assert tuple(sample.metainfo['ori_shape']) == (height, width)
        types = sample.metainfo['prompt_type']
        anns = entry['anns']
        assert len(types) == len(anns) and set(types) <= set(PROMPT_TYPES)
        assert sample.prompt_masks.dtype == torch.bool
        assert tuple(sample.prompt_masks.shape) == (len(anns), h, w)
        gt = sample.gt_instances
        assert gt.labels.tolist() == list(range(len(anns)))
        # target k: the instance of annotation k, resized like the image
        expected_gt = nearest_resize(
            np.stack([decode(a['segmentation']) for a in anns]), h, w)
        assert (gt.masks.to_ndarray().astype(bool) == expected_gt).all()
        # prompt k: RLE of its type, dilated (disk r=10 point, r=5 scribble)
        # at the original size, then resized like the GT masks
        prompts = []
        for ann, prompt_type in zip(anns, types):
            prompt = decode(ann[PROMPT_FIELDS[prompt_type]])
            radius = dict(point=10, scribble=5).get(prompt_type)
            if radius:
                prompt = cv2.dilate(prompt.astype(np.uint8),
                                    disk(radius).astype(np.uint8)) > 0
            prompts.append(prompt)
        expected = nearest_resize(np.stack(prompts), h, w)
        assert (sample.prompt_masks.numpy() == expected).all()


def test_point_prompts_are_dilated_disks_of_radius_10(built, image_dir):
    dataset = build_dataset(built['path'], image_dir,
                            train_pipeline(pack=False), prompt_type='point')
    results = dataset[1]  # 30 regions
    anns = built['entries'][1]['anns']
    prompt_masks = results['prompt_masks']  # (K, 256 * 360 / 640, 256)
    assert results['prompt_type'] == ['point'] * len(anns)
    height, width = results['ori_shape']
    scale = IMAGE_SIZE / max(height, width)
    unclipped = 0
    for k, ann in enumerate(anns):
        (row, col), = np.argwhere(decode(ann[PROMPT_FIELDS['point']]))
        rows, cols = np.mgrid[:height, :width]
        expected = (rows - row)**2 + (cols - col)**2 <= 100
        resized = nearest_resize(expected[None], *prompt_masks.shape[1:])[0]
        assert (prompt_masks[k] == resized).all()
        if expected.sum() != 317:  # lattice points of a radius-10 disk
            continue  # clipped by the image border
        unclipped += 1
        # at 256 px the disk is 21 * 0.4 = 8.4 px wide around the point
        r_rows, r_cols = np.nonzero(prompt_masks[k])
        assert abs(r_rows.mean() - (row + 0.5) * scale) <= 1.0
        assert abs(r_cols.mean() - (col + 0.5) * scale) <= 1.0
        assert 7 <= r_cols.max() - r_cols.min() + 1 <= 9
        assert 40 <= len(r_rows) <= 62  # 317 * 0.4^2 = 50.7
    assert unclipped >= 25


def test_original_size_point_dilation(built, image_dir):
    pipeline = [dict(type='LoadImageFromFile'),
                dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
                dict(type='LoadVisualPrompts')]
    dataset = build_dataset(built['path'], image_dir, pipeline,
                            prompt_type='point')
    results = dataset[0]
    assert results['prompt_masks'].dtype == bool
    height, width = results['ori_shape']
    rows, cols = np.mgrid[:height, :width]
    for k, ann in enumerate(built['entries'][0]['anns']):
        (row, col), = np.argwhere(decode(ann[PROMPT_FIELDS['point']]))
        expected = (rows - row)**2 + (cols - col)**2 <= 10**2
        assert (results['prompt_masks'][k] == expected).all()


def test_random_prompt_type_per_fetch(built, image_dir):
    dataset = build_dataset(built['path'], image_dir, [])
    np.random.seed(0)
    draws = [dataset.prepare_data(1)['prompt_type'] for _ in range(3)]
    assert draws[0] != draws[1] and draws[1] != draws[2]
    assert set(sum(draws, [])) == set(PROMPT_TYPES)


def test_eval_fixed_type_with_original_size_targets(built, image_dir):
    dataset = build_dataset(built['path'], image_dir, eval_pipeline(),
                            test_mode=True, prompt_type='box')
    metric = InteractiveSegMetric()
    for idx, entry in enumerate(built['entries']):
        sample = dataset[idx]['data_samples']
        anns = entry['anns']
        assert sample.metainfo['prompt_type'] == ['box'] * len(anns)
        gt_masks = sample.metainfo['gt_masks']
        assert isinstance(gt_masks, BitmapMasks)
        assert (gt_masks.height, gt_masks.width) == tuple(
            sample.metainfo['ori_shape'])
        expected = np.stack([decode(a['segmentation']) for a in anns])
        assert (gt_masks.to_ndarray().astype(bool) == expected).all()
        boxes = np.stack([decode(a[PROMPT_FIELDS['box']]) for a in anns])
        assert (sample.prompt_masks.numpy() == nearest_resize(
            boxes, *sample.prompt_masks.shape[1:])).all()
        # what the metric reads: a perfect prediction gives 100 % IoU
        as_dict = sample.to_dict()
        as_dict['pred_instances'] = dict(masks=expected)
        metric.process({}, [as_dict])
    results = metric.compute_metrics(metric.results)
    assert results['mIoU_box'] == pytest.approx(100.0)
    assert results['num_regions'] == 47


def write_json(path, entries):
    with open(path, 'w') as f:
        json.dump(entries, f)
    return str(path)


def test_unusable_images_and_annotations(built, image_dir, tmp_path):
    entries = copy.deepcopy(built['entries'])
    first_image = entries[0]['image']
    empty = mask_utils.encode(
        np.zeros((427, 640), dtype=np.uint8, order='F'))
    empty['counts'] = empty['counts'].decode()
    entries[0]['anns'][3][PROMPT_FIELDS['box']] = empty
    empty_box_ann = entries[0]['anns'][3]['id']
    no_anns = dict(copy.deepcopy(entries[1]), image='no_anns.jpg', anns=[])
    with_both = write_json(tmp_path / 'both.json', entries + [no_anns])
    # evaluation: left out, counted and named
    dataset = build_dataset(with_both, image_dir, eval_pipeline(),
                            test_mode=True, prompt_type='box')
    assert len(dataset) == 2
    assert dataset.skipped_images == ['no_anns.jpg']
    assert dataset.skipped_annotations == [
        (first_image, empty_box_ann, 'empty box visual prompt')
    ]
    assert len(dataset[0]['data_samples'].prompt_masks) == 16
    # training: errors naming the image
    with pytest.raises(ValueError, match='no_anns.jpg'):
        build_dataset(write_json(tmp_path / 'no_anns.json', [no_anns]),
                      image_dir, [])
    with pytest.raises(ValueError,
                       match=f'{first_image}.*annotation {empty_box_ann}'):
        build_dataset(write_json(tmp_path / 'box.json', entries), image_dir,
                      [], prompt_type='box')
    # random types: an annotation without any non-empty prompt
    for field in PROMPT_FIELDS.values():
        entries[0]['anns'][3][field] = empty
    with pytest.raises(ValueError, match='no non-empty visual prompt'):
        build_dataset(write_json(tmp_path / 'all.json', entries), image_dir,
                      [])


def test_missing_image_file_is_named(built, image_dir, tmp_path):
    entry = dict(copy.deepcopy(built['entries'][0]), image='missing.jpg')
    dataset = build_dataset(
        write_json(tmp_path / 'missing.json', [entry]), image_dir,
        train_pipeline())
    with pytest.raises(FileNotFoundError, match='missing.jpg'):
        dataset[0]


# ----------------------------------------------------------------------
# transforms on hand-made results
# ----------------------------------------------------------------------
def resize_results():
    prompts = np.zeros((2, 427, 640), dtype=bool)
    prompts[0, 100:200, 100:300] = True
    prompts[1, 1, 1] = True  # nearest 640 -> 256 never samples pixel (1, 1)
    gt = BitmapMasks(prompts.astype(np.uint8), 427, 640)
    return dict(
        img_path='img.jpg', img_shape=(171, 256), prompt_masks=prompts,
        prompt_type=['box', 'point'],
        instances=[dict(bbox_label=0, ann_id=5), dict(bbox_label=1,
                                                      ann_id=6)],
        gt_masks=gt.resize((171, 256)),
        gt_bboxes_labels=np.array([0, 1]))


def test_resize_visual_prompts_vanished_prompt():
    with pytest.raises(ValueError, match=r"img.jpg.*\(1, 'point'\)"):
        ResizeVisualPrompts()(resize_results())
    results = ResizeVisualPrompts(skip_empty=True)(resize_results())
    assert results['skipped_regions'] == [1]
    assert results['prompt_masks'].shape == (1, 171, 256)
    assert results['prompt_type'] == ['box']
    assert len(results['gt_masks']) == 1
    assert results['gt_bboxes_labels'].tolist() == [0]
    assert results['instances'] == [dict(bbox_label=0, ann_id=5)]
    # the kept prompt and its target are the same region
    assert (results['prompt_masks'][0] ==
            results['gt_masks'].to_ndarray()[0].astype(bool)).all()


def test_load_visual_prompts_rejects_a_prompt_outside_the_image():
    rle = mask_utils.encode(np.ones((10, 10), dtype=np.uint8, order='F'))
    results = dict(img_path='img.jpg', ori_shape=(427, 640),
                   prompt_type=['box'],
                   instances=[dict(visual_prompts=dict(box=rle), ann_id=7)])
    with pytest.raises(ValueError, match='img.jpg region 0.*outside'):
        LoadVisualPrompts()(results)
