# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""ShapesWorld generator: determinism, text semantics (re-checked against
the annotations with an independent evaluator), masks, videos, QA answers,
and the real loaders / pipelines / metrics of the real configs on a small
generated tree."""
import hashlib
import json
import os
import os.path as osp
import pickle

import numpy as np
import pytest
import torch
from mmdet.registry import DATASETS, METRICS
from mmdet.structures import DetDataSample
from mmdet.utils import register_all_modules
from mmengine.config import Config
from mmengine.evaluator import Evaluator
from mmengine.structures import InstanceData, PixelData
from PIL import Image
from psalm_testing import load_tool
from pycocotools import mask as mask_utils

import projects.psalm  # noqa: F401
from projects.psalm.datasets.shapesworld import (COLOURS, THING_CLASSES,
                                                 caption, evaluate_predicate,
                                                 generate_shapesworld,
                                                 make_predicate, qa_pairs)
from projects.psalm.evaluation.functional.panoptic_quality import rgb2id

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
CONFIGS = osp.join(REPO, 'configs', '_base_', 'datasets')
NUM_TRAIN, NUM_VAL, NUM_VIDEOS = 12, 6, 2
LOCATION_SUPERLATIVES = ('leftmost', 'rightmost', 'topmost', 'bottommost')


@pytest.fixture(scope='module')
def tree(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('shapesworld') / 'data')
    result = generate_shapesworld(root, NUM_TRAIN, NUM_VAL, NUM_VIDEOS,
                                  seed=0)
    return result


def load_json(*parts):
    with open(osp.join(*parts)) as f:
        return json.load(f)


def objects_by_image(instances: dict) -> dict:
    """image id -> objects (``id`` + the stored attributes)."""
    objects = {image['id']: [] for image in instances['images']}
    for ann in instances['annotations']:
        objects[ann['image_id']].append(dict(id=ann['id'],
                                             **ann['shapesworld']))
    return objects


def independent_eval(pred: dict, objects: list) -> list:
    """A second implementation of the predicate semantics
    (projects/psalm/datasets/shapesworld/predicates.py docstring)."""

    def match(obj, flt):
        return all(flt[k] in (None, obj[k])
                   for k in ('shape', 'colour', 'size'))

    found = [o for o in objects if match(o, pred)]
    if pred['relation']:
        landmarks = [o for o in objects if match(o, pred['landmark'])]
        if len(landmarks) != 1:
            return []
        (lx, ly, lw, lh), lid = landmarks[0]['bbox'], landmarks[0]['id']
        test = {
            'left of': lambda o: o['centroid'][0] < lx,
            'right of': lambda o: o['centroid'][0] > lx + lw,
            'above': lambda o: o['centroid'][1] < ly,
            'below': lambda o: o['centroid'][1] > ly + lh,
        }[pred['relation']]
        found = [o for o in found if o['id'] != lid and test(o)]
    if pred['superlative'] and found:
        sup, margin = pred['superlative'], pred['margin']
        if sup in ('largest', 'smallest'):
            areas = [o['shape_area'] for o in found]
            if sup == 'largest':
                found = [o for o in found
                         if o['shape_area'] * margin >= max(areas)]
            else:
                found = [o for o in found
                         if o['shape_area'] <= min(areas) * margin]
        else:
            axis = 0 if sup in ('leftmost', 'rightmost') else 1
            values = [o['centroid'][axis] for o in found]
            best = min(values) if sup in ('leftmost', 'topmost') else max(
                values)
            found = [o for o in found
                     if abs(o['centroid'][axis] - best) <= margin]
    ids = sorted(o['id'] for o in found)
    if pred['count'] is not None and len(ids) != pred['count']:
        return []
    return ids


def file_hashes(root: str) -> dict:
    hashes = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = osp.join(folder, name)
            with open(path, 'rb') as f:
                hashes[osp.relpath(path, root)] = hashlib.sha1(
                    f.read()).hexdigest()
    return hashes


# ----------------------------------------------------------------------
# determinism and arguments
# ----------------------------------------------------------------------
def test_same_seed_same_bytes_other_seed_other_images(tree, tmp_path):
    first = file_hashes(tree['root'])
    assert len(first) > 4 * (NUM_TRAIN + NUM_VAL)
    again = generate_shapesworld(str(tmp_path / 'again'), NUM_TRAIN, NUM_VAL,
                                 NUM_VIDEOS, seed=0)
    assert file_hashes(again['root']) == first
    other = generate_shapesworld(str(tmp_path / 'other'), NUM_TRAIN, NUM_VAL,
                                 NUM_VIDEOS, seed=1)
    other_hashes = file_hashes(other['root'])
    images = [p for p in first if p.startswith('coco/train2017/')]
    assert images and all(first[p] != other_hashes[p] for p in images)


def test_val_does_not_depend_on_num_train(tree, tmp_path):
    fewer = generate_shapesworld(str(tmp_path / 'fewer'), 3, NUM_VAL, 0,
                                 seed=0)
    ref, new = file_hashes(tree['root']), file_hashes(fewer['root'])
    val = [p for p in ref if p.startswith(('coco/val2017/',
                                           'coco/annotations/panoptic_val'))]
    assert len(val) == 2 * NUM_VAL + 1
    assert all(ref[p] == new[p] for p in val)
    # train images and val images are different scenes
    train = {ref[p] for p in ref if p.startswith('coco/train2017/')}
    assert not train & {ref[p] for p in ref if p.startswith('coco/val2017/')}


def test_bad_arguments(tree, tmp_path):
    with pytest.raises(ValueError, match='num_train'):
        generate_shapesworld(str(tmp_path / 'x'), 0, 1, 0)
    with pytest.raises(ValueError, match='seed'):
        generate_shapesworld(str(tmp_path / 'x'), 1, 1, 0, seed=-1)
    with pytest.raises(FileExistsError, match='overwrite'):
        generate_shapesworld(tree['root'], 1, 1, 0)


def test_cli_prints_counts(tmp_path, capsys):
    cli = load_tool('tools/dataset_converters/generate_shapesworld.py')
    out = str(tmp_path / 'cli')
    result = cli.main([out, '--num-train', '2', '--num-val', '1',
                       '--num-videos', '1', '--seed', '3'])
    printed = capsys.readouterr().out
    assert 'images' in printed and 'refcoco' in printed
    assert result['counts']['train']['images'] == 2
    assert result['counts']['davis'] == dict(videos=1, frames=result[
        'counts']['davis']['frames'], train=0, val=1)
    assert len(os.listdir(osp.join(out, 'coco', 'train2017'))) == 2


# ----------------------------------------------------------------------
# annotations
# ----------------------------------------------------------------------
def test_jpeg_images(tree):
    path = osp.join(tree['coco'], 'train2017', '000000000001.jpg')
    with open(path, 'rb') as f:
        assert f.read(3) == b'\xff\xd8\xff'  # a real JPEG
    with Image.open(path) as image:
        assert image.format == 'JPEG' and image.size == (256, 256)


@pytest.mark.parametrize('split', ['train', 'val'])
def test_panoptic_equals_instances_and_covers_image(tree, split):
    ann_dir = osp.join(tree['coco'], 'annotations')
    panoptic = load_json(ann_dir, f'panoptic_{split}2017.json')
    instances = load_json(ann_dir, f'instances_{split}2017.json')
    categories = {c['id']: c for c in panoptic['categories']}
    # same thing category ids and names in both jsons, things first
    assert [(c['id'], c['name']) for c in instances['categories']] == [
        (c['id'], c['name']) for c in panoptic['categories'] if c['isthing']
    ]
    assert [c['isthing'] for c in panoptic['categories']] == sorted(
        [c['isthing'] for c in panoptic['categories']], reverse=True)
    anns = {a['id']: a for a in instances['annotations']}
    assert min(anns) >= 1
    assert len(panoptic['images']) == (NUM_TRAIN
                                       if split == 'train' else NUM_VAL)
    for image_ann in panoptic['annotations']:
        ids = rgb2id(np.array(Image.open(
            osp.join(ann_dir, f'panoptic_{split}2017',
                     image_ann['file_name']))))
        segments = image_ann['segments_info']
        # every pixel in exactly one segment (no VOID, no overlap)
        assert sorted(np.unique(ids).tolist()) == sorted(
            s['id'] for s in segments)
        things = [s for s in segments if categories[s['category_id']]
                  ['isthing']]
        assert len(things) >= 3
        assert len(segments) - len(things) in (2, 3)
        for segment in segments:
            mask = ids == segment['id']
            assert segment['area'] == mask.sum() and segment['iscrowd'] == 0
            if segment in things:
                ann = anns[segment['id']]
                assert ann['image_id'] == image_ann['image_id']
                assert ann['category_id'] == segment['category_id']
                assert np.array_equal(
                    mask_utils.decode(ann['segmentation']).astype(bool),
                    mask)
                attrs = ann['shapesworld']
                assert THING_CLASSES[ann['category_id'] - 1] == attrs[
                    'shape']
                assert attrs['area'] == ann['area'] == mask.sum()
                # every object clearly visible
                assert attrs['area'] >= 0.4 * attrs['shape_area']
                assert attrs['area'] >= 80
                assert attrs['bbox'] == ann['bbox'] == segment['bbox']
        # every thing of the image is a panoptic segment
        assert {a['id'] for a in anns.values()
                if a['image_id'] == image_ann['image_id']} == {
                    s['id'] for s in things}


# ----------------------------------------------------------------------
# text semantics
# ----------------------------------------------------------------------
@pytest.mark.parametrize('name,refs_file', [('refcoco', 'refs(unc).p'),
                                            ('refcoco+', 'refs(unc).p'),
                                            ('refcocog', 'refs(umd).p')])
def test_referring_expressions_name_their_target_alone(
        tree, name, refs_file):
    objects = objects_by_image(
        load_json(tree['coco'], name, 'instances.json'))
    with open(osp.join(tree['coco'], name, refs_file), 'rb') as f:
        refs = pickle.load(f)
    kinds = set()
    train_images = {r['image_id'] for r in refs if r['split'] == 'train'}
    val_images = {r['image_id'] for r in refs if r['split'] == 'val'}
    assert len(train_images) == NUM_TRAIN and len(val_images) == NUM_VAL
    sent_ids = [s['sent_id'] for r in refs for s in r['sentences']]
    assert len(set(sent_ids)) == len(sent_ids)
    assert len({r['ref_id'] for r in refs}) == len(refs)
    for ref in refs:
        assert len(ref['shapesworld']) == len(ref['sentences']) >= 1
        assert ref['sent_ids'] == [s['sent_id'] for s in ref['sentences']]
        image_objects = objects[ref['image_id']]
        for sentence, predicate in zip(ref['sentences'],
                                       ref['shapesworld']):
            assert independent_eval(predicate, image_objects) == [
                ref['ann_id']
            ], sentence['raw']
            assert evaluate_predicate(predicate,
                                      image_objects) == [ref['ann_id']]
            assert sentence['tokens'] == sentence['sent'].split()
            assert sentence['sent'] == sentence['raw'].lower()
            kinds.add('relation' if predicate['relation'] else
                      'superlative' if predicate['superlative'] else
                      'attribute')
            if name == 'refcoco+':  # no location words
                assert predicate['relation'] is None
                assert predicate['superlative'] not in LOCATION_SUPERLATIVES
            if name == 'refcocog':  # all three attributes spelt out
                target = [o for o in image_objects
                          if o['id'] == ref['ann_id']][0]
                for key in ('size', 'colour', 'shape'):
                    assert predicate[key] == target[key]
                    assert target[key] in sentence['sent']
    expected = {'attribute', 'superlative'}
    if name != 'refcoco+':
        expected.add('relation')
    assert kinds == expected


def test_gref_expressions_match_all_and_only_their_targets(tree):
    objects = objects_by_image(
        load_json(tree['coco'], 'grefcoco', 'instances.json'))
    refs = load_json(tree['coco'], 'grefcoco', 'grefs(unc).json')
    kinds = {'single': 0, 'multi': 0, 'none': 0}
    for ref in refs:
        targets = [] if ref['ann_id'] == [-1] else ref['ann_id']
        assert ref['no_target'] == (not targets)
        assert len(ref['category_id']) == len(targets)
        kinds['none' if not targets else 'single' if len(targets) == 1
              else 'multi'] += 1
        for sentence, predicate in zip(ref['sentences'],
                                       ref['shapesworld']):
            assert sentence['ref_id'] == ref['ref_id']
            assert independent_eval(
                predicate, objects[ref['image_id']]) == sorted(targets), \
                sentence['raw']
    assert all(kinds.values()), kinds
    # a no-target ref per image, e.g. "the purple star" with none there
    assert kinds['none'] == NUM_TRAIN + NUM_VAL


def test_qa_answers_are_right_for_the_generated_data(tree):
    objects = objects_by_image(
        load_json(tree['coco'], 'annotations', 'instances_train2017.json'))
    objects.update(objects_by_image(
        load_json(tree['coco'], 'annotations', 'instances_val2017.json')))
    records = load_json(tree['llava'],
                        'llava_v1_5_mix665k_onlyMM_filtered.json')
    pairs = []
    for record in records:
        image_id = int(record['id'].split('_')[0])
        if record['id'].endswith('_caption'):
            continue
        turns = record['conversations']
        for k, pair in enumerate(record['shapesworld']):
            assert turns[2 * k]['value'].endswith(
                pair['question'] +
                '\nAnswer the question using a single word or phrase.')
            assert turns[2 * k + 1]['value'] == pair['answer']
            pairs.append((image_id, pair))
    for question in load_json(tree['vqa'], 'vqa', 'vqav2_val.json'):
        assert question['question'] == question['shapesworld']['question']
        assert question['answer'] == question['shapesworld']['answer']
        pairs.append((question['image_id'], question['shapesworld']))
    answers = {}
    for image_id, pair in pairs:
        image_objects = objects[image_id]
        answers.setdefault(pair['kind'], []).append(pair['answer'])
        if pair['kind'] == 'stuff':
            continue
        matches = independent_eval(pair['predicate'], image_objects)
        if pair['kind'] == 'count':
            assert pair['answer'] == str(len(matches)), pair
        elif pair['kind'] == 'exist':
            assert pair['answer'] == ('yes' if matches else 'no'), pair
        else:
            assert len(matches) == 1, pair
            target = [o for o in image_objects if o['id'] == matches[0]][0]
            assert pair['answer'] == target[pair['kind']], pair
    assert {'yes', 'no'} <= set(answers['exist'])
    assert len(set(answers['count'])) >= 2


def make_objects(*specs):
    """Handcrafted objects: (shape, colour, size, x, y, shape_area)."""
    objects = []
    for i, (shape, colour, size, x, y, area) in enumerate(specs):
        objects.append(
            dict(id=i + 1, shape=shape, colour=colour, size=size,
                 shape_area=area, area=area, centroid=[x, y],
                 bbox=[x - 10, y - 10, 20, 20], z=i))
    return objects


def test_qa_on_a_handcrafted_scene():
    objects = make_objects(('square', 'red', 'small', 30, 40, 300),
                           ('square', 'red', 'large', 200, 60, 2500),
                           ('star', 'blue', 'medium', 120, 200, 1200),
                           ('circle', 'red', 'medium', 60, 150, 1100))
    stuff = ['sky', 'grass']
    seen = set()
    for seed in range(60):
        for pair in qa_pairs(objects, stuff, np.random.default_rng(seed),
                             256, num=6):
            seen.add(pair['kind'])
            q, a = pair['question'], pair['answer']
            if q == 'How many red squares are there?':
                assert a == '2'
            if q == 'How many squares are there?':
                assert a == '2'
            if q == 'How many red shapes are there?':
                assert a == '3'
            if q == 'How many shapes are there?':
                assert a == '4'
            if q == 'What colour is the star?':
                assert a == 'blue'
            if q == 'What shape is the blue object?':
                assert a == 'star'
            if q == 'What shape is the largest object?':
                assert a == 'square'
            if q == 'What size is the blue star?':
                assert a == 'medium'
            if q == 'What is at the bottom of the image?':
                assert a == 'grass'
            if q.startswith('Is there a '):
                phrase = q[len('Is there a '):-1].split()
                colour_or_size, shape = phrase
                present = any(
                    o['shape'] == shape and colour_or_size in (o['colour'],
                                                               o['size'])
                    for o in objects)
                assert a == ('yes' if present else 'no'), q
            if q.startswith('How many') and pair['predicate']:
                assert a == str(
                    len(independent_eval(pair['predicate'], objects)))
    # "What colour is the square?" is never asked: two squares
    assert seen == {'count', 'exist', 'colour', 'shape', 'size', 'stuff'}


def test_caption_of_a_handcrafted_scene():
    objects = make_objects(('circle', 'red', 'small', 30, 40, 300),
                           ('star', 'blue', 'medium', 120, 200, 1200),
                           ('circle', 'red', 'large', 200, 60, 2500))
    for seed in range(5):
        text, groups = caption(objects, ['sky', 'grass'],
                               np.random.default_rng(seed))
        assert text in ('Two red circles and a blue star on grass under the '
                        'sky.', 'Two red circles and a blue star on grass, '
                        'below a blue sky.')
        assert groups == [['red', 'circle', 2], ['blue', 'star', 1]]


def test_predicates_on_a_handcrafted_scene():
    objects = make_objects(('circle', 'red', 'small', 30, 40, 300),
                           ('circle', 'red', 'large', 200, 60, 2500),
                           ('star', 'blue', 'medium', 120, 200, 1200))
    assert evaluate_predicate(make_predicate(shape='circle'),
                              objects) == [1, 2]
    assert evaluate_predicate(
        make_predicate(shape='circle', superlative='largest', margin=1.25),
        objects) == [2]
    assert evaluate_predicate(
        make_predicate(shape='circle', relation='left of',
                       landmark=dict(shape='star')), objects) == [1]
    assert evaluate_predicate(make_predicate(shape='circle', count=2),
                              objects) == [1, 2]
    assert evaluate_predicate(make_predicate(shape='circle', count=3),
                              objects) == []
    assert evaluate_predicate(
        make_predicate(colour='purple', shape='star'), objects) == []
    with pytest.raises(ValueError, match='landmark'):
        make_predicate(relation='above')
    with pytest.raises(ValueError, match='unknown superlative'):
        make_predicate(superlative='nicest', margin=1)
    assert set(COLOURS) >= {'red', 'blue'}


# ----------------------------------------------------------------------
# videos
# ----------------------------------------------------------------------
def test_davis_videos_one_late_object_smooth_motion(tree):
    davis = tree['davis']
    videos = sorted(os.listdir(osp.join(davis, 'JPEGImages', '480p')))
    assert len(videos) == NUM_VIDEOS
    listed = []
    for split in ('train', 'val'):
        with open(osp.join(davis, 'ImageSets', '2017', f'{split}.txt')) as f:
            listed += f.read().split()
    assert sorted(listed) == videos
    for video in videos:
        frames = sorted(os.listdir(osp.join(davis, 'JPEGImages', '480p',
                                            video)))
        assert 10 <= len(frames) <= 16
        assert frames[0] == '00000.jpg'
        masks = []
        for frame in frames:
            with Image.open(osp.join(davis, 'Annotations', '480p', video,
                                     frame.replace('.jpg', '.png'))) as im:
                assert im.mode == 'P'
                masks.append(np.array(im))
        ids = sorted(set(np.unique(np.stack(masks)).tolist()) - {0})
        assert ids == list(range(1, len(ids) + 1))
        first = {i: min(t for t, m in enumerate(masks) if (m == i).any())
                 for i in ids}
        late = [i for i in ids if first[i] > 0]
        assert len(late) == 1 and first[late[0]] >= 2
        assert (masks[first[late[0]]] == late[0]).sum() >= 80
        for i in ids:
            assert all((m == i).any() for m in masks[first[i]:])
            if i in late:
                continue
            centroids = [np.argwhere(m == i).mean(0) for m in masks]
            steps = np.linalg.norm(np.diff(centroids, axis=0), axis=1)
            assert steps.max() < 10  # a few px per frame (occlusion shifts
            # the visible centroid a little)


# ----------------------------------------------------------------------
# real loaders, pipelines and metrics
# ----------------------------------------------------------------------
def build(cfg_file: str, key: str, data_root: str, **overrides):
    """Build a dataset dict of a real config, moved to ``data_root``."""
    register_all_modules()
    cfg = Config.fromfile(osp.join(CONFIGS, cfg_file))
    dataset_cfg = cfg
    for part in key.split('.'):
        dataset_cfg = dataset_cfg[part]
    dataset_cfg = dataset_cfg.to_dict() if hasattr(
        dataset_cfg, 'to_dict') else dict(dataset_cfg)
    if dataset_cfg['type'] == 'ConcatDataset':
        for sub in dataset_cfg['datasets']:
            sub['data_root'] = data_root
    else:
        dataset_cfg['data_root'] = data_root
    dataset_cfg.update(overrides)
    return DATASETS.build(dataset_cfg)


def packed(dataset, index=0):
    sample = dataset[index]
    assert isinstance(sample['inputs'], torch.Tensor)
    assert sample['inputs'].shape[0] == 3
    return sample['data_samples']


def test_panoptic_loaders(tree):
    coco = tree['coco'] + '/'
    train = build('coco_panoptic.py', 'panoptic_train_dataset', coco)
    assert len(train) == NUM_TRAIN
    assert train.metainfo['classes'] == THING_CLASSES + ('sky', 'grass',
                                                         'water', 'sand')
    assert train.metainfo['thing_classes'] == THING_CLASSES
    sample = packed(train)
    assert sample.prompt['task'] == 'panoptic'
    num_segments = len(train.get_data_info(0)['segments_info'])
    assert len(sample.gt_instances.masks) == num_segments
    assert sample.gt_instances.masks.masks.shape[1:] == (1024, 1024)
    val = build('eval/coco_panoptic.py', 'test_dataloader.dataset', coco)
    assert len(val) == NUM_VAL
    assert packed(val).segments_info


def test_panoptic_and_instance_metrics_gt_as_prediction(tree):
    coco = tree['coco'] + '/'
    dataset = build('eval/coco_panoptic.py', 'test_dataloader.dataset', coco,
                    pipeline=[])
    ann_dir = osp.join(coco, 'annotations')
    panoptic = load_json(ann_dir, 'panoptic_val2017.json')
    instances = load_json(ann_dir, 'instances_val2017.json')
    label_of = {c['id']: i for i, c in enumerate(panoptic['categories'])}
    isthing = {c['id']: c['isthing'] for c in panoptic['categories']}
    samples = []
    for image_ann in panoptic['annotations']:
        ids = rgb2id(np.array(Image.open(osp.join(
            ann_dir, 'panoptic_val2017', image_ann['file_name']))))
        pan = np.full(ids.shape, len(label_of), dtype=np.int64)
        for k, segment in enumerate(image_ann['segments_info']):
            instance = k + 1 if isthing[segment['category_id']] else 0
            pan[ids == segment['id']] = (label_of[segment['category_id']] +
                                         instance * 1000)
        anns = [a for a in instances['annotations']
                if a['image_id'] == image_ann['image_id']]
        boxes = torch.tensor([a['bbox'] for a in anns], dtype=torch.float32)
        boxes[:, 2:] += boxes[:, :2]
        sample = DetDataSample(metainfo=dict(
            img_id=image_ann['image_id'],
            img_path=image_ann['file_name'].replace('.png', '.jpg'),
            ori_shape=ids.shape))
        sample.pred_panoptic_seg = PixelData(
            sem_seg=torch.from_numpy(pan)[None])
        sample.pred_instances = InstanceData(
            masks=torch.from_numpy(np.stack([
                mask_utils.decode(a['segmentation']) for a in anns
            ])).bool(),
            bboxes=boxes,
            scores=torch.ones(len(anns)),
            labels=torch.tensor([label_of[a['category_id']] for a in anns]))
        samples.append(sample)
    evaluator = Evaluator([
        METRICS.build(
            dict(type='PSALMPanopticMetric',
                 ann_file=osp.join(ann_dir, 'panoptic_val2017.json'),
                 seg_prefix=osp.join(ann_dir, 'panoptic_val2017'))),
        METRICS.build(
            dict(type='CocoMetric',
                 ann_file=osp.join(ann_dir, 'instances_val2017.json'),
                 metric='segm'))
    ])
    evaluator.dataset_meta = dataset.metainfo
    evaluator.process(samples)
    results = evaluator.evaluate(len(samples))
    assert results['coco_panoptic/PQ'] == pytest.approx(100.0)
    assert results['coco_panoptic/PQ_st'] == pytest.approx(100.0)
    assert results['coco/segm_mAP'] == pytest.approx(1.0)


def test_refcoco_loaders(tree):
    coco = tree['coco'] + '/'
    train = build('refcoco.py', 'refcoco_train_dataset', coco)
    refs = []
    for name, refs_file in (('refcoco', 'refs(unc).p'),
                            ('refcoco+', 'refs(unc).p'),
                            ('refcocog', 'refs(umd).p')):
        with open(osp.join(coco, name, refs_file), 'rb') as f:
            refs.append(pickle.load(f))
    assert len(train) == sum(
        r['split'] == 'train' for name_refs in refs for r in name_refs)
    sample = packed(train)
    assert sample.prompt['task'] == 'referring'
    assert len(sample.gt_instances.masks) == 1
    val = build('eval/refcoco.py', 'test_dataloader.dataset', coco)
    assert len(val) == sum(
        len(r['sentences']) for r in refs[0] if r['split'] == 'val')
    sample = packed(val)
    assert sample.gt_masks.masks.shape == (1, 256, 256)
    assert sample.gt_masks.masks.sum() > 0


def test_grefcoco_loader(tree):
    coco = tree['coco'] + '/'
    val = build('eval/grefcoco.py', 'test_dataloader.dataset', coco)
    refs = load_json(coco, 'grefcoco', 'grefs(unc).json')
    val_refs = [r for r in refs if r['split'] == 'val']
    assert len(val) == sum(len(r['sentences']) for r in val_refs)
    empty = [i for i in range(len(val))
             if not val.get_data_info(i)['instances']]
    multi = [i for i in range(len(val))
             if len(val.get_data_info(i)['instances']) > 1]
    assert empty and multi
    assert packed(val, empty[0]).gt_masks.masks.sum() == 0
    assert packed(val, multi[0]).prompt['task'] == 'gres'


def test_interactive_loaders(tree):
    coco = tree['coco'] + '/'
    train = build('coco_interactive.py', 'interactive_train_dataset', coco)
    assert len(train) == NUM_TRAIN
    sample = packed(train)
    assert sample.prompt['task'] == 'interactive'
    # things and stuff are regions
    assert len(sample.prompt_masks) == len(
        train.get_data_info(0)['instances']) >= 5
    val = build('eval/coco_interactive.py', 'test_dataloader.dataset', coco)
    assert len(val) == NUM_VAL
    assert packed(val).prompt_type[0] == 'point'


def test_conversation_loaders(tree):
    llava = build('llava_instruct.py', 'llava_train_dataset',
                  tree['llava'] + '/')
    assert len(llava) == 2 * NUM_TRAIN  # QA + caption per image
    turns = packed(llava).prompt['conversations']
    assert turns[0]['value'].startswith('<image>\n')
    cc3m = build('cc3m_caption.py', 'train_dataloader.dataset',
                 tree['cc3m'] + '/')
    assert len(cc3m) == NUM_TRAIN
    assert packed(cc3m).prompt['task'] == 'caption'
    vqa = build('eval/vqa.py', 'test_dataloader.dataset', tree['vqa'] + '/')
    assert len(vqa) == 3 * NUM_VAL
    sample = packed(vqa)
    assert sample.gt_answers == vqa.get_data_info(0)['gt_answers']
    assert sample.prompt['conversations'][0]['value'].endswith(
        '\nAnswer the question using a single word or phrase.')


def test_davis_loader(tree):
    dataset = build('eval/davis2017.py', 'test_dataloader.dataset',
                    tree['davis'] + '/')
    with open(osp.join(tree['davis'], 'ImageSets', '2017', 'val.txt')) as f:
        videos = f.read().split()
    frames = sum(
        len(os.listdir(osp.join(tree['davis'], 'JPEGImages', '480p', v)))
        for v in videos)
    assert len(dataset) == frames
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    late = [i for i, info in enumerate(infos)
            if info['ref_frame_ids'] and max(info['ref_frame_ids']) ==
            info['frame_id'] > 0]
    assert len(late) == len(videos)  # one late entry per video
    sample = packed(dataset, late[0])
    assert len(sample.prompt_masks) == len(infos[late[0]]['object_ids'])
    assert sample.prompt_masks[-1].any()
