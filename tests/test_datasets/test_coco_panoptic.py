# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""PSALMCocoPanopticDataset + LoadPanopticSegments on the two real COCO
val2017 panoptic images (panopticapi sample)."""
import json
import os.path as osp

import mmcv
import numpy as np
import pytest
import torch
from mmengine.structures import PixelData

import projects.psalm  # noqa: F401
from mmdet.evaluation.functional import INSTANCE_OFFSET
from mmdet.registry import DATASETS
from mmdet.utils import register_all_modules
from projects.psalm.evaluation.functional import rgb2id
from projects.psalm.evaluation.metrics import PSALMPanopticMetric

SIZE = 256


def _root(data_root):
    return osp.join(data_root, 'coco_panoptic_sample')


def _build(data_root, task='panoptic', resize=True, **kwargs):
    register_all_modules()
    root = _root(data_root)
    pipeline = [dict(type='LoadImageFromFile')]
    if not kwargs.get('test_mode'):
        pipeline.append(dict(type='LoadPanopticSegments'))
    if resize:
        pipeline.append(dict(type='Resize', scale=(SIZE, SIZE),
                             keep_ratio=True))
    pipeline.append(dict(type='PackPSALMInputs'))
    return DATASETS.build(
        dict(
            type='PSALMCocoPanopticDataset',
            task=task,
            ann_file=osp.join(root, 'panoptic_examples.json'),
            data_prefix=dict(
                img=osp.join(root, 'input_images/'),
                seg=osp.join(root, 'panoptic_examples/')),
            pipeline=pipeline,
            **kwargs))


@pytest.fixture(scope='module')
def gt(data_root):
    """The json, and per image its PNG id map and segments."""
    root = _root(data_root)
    with open(osp.join(root, 'panoptic_examples.json')) as f:
        coco = json.load(f)
    images = {}
    for ann in coco['annotations']:
        png = mmcv.imread(
            osp.join(root, 'panoptic_examples', ann['file_name']),
            channel_order='rgb')
        images[ann['image_id']] = dict(
            pan=rgb2id(png), segments=ann['segments_info'])
    return coco, images


def _resize(mask, shape):
    return mmcv.imresize(mask.astype(np.uint8), shape[::-1],
                         interpolation='nearest')


def test_classes_from_json(data_root, gt):
    coco, _ = gt
    cats = coco['categories']
    ds = _build(data_root)
    assert len(ds) == 2
    assert ds.metainfo['classes'] == tuple(c['name'] for c in cats)
    assert len(ds.metainfo['classes']) == 133
    assert len(ds.metainfo['thing_classes']) == 80
    assert len(ds.metainfo['stuff_classes']) == 53
    assert ds.metainfo['is_thing'] == [bool(c['isthing']) for c in cats]
    info = ds.get_data_info(0)
    assert info['prompt'] == dict(task='panoptic',
                                  class_names=[c['name'] for c in cats])
    assert 'background' not in info['prompt']['class_names']
    assert info['is_thing'] == ds.metainfo['is_thing']


def test_panoptic_targets_equal_png_segments(data_root, gt):
    coco, images = gt
    cat2label = {c['id']: i for i, c in enumerate(coco['categories'])}
    ds = _build(data_root)
    counts = {}
    for idx in range(len(ds)):
        out = ds[idx]
        sample = out['data_samples']
        img_id = sample.metainfo['img_id']
        segments = images[img_id]['segments']
        non_crowd = [s for s in segments if not s['iscrowd']]
        counts[img_id] = (len(segments), len(non_crowd))
        h, w = sample.metainfo['img_shape']
        assert max(h, w) == SIZE and out['inputs'].shape == (3, h, w)
        assert out['inputs'].dtype == torch.uint8
        masks = sample.gt_instances.masks.masks
        assert masks.shape == (len(non_crowd), h, w)
        assert sample.gt_instances.labels.tolist() == [
            cat2label[s['category_id']] for s in non_crowd
        ]
        pan = images[img_id]['pan']
        for mask, segment in zip(masks, non_crowd):
            expected = _resize(pan == segment['id'], (h, w))
            assert np.array_equal(mask, expected), segment['id']
        # prompt / is_thing / what the panoptic metric needs
        assert sample.metainfo['prompt']['task'] == 'panoptic'
        assert len(sample.metainfo['prompt']['class_names']) == 133
        assert sum(sample.metainfo['is_thing']) == 80
        assert sample.metainfo['seg_map_path'].endswith(
            f'{img_id:012d}.png')
        assert [s['id'] for s in sample.metainfo['segments_info']
                ] == [s['id'] for s in segments]
    # numbers read from panoptic_examples.json: (segments, non-crowd)
    assert counts == {142238: (18, 17), 439180: (32, 30)}


def test_crowd_segments_are_not_targets(data_root, gt):
    _, images = gt
    ds = _build(data_root, resize=False)
    for idx in range(len(ds)):
        sample = ds[idx]['data_samples']
        img_id = sample.metainfo['img_id']
        pan = images[img_id]['pan']
        crowd = [s for s in images[img_id]['segments'] if s['iscrowd']]
        assert crowd, 'both images have crowd segments'
        union = sample.gt_instances.masks.masks.any(0)
        for segment in crowd:
            region = pan == segment['id']
            assert region.sum() > 0 and not (union & region).any()
        flags = {s['id']: s['iscrowd']
                 for s in sample.metainfo['segments_info']}
        assert sum(flags.values()) == len(crowd)


def test_instance_and_semantic_variants(data_root, gt):
    coco, images = gt
    thing_cats = [c for c in coco['categories'] if c['isthing']]
    thing_ids = {c['id'] for c in thing_cats}
    ds = _build(data_root, task='instance')
    assert ds.metainfo['classes'] == tuple(c['name'] for c in thing_cats)
    sample = ds[1]['data_samples']
    segments = images[sample.metainfo['img_id']]['segments']
    things = [s for s in segments
              if s['category_id'] in thing_ids and not s['iscrowd']]
    assert len(sample.gt_instances) == len(things) == 26
    assert sample.metainfo['prompt']['task'] == 'instance'
    assert len(sample.metainfo['prompt']['class_names']) == 80

    ds = _build(data_root, task='semantic', resize=False)
    cat2label = {c['id']: i for i, c in enumerate(coco['categories'])}
    sample = ds[1]['data_samples']
    pan = images[sample.metainfo['img_id']]['pan']
    non_crowd = [s for s in segments if not s['iscrowd']]
    labels = list(dict.fromkeys(cat2label[s['category_id']]
                                for s in non_crowd))
    assert sample.gt_instances.labels.tolist() == labels
    for mask, label in zip(sample.gt_instances.masks.masks, labels):
        expected = np.any([pan == s['id'] for s in non_crowd
                           if cat2label[s['category_id']] == label], axis=0)
        assert np.array_equal(mask.astype(bool), expected)


def test_metainfo_feeds_the_panoptic_metric(data_root, gt):
    """GT-as-prediction through PSALMPanopticMetric gives PQ = 100."""
    _, images = gt
    ds = _build(data_root, test_mode=True)
    metric = PSALMPanopticMetric(
        seg_prefix=osp.join(_root(data_root), 'panoptic_examples'))
    metric.dataset_meta = ds.metainfo
    num_classes = len(ds.metainfo['classes'])
    for idx in range(len(ds)):
        sample = ds[idx]['data_samples']
        assert 'gt_instances' not in sample
        pan = images[sample.metainfo['img_id']]['pan']
        pred = np.full(pan.shape, num_classes, dtype=np.int64)  # VOID
        for k, segment in enumerate(sample.metainfo['segments_info']):
            if not segment['iscrowd']:
                pred[pan == segment['id']] = (
                    segment['category'] + (k + 1) * INSTANCE_OFFSET)
        sample.pred_panoptic_seg = PixelData(
            sem_seg=torch.from_numpy(pred)[None])
        metric.process({}, [sample.to_dict()])
    results = metric.evaluate(len(ds))
    assert results['coco_panoptic/PQ'] == pytest.approx(100.0)


def test_wrong_classes_raise(data_root):
    with pytest.raises(ValueError, match='metainfo classes differ'):
        _build(data_root, metainfo=dict(classes=('person', 'car')))
    with pytest.raises(ValueError, match='task must be one of'):
        _build(data_root, task='referring')
