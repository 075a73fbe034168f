# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""TrivialBaseline: each rule gives its known answer through PSALM's
post-processing."""
import json
import os.path as osp

import mmcv
import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from mmdet.structures import DetDataSample
from projects.psalm.models import TrivialBaseline

H, W = 40, 60
SKY, GRASS, RED = (120, 180, 250), (40, 160, 40), (230, 20, 20)


def _scene(tmp_path):
    """A 40x60 image: sky (top), grass (bottom), a red 10x10 square, and its
    COCO panoptic + instances files (the square is a thing)."""
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[:20] = SKY
    rgb[20:] = GRASS
    rgb[22:32, 5:15] = RED
    mmcv.imwrite(rgb[..., ::-1], str(tmp_path / 'img' / 'a.png'))
    ids = np.zeros((H, W), np.int64)
    ids[:20], ids[20:], ids[22:32, 5:15] = 1, 2, 3
    png = np.stack([ids % 256, ids // 256 % 256, ids // 65536], -1)
    mmcv.imwrite(png.astype(np.uint8)[..., ::-1],
                 str(tmp_path / 'seg' / 'a.png'))
    cats = [dict(id=1, name='sky', isthing=0), dict(id=2, name='grass',
                                                    isthing=0),
            dict(id=3, name='square', isthing=1)]
    segs = [dict(id=i, category_id=i, iscrowd=0) for i in (1, 2, 3)]
    pan = dict(images=[dict(id=1, file_name='a.png', height=H, width=W)],
               annotations=[dict(image_id=1, file_name='a.png',
                                 segments_info=segs)],
               categories=cats)
    (tmp_path / 'pan.json').write_text(json.dumps(pan))
    anns = []
    for i, (y0, y1, x0, x1) in enumerate([(22, 32, 5, 15), (0, 4, 50, 54)]):
        mask = np.zeros((H, W), np.uint8, order='F')
        mask[y0:y1, x0:x1] = 1
        rle = mask_utils.encode(mask)
        rle['counts'] = rle['counts'].decode()
        anns.append(dict(id=i + 1, image_id=1, category_id=3,
                         segmentation=rle))
    (tmp_path / 'inst.json').write_text(json.dumps(dict(annotations=anns)))
    return dict(ann_file=str(tmp_path / 'pan.json'),
                seg_dir=str(tmp_path / 'seg'), img_dir=str(tmp_path / 'img'))


def _sample(tmp_path, task, **prompt):
    meta = dict(img_path=str(tmp_path / 'img' / 'a.png'), img_id=1,
                ori_shape=(H, W), img_shape=(H, W),
                prompt=dict(task=task, **prompt),
                is_thing=[False, False, True])
    return DetDataSample(metainfo=meta)


def test_colour_regions_panoptic(tmp_path):
    model = TrivialBaseline(panoptic_train=_scene(tmp_path))
    sample = _sample(tmp_path, 'panoptic',
                     class_names=['sky', 'grass', 'square'])
    model(torch.zeros(1, 3, H, W), [sample])
    pan = sample.pred_panoptic_seg.sem_seg[0]
    labels = pan % 1000
    # every region found and labelled by its mean colour
    assert (labels[:20] == 0).all() and (labels[33:] == 1).all()
    assert (labels[22:32, 5:15] == 2).all()
    assert (pan[22:32, 5:15] // 1000 == 1).all()  # the thing's instance id
    sem = sample.pred_sem_seg.sem_seg[0]
    assert (sem[:20] == 0).all() and (sem[22:32, 5:15] == 2).all()


def test_whole_image_is_the_majority_class(tmp_path):
    model = TrivialBaseline(rules=dict(category='whole_image'),
                            panoptic_train=_scene(tmp_path))
    sample = _sample(tmp_path, 'semantic',
                     class_names=['square', 'grass', 'sky'])
    model(torch.zeros(1, 3, H, W), [sample])
    # sky 1200 px, grass 1100, square 100: sky, index 2 in this prompt
    assert (sample.pred_sem_seg.sem_seg == 2).all()


def test_largest_object(tmp_path):
    _scene(tmp_path)
    model = TrivialBaseline(instances_file=str(tmp_path / 'inst.json'))
    sample = _sample(tmp_path, 'referring', sentences=['anything'])
    model(torch.zeros(1, 3, H, W), [sample])
    mask = sample.pred_instances.masks[0]
    assert mask.sum() == 100 and mask[22:32, 5:15].all()


def test_prompt_rule_returns_the_prompts_at_the_original_size(tmp_path):
    _scene(tmp_path)
    model = TrivialBaseline()
    sample = _sample(tmp_path, 'interactive', num_regions=2)
    # network input 2x the original, padded to 96x128
    sample.set_metainfo(dict(img_shape=(2 * H, 2 * W)))
    prompts = torch.zeros(2, 96, 128, dtype=torch.bool)
    prompts[0, 10:30, 20:60] = True
    prompts[1, 50:70, 0:10] = True
    sample.prompt_masks = prompts
    model(torch.zeros(1, 3, 96, 128), [sample])
    masks = sample.pred_instances.masks
    assert masks.shape == (2, H, W)
    assert masks[0].sum() == 10 * 20 and masks[0][5:15, 10:30].all()
    assert masks[1].sum() == 10 * 5 and masks[1][25:35, 0:5].all()
    # the VOS loop's 'tensor' mode: one query per prompt, diagonal logits
    cls, mask_logits = model(torch.zeros(1, 3, 96, 128), [sample], 'tensor')
    assert cls[-1].shape == (1, 2, 2) and mask_logits[-1].shape == (1, 2, 96,
                                                                    128)
    assert torch.equal(cls[-1][0].argmax(0), torch.arange(2))


def test_majority_answer(tmp_path):
    records = [{
        'conversations': [{'from': 'human', 'value': 'q'},
                          {'from': 'gpt', 'value': a}]
    } for a in ('Yes', 'no', 'yes ', '3')]
    (tmp_path / 'qa.json').write_text(json.dumps(records))
    model = TrivialBaseline(answers_file=str(tmp_path / 'qa.json'))
    samples = [_sample(tmp_path, 'vqa') for _ in range(2)]
    model(torch.zeros(2, 3, H, W), samples)
    assert [s.pred_text for s in samples] == ['yes', 'yes']


def test_errors(tmp_path):
    with pytest.raises(ValueError, match='unknown category rule'):
        TrivialBaseline(rules=dict(category='random'))
    model = TrivialBaseline()
    with pytest.raises(ValueError, match='need panoptic_train'):
        model(torch.zeros(1, 3, H, W),
              [_sample(tmp_path, 'panoptic', class_names=['a'])])
    with pytest.raises(RuntimeError, match='nothing to train'):
        model(torch.zeros(1, 3, H, W), [], 'loss')
    model = TrivialBaseline(panoptic_train=_scene(tmp_path))
    with pytest.raises(ValueError, match=r"\['cat'\] are not"):
        model(torch.zeros(1, 3, H, W),
              [_sample(tmp_path, 'panoptic', class_names=['sky', 'cat'])])
    assert osp.exists(tmp_path / 'inst.json')
