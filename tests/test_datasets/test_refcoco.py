# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""RefCOCO / gRefCOCO datasets on the refcoco_sample fixture (refs pointing
at real COCO val2017 anns), from both source formats."""
import json
import os.path as osp
import pickle
import random

import mmcv
import numpy as np
import pycocotools.mask as mask_utils
import pytest

import projects.psalm  # noqa: F401
from mmdet.registry import DATASETS
from mmdet.utils import register_all_modules
from projects.psalm.datasets import PSALM_META_KEYS

SIZE = 256
TRAIN_PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=False, with_mask=True),
    dict(type='Resize', scale=(SIZE, SIZE), keep_ratio=True),
    dict(type='PackPSALMInputs')
]
TEST_PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(SIZE, SIZE), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=False, with_mask=True),
    dict(type='PackPSALMInputs', meta_keys=PSALM_META_KEYS + ('gt_masks', ))
]


def _build(data_root, source, gref=False, **kwargs):
    """``source``: 'refer' (toolkit files) or 'psalm' (official json)."""
    register_all_modules()
    root = osp.join(data_root, 'refcoco_sample')
    if source == 'refer':
        files = dict(
            ann_file=osp.join(root, 'instances.json'),
            split_file=osp.join(
                root, 'grefs(unc).json' if gref else 'refs(unc).p'))
    else:
        split = kwargs.pop('split', 'train')
        name = 'grefcoco' if gref else 'refcoco'
        files = dict(ann_file=osp.join(root, f'{name}_{split}_psalm.json'))
    # many small builds: skip serialisation (its gc.collect costs ~0.5 s)
    kwargs.setdefault('serialize_data', False)
    kwargs.setdefault(
        'pipeline', TEST_PIPELINE if kwargs.get('test_mode') else
        TRAIN_PIPELINE)
    return DATASETS.build(
        dict(
            type='PSALMGRefCocoDataset' if gref else 'PSALMRefCocoDataset',
            data_prefix=dict(img_path=osp.join(
                data_root, 'coco_panoptic_sample', 'input_images/')),
            **files,
            **kwargs))


@pytest.fixture(scope='module')
def real_masks(data_root):
    """ann id -> decoded RLE of the ORIGINAL panopticapi json."""
    path = osp.join(data_root, 'coco_panoptic_sample',
                    'panoptic_coco_detection_format.json')
    with open(path) as f:
        anns = json.load(f)['annotations']
    return {ann['id']: mask_utils.decode(ann['segmentation']) for ann in anns}


@pytest.fixture(scope='module')
def refs(data_root):
    with open(osp.join(data_root, 'refcoco_sample', 'refs(unc).p'),
              'rb') as f:
        return pickle.load(f)


@pytest.mark.parametrize('source', ['refer', 'psalm'])
def test_protocol_counts(data_root, source):
    # fixture: train 5 refs / 13 expressions, val 3 refs / 7 expressions
    counts = {}
    for split in ('train', 'val'):
        for protocol in ('per_expression', 'merged'):
            ds = _build(data_root, source, split=split, protocol=protocol,
                        test_mode=True)
            counts[split, protocol] = len(ds)
            for idx in range(len(ds)):
                info = ds.get_data_info(idx)
                sentences = info['prompt']['sentences']
                assert info['prompt']['task'] == 'referring'
                if protocol == 'per_expression':
                    assert len(sentences) == 1
                else:
                    assert sentences == info['texts'] and len(sentences) >= 2
        counts[split, 'random'] = len(_build(data_root, source, split=split))
    assert counts == {
        ('train', 'per_expression'): 13,
        ('train', 'merged'): 5,
        ('train', 'random'): 5,
        ('val', 'per_expression'): 7,
        ('val', 'merged'): 3,
        ('val', 'random'): 3
    }
    if source == 'refer':
        assert len(_build(data_root, source, split='testA')) == 1


def test_sources_agree(data_root):
    refer = _build(data_root, 'refer', split='val', protocol='merged',
                   test_mode=True)
    psalm = _build(data_root, 'psalm', split='val', protocol='merged',
                   test_mode=True)
    for idx in range(len(refer)):
        a, b = refer.get_data_info(idx), psalm.get_data_info(idx)
        for key in ('img_path', 'img_id', 'height', 'width', 'ann_ids',
                    'texts', 'instances'):
            assert a[key] == b[key], key


def test_new_expression_every_fetch(data_root, refs):
    random.seed(0)
    ds = _build(data_root, 'refer')
    idx = [ds.get_data_info(i)['ref_id'] for i in range(len(ds))].index(0)
    candidates = {s['sent'] for s in refs[0]['sentences']}
    assert len(candidates) == 3
    drawn = []
    for _ in range(30):
        sample = ds[idx]['data_samples']
        (sentence, ) = sample.metainfo['prompt']['sentences']
        drawn.append(sentence)
    assert set(drawn) <= candidates
    assert len(set(drawn)) >= 2  # P(one sentence 30 times) = 3 ** -29
    # the stored data info is not modified by the draws
    assert set(ds.get_data_info(idx)['texts']) == candidates
    with pytest.raises(ValueError, match="protocol 'random'"):
        _build(data_root, 'refer', protocol='random', test_mode=True)


def test_text_key(data_root, refs):
    ds = _build(data_root, 'refer', text_key='raw', protocol='merged')
    by_ref = {r['ref_id']: r for r in refs}
    for idx in range(len(ds)):
        info = ds.get_data_info(idx)
        assert info['prompt']['sentences'] == [
            s['raw'] for s in by_ref[info['ref_id']]['sentences']
        ]


@pytest.mark.parametrize('source', ['refer', 'psalm'])
def test_masks_equal_real_anns(data_root, real_masks, source):
    # evaluation GT: original size, one mask per expression
    ds = _build(data_root, source, split='val', test_mode=True)
    for idx in range(len(ds)):
        sample = ds[idx]['data_samples']
        (ann_id, ) = ds.get_data_info(idx)['ann_ids']
        gt = sample.metainfo['gt_masks']
        assert gt.masks.shape == (1, ) + sample.metainfo['ori_shape']
        assert np.array_equal(gt.masks[0], real_masks[ann_id])
        assert 'gt_instances' not in sample
    # training targets: the same masks, resized with the image
    ds = _build(data_root, source, split='train')
    for idx in range(len(ds)):
        sample = ds[idx]['data_samples']
        (ann_id, ) = ds.get_data_info(idx)['ann_ids']
        h, w = sample.metainfo['img_shape']
        assert max(h, w) == SIZE
        expected = mmcv.imresize(real_masks[ann_id], (w, h),
                                 interpolation='nearest')
        assert np.array_equal(sample.gt_instances.masks.masks[0], expected)
        assert sample.gt_instances.labels.tolist() == [0]


@pytest.mark.parametrize('source', ['refer', 'psalm'])
def test_grefcoco_targets(data_root, real_masks, source):
    # val: [5, 2] (2 expressions), [-1] (2), [38] (1)
    ds = _build(data_root, source, gref=True, split='val', test_mode=True)
    assert len(ds) == 5
    kinds = []
    for idx in range(len(ds)):
        info = ds.get_data_info(idx)
        sample = ds[idx]['data_samples']
        assert sample.metainfo['prompt']['task'] == 'gres'
        gt = sample.metainfo['gt_masks'].masks
        assert gt.shape == (1, ) + sample.metainfo['ori_shape']
        expected = np.zeros(gt.shape[1:], dtype=bool)
        for ann_id in info['ann_ids']:
            expected |= real_masks[ann_id].astype(bool)
        assert np.array_equal(gt[0].astype(bool), expected)
        kinds.append(len(info['ann_ids']))
    assert kinds == [2, 2, 0, 0, 1]
    assert gt.sum() == real_masks[38].sum() > 0

    # training: one target per ann, none for no-target refs
    ds = _build(data_root, source, gref=True, protocol='merged')
    targets = []
    for idx in range(len(ds)):
        info = ds.get_data_info(idx)
        instances = ds[idx]['data_samples'].gt_instances
        h, w = instances.masks.height, instances.masks.width
        assert instances.masks.masks.shape == (len(info['ann_ids']), h, w)
        assert instances.labels.tolist() == [0] * len(info['ann_ids'])
        for mask, ann_id in zip(instances.masks.masks, info['ann_ids']):
            assert np.array_equal(
                mask,
                mmcv.imresize(real_masks[ann_id], (w, h),
                              interpolation='nearest'))
        targets.append(info['ann_ids'])
    assert targets == [[14], [32, 33], []]


def test_grefcoco_bad_refs_raise(data_root, tmp_path):
    root = osp.join(data_root, 'refcoco_sample')
    with open(osp.join(root, 'grefs(unc).json')) as f:
        grefs = json.load(f)

    def build(ref):
        path = tmp_path / 'grefs.json'
        path.write_text(json.dumps([ref]))
        return DATASETS.build(
            dict(
                type='PSALMGRefCocoDataset',
                ann_file=osp.join(root, 'instances.json'),
                split_file=str(path),
                split=ref['split']))

    register_all_modules()
    with pytest.raises(ValueError, match='mixes -1'):
        build(dict(grefs[1], ann_id=[-1, 32], no_target=False))
    with pytest.raises(ValueError, match='contradicts'):
        build(dict(grefs[1], no_target=True))
    with pytest.raises(ValueError, match='ann 123456 is not in'):
        build(dict(grefs[1], ann_id=[123456]))


def test_refcoco_bad_inputs_raise(data_root, tmp_path, refs):
    root = osp.join(data_root, 'refcoco_sample')
    register_all_modules()
    pickle_path = tmp_path / 'refs.p'
    pickle_path.write_bytes(pickle.dumps([dict(refs[0], ann_id=123456)]))
    with pytest.raises(ValueError, match='ann 123456 is not in'):
        DATASETS.build(
            dict(
                type='PSALMRefCocoDataset',
                ann_file=osp.join(root, 'instances.json'),
                split_file=str(pickle_path)))
    with open(osp.join(root, 'refcoco_train_psalm.json')) as f:
        entry = json.load(f)[0]
    for bad, match in [(dict(entry, anns=[]), 'needs a target ann'),
                       (dict(entry, instruction=[]), 'no expression'),
                       ({k: v for k, v in entry.items() if k != 'anns'},
                        "missing 'anns'")]:
        path = tmp_path / 'psalm.json'
        path.write_text(json.dumps([bad]))
        with pytest.raises(ValueError, match=match):
            DATASETS.build(
                dict(type='PSALMRefCocoDataset', ann_file=str(path)))
    with pytest.raises(ValueError, match='protocol must be one of'):
        _build(data_root, 'refer', protocol='concat')
