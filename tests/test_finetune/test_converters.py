# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""The custom-data converters on a user's files made from real COCO data.

* ``masks_to_coco.py``: both mask layouts (an id map, one PNG per object)
  give back every real segment pixel for pixel, with the user's category
  names (things first) and ids from 1; unlisted or empty objects fail loudly;
* ``coco_to_panoptic.py``: the PNGs hold exactly the instance masks; stuff
  annotations of a class merge, smaller objects win overlaps;
* ``expressions_to_refcoco.py``: expressions with one, several and no target
  grouped into referents per split;
* the PSALM datasets read the results (renamed classes in the category
  prompt, no-target referents, visual prompts) and
  ``tools/analysis_tools/browse_dataset.py`` draws every task of a recipe.
"""
import csv
import json
import os.path as osp

import cv2
import numpy as np
import pycocotools.mask as mask_utils
import pytest
from custom_data import (FOLDER_IMAGE, ID_MAP_IMAGE, RENAME, SAMPLE, STUFF,
                         load_converter)
from mmengine.config import Config
from mmengine.registry import init_default_scope
from psalm_testing import load_tool

from projects.psalm.evaluation.functional.panoptic_quality import rgb2id

THINGS = ['player', 'ball', 'lorry', 'pony']


def _original_segments():
    """(image, renamed category, iscrowd) -> list of real masks."""
    with open(osp.join(SAMPLE, 'panoptic_examples.json')) as f:
        panoptic = json.load(f)
    names = {c['id']: c['name'] for c in panoptic['categories']}
    segments = {}
    for ann in panoptic['annotations']:
        rgb = cv2.imread(osp.join(SAMPLE, 'panoptic_examples',
                                  ann['file_name']))[..., ::-1]
        pan = rgb2id(rgb)
        image = ann['file_name'].replace('.png', '.jpg')
        for seg in ann['segments_info']:
            key = (image, RENAME[names[seg['category_id']]], seg['iscrowd'])
            segments.setdefault(key, []).append(pan == seg['id'])
    return segments


def _decode(ann, image):
    return mask_utils.decode(ann['segmentation']).astype(bool)


def test_masks_to_coco(custom_data):
    with open(custom_data['instances_train']) as f:
        coco = json.load(f)
    assert [c['name'] for c in coco['categories']] == THINGS + list(STUFF)
    assert [c['isthing'] for c in coco['categories']] == [1] * 4 + [0] * 4
    assert [c['id'] for c in coco['categories']] == list(range(1, 9))
    assert [a['id'] for a in coco['annotations']] == list(range(1, 51))
    images = {i['id']: i for i in coco['images']}
    assert sorted(i['file_name'] for i in images.values()) == [
        ID_MAP_IMAGE, FOLDER_IMAGE]
    names = {c['id']: c['name'] for c in coco['categories']}
    # every real segment comes back pixel for pixel, from both layouts
    original = _original_segments()
    converted = {}
    for ann in coco['annotations']:
        image = images[ann['image_id']]
        key = (image['file_name'], names[ann['category_id']],
               ann['iscrowd'])
        mask = _decode(ann, image)
        assert mask.shape == (image['height'], image['width'])
        assert ann['area'] == mask.sum()
        converted.setdefault(key, []).append(mask)
    assert converted.keys() == original.keys()
    for key, masks in original.items():
        assert len(masks) == len(converted[key])
        for a, b in zip(masks, converted[key]):
            assert (a == b).all(), key
    # the object keys: id-map values and file stems
    keys = {}
    for ann in coco['annotations']:
        image = images[ann['image_id']]['file_name']
        keys.setdefault(image, []).append(ann['object'])
    assert keys[ID_MAP_IMAGE] == [str(i) for i in range(1, 19)]
    assert keys[FOLDER_IMAGE][0] == 'player_00'


def _write_case(root, objects, id_map=None, files=None):
    """One 6x8 image with an id map or per-object masks."""
    cv2.imwrite(osp.join(root, 'a.jpg'), np.zeros((6, 8, 3), np.uint8))
    (root / 'masks').mkdir(exist_ok=True)
    if id_map is not None:
        cv2.imwrite(str(root / 'masks' / 'a.png'), id_map.astype(np.uint8))
    for name, mask in (files or {}).items():
        (root / 'masks' / 'a').mkdir(exist_ok=True)
        cv2.imwrite(str(root / 'masks' / 'a' / f'{name}.png'),
                    mask.astype(np.uint8) * 255)
    with open(root / 'objects.csv', 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['image', 'object', 'category'])
        writer.writerows(objects)


def test_masks_to_coco_errors(tmp_path):
    module = load_converter('masks_to_coco')
    id_map = np.zeros((6, 8), np.uint8)
    id_map[:2, :2], id_map[4:, 4:], id_map[0, 7] = 1, 2, 255

    def convert(objects, **kwargs):
        rows = module.read_table(str(tmp_path / 'objects.csv'),
                                 ('image', 'object', 'category'))
        return module.masks_to_coco(str(tmp_path), str(tmp_path / 'masks'),
                                    rows, **kwargs)

    _write_case(tmp_path, [('a.jpg', 1, 'cat'), ('a.jpg', 2, 'dog')], id_map)
    with pytest.raises(ValueError, match=r"objects \['255'\] have no row"):
        convert(None)
    coco, stats = convert(None, ignore_ids=[255])
    assert stats == dict(images=1, annotations=2, images_without_objects=0)
    assert coco['annotations'][1]['bbox'] == [4.0, 4.0, 4.0, 2.0]
    # an object of the table without pixels
    _write_case(tmp_path, [('a.jpg', 1, 'cat'), ('a.jpg', 3, 'dog')],
                np.where(id_map == 2, 0, id_map))
    with pytest.raises(ValueError, match='object 3: no mask pixels'):
        convert(None, ignore_ids=[255])
    # per-object files may overlap; a wrong size is named
    mask = np.zeros((6, 8), bool)
    mask[1:4, 1:4] = True
    _write_case(tmp_path, [('a.jpg', 'big', 'cat'), ('a.jpg', 'small', 'cat'),
                           ('a.jpg', '', '')],
                files={'big': mask, 'small': mask & (np.arange(8) < 2)})
    (tmp_path / 'masks' / 'a.png').unlink()
    coco, stats = convert(None, stuff=())
    assert [a['area'] for a in coco['annotations']] == [9, 3]
    with pytest.raises(ValueError, match='--stuff names'):
        convert(None, stuff=('grass', ))
    cv2.imwrite(str(tmp_path / 'masks' / 'a' / 'big.png'),
                np.zeros((5, 8), np.uint8))
    with pytest.raises(ValueError, match='5x8 but the image is 6x8'):
        convert(None)


def test_coco_to_panoptic(custom_data):
    with open(custom_data['panoptic_train']) as f:
        panoptic = json.load(f)
    with open(custom_data['instances_train']) as f:
        coco = json.load(f)
    assert [c['name'] for c in panoptic['categories']] == THINGS + list(STUFF)
    anns = {a['image_id']: a for a in panoptic['annotations']}
    ids = [s['id'] for a in anns.values() for s in a['segments_info']]
    assert len(ids) == len(set(ids)) == 50
    png_dir = osp.splitext(custom_data['panoptic_train'])[0]
    for image in coco['images']:
        ann = anns[image['id']]
        rgb = cv2.imread(osp.join(png_dir, ann['file_name']))[..., ::-1]
        pan = rgb2id(rgb)
        instances = [a for a in coco['annotations']
                     if a['image_id'] == image['id']]
        segments = sorted(ann['segments_info'], key=lambda s: -s['area'])
        for seg in segments:
            mask = pan == seg['id']
            assert mask.sum() == seg['area']
            # the segment is exactly one instance mask of its category
            assert any((_decode(a, image) == mask).all() and
                       a['category_id'] == seg['category_id'] and
                       a['iscrowd'] == seg['iscrowd'] for a in instances)


def test_coco_to_panoptic_stuff_and_overlaps(tmp_path):
    module = load_converter('coco_to_panoptic')
    big = np.zeros((6, 8), np.uint8)
    big[:, :6] = 1
    small = np.zeros((6, 8), np.uint8)
    small[1:3, 1:3] = 1
    covered = small.copy()
    grass_a = np.zeros((6, 8), np.uint8)
    grass_a[:, 6] = 1
    grass_b = np.zeros((6, 8), np.uint8)
    grass_b[:, 7] = 1

    def ann(i, mask, cat):
        rle = mask_utils.encode(np.asfortranarray(mask))
        rle['counts'] = rle['counts'].decode()
        return dict(id=i, image_id=1, category_id=cat, segmentation=rle,
                    iscrowd=0)

    coco = dict(
        images=[dict(id=1, file_name='x/a.jpg', height=6, width=8)],
        annotations=[ann(1, big, 1), ann(2, small, 1), ann(3, covered, 2),
                     ann(4, grass_a, 3), ann(5, grass_b, 3)],
        categories=[dict(id=1, name='cow'), dict(id=2, name='calf'),
                    dict(id=3, name='grass')])
    panoptic, stats = module.coco_to_panoptic(coco, str(tmp_path),
                                              stuff=('grass', ))
    assert stats['merged_stuff'] == 1 and stats['hidden_segments'] == 1
    assert [c['isthing'] for c in panoptic['categories']] == [1, 1, 0]
    segments = panoptic['annotations'][0]['segments_info']
    # the big cow keeps what the small ones do not cover; of two equal
    # masks the later annotation (the calf) is painted last and wins
    assert [(s['category_id'], s['area']) for s in segments] == [
        (1, 32), (3, 12), (2, 4)]
    rgb = cv2.imread(str(tmp_path / 'x' / 'a.png'))[..., ::-1]
    pan = rgb2id(rgb)
    assert (pan == segments[2]['id'])[1:3, 1:3].all()
    with pytest.raises(ValueError, match='--stuff names'):
        module.coco_to_panoptic(coco, str(tmp_path), stuff=('sky', ))


def test_expressions_to_refcoco(custom_data):
    with open(custom_data['refs_train']) as f:
        train = json.load(f)
    with open(custom_data['refs_val']) as f:
        val = json.load(f)
    # 8 train rows: the two ball sentences are one referent
    assert [len(r['instruction']) for r in train] == [2, 1, 1, 1, 1, 1, 1]
    assert [len(r['anns']) for r in train] == [1, 2, 1, 0, 11, 1, 0]
    assert [len(r['anns']) for r in val] == [1, 0, 2, 1]
    ball = train[0]
    assert [s['sent'] for s in ball['instruction']] == [
        'the ball', 'the ball in the air']
    assert ball['instruction'][1]['raw'] == 'The ball in the air'
    assert ball['image'] == ID_MAP_IMAGE
    assert ball['image_info']['file_name'] == ID_MAP_IMAGE
    ref_ids = [r['ref_id'] for r in train + val]
    assert len(set(ref_ids)) == len(ref_ids)

    module = load_converter('expressions_to_refcoco')
    with open(custom_data['instances_train']) as f:
        coco = json.load(f)
    rows = [dict(image=ID_MAP_IMAGE, expression='x', objects='99')]
    with pytest.raises(ValueError, match="object '99' is not an object"):
        module.expressions_to_refcoco(rows, coco)
    rows = [dict(image='nope.jpg', expression='x', objects='')]
    with pytest.raises(ValueError, match='image not in the instance json'):
        module.expressions_to_refcoco(rows, coco)
    # a json table takes lists
    splits, stats = module.expressions_to_refcoco(
        [dict(image=ID_MAP_IMAGE, expression='two', objects=['1', '2'])],
        coco)
    assert stats['multi_target'] == 1 and list(splits) == ['train']


def _build(cfg):
    from mmdet.registry import DATASETS
    init_default_scope('mmdet')
    return DATASETS.build(cfg)


def test_psalm_datasets_read_the_custom_data(custom_data, repo_root):
    root = custom_data['root'] + '/'
    panoptic = _build(dict(
        type='PSALMCocoPanopticDataset', task='panoptic', data_root=root,
        ann_file='annotations/panoptic_train.json',
        data_prefix=dict(img='images/', seg='annotations/panoptic_train/'),
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadPanopticSegments'),
                  dict(type='PackPSALMInputs')]))
    assert panoptic.metainfo['classes'] == tuple(THINGS + list(STUFF))
    sample = panoptic[0]['data_samples']
    assert sample.metainfo['prompt']['class_names'] == THINGS + list(STUFF)
    assert len(sample.gt_instances) == 17  # 18 segments, 1 crowd
    instance = _build(dict(
        type='PSALMCocoPanopticDataset', task='instance', data_root=root,
        ann_file='annotations/panoptic_train.json',
        data_prefix=dict(img='images/', seg='annotations/panoptic_train/'),
        pipeline=[]))
    assert instance.metainfo['classes'] == tuple(THINGS)

    gres = _build(dict(
        type='PSALMGRefCocoDataset', data_root=root,
        ann_file='annotations/refs_train.json', split_file=None,
        data_prefix=dict(img_path='images/'), protocol='per_expression',
        pipeline=[]))
    assert len(gres) == 8
    assert [len(gres[i]['instances']) for i in range(8)] == [
        1, 1, 2, 1, 0, 11, 1, 0]
    assert gres[4]['prompt'] == dict(task='gres', sentences=['the pony'])

    interactive = _build(dict(
        type='COCOInteractiveDataset', data_root=root,
        ann_file='annotations/interactive_train.json',
        data_prefix=dict(img='images/'), pipeline=[]))
    assert len(interactive) == 2


def test_browse_dataset_draws_every_task_of_a_recipe(custom_data, repo_root,
                                                     tmp_path):
    browse = load_tool('tools/analysis_tools/browse_dataset.py')
    recipe = osp.join(repo_root, 'configs', 'finetune',
                      'psalm_swin-b_phi-1.5_finetune-full_custom.py')
    key = 'train_dataloader.dataset.datasets'
    options = [f'{key}.{i}.data_root={custom_data["root"]}/'
               for i in range(3)]
    assert len(Config.fromfile(recipe).train_dataloader.dataset.datasets) == 3
    for task in range(3):
        out = tmp_path / str(task)
        paths = browse.main([recipe, '--output-dir', str(out), '--num', '1',
                             '--task-index', str(task), '--cfg-options',
                             *options])
        assert len(paths) == 1 and osp.isfile(paths[0])
