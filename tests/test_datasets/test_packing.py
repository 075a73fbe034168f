# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""PackPSALMInputs: the data-sample contract for every task, and packed
real samples feeding the tiny PSALM (data preprocessor + loss)."""
import json
import os
import os.path as osp

import mmcv
import numpy as np
import pytest
import torch
from mmengine.dataset import Compose

import projects.psalm  # noqa: F401
from mmdet.registry import DATASETS
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmdet.utils import register_all_modules
from projects.psalm.datasets import PSALM_META_KEYS, PackPSALMInputs
from projects.psalm.evaluation.functional import rgb2id
from psalm_testing import build_tiny_psalm

SIZE = 256
IMAGE = '000000142238.jpg'  # 640x427


def _image_dir(data_root):
    return osp.join(data_root, 'coco_panoptic_sample', 'input_images')


def _loaded(data_root, prompt, **extra):
    """Results of LoadImageFromFile + Resize for the real image."""
    register_all_modules()
    pipeline = Compose([
        dict(type='LoadImageFromFile'),
        dict(type='Resize', scale=(SIZE, SIZE), keep_ratio=True)
    ])
    results = pipeline(
        dict(img_path=osp.join(_image_dir(data_root), IMAGE), img_id=1,
             prompt=prompt))
    results.update(extra)
    return results


def _masks(num, shape):
    rng = np.random.default_rng(num)
    return BitmapMasks(rng.random((num, ) + shape) > 0.5, *shape)


def _check_common(out, task):
    img, sample = out['inputs'], out['data_samples']
    assert isinstance(sample, DetDataSample)
    assert img.dtype == torch.uint8 and img.dim() == 3 and img.shape[0] == 3
    h, w = img.shape[1:]
    assert max(h, w) == SIZE and (h, w) == (171, 256)  # resized, not padded
    meta = sample.metainfo
    assert meta['img_shape'] == (h, w) and meta['ori_shape'] == (427, 640)
    for key in ('img_id', 'img_path', 'scale_factor', 'prompt'):
        assert key in meta
    assert meta['prompt']['task'] == task
    return sample


@pytest.mark.parametrize('task', ['panoptic', 'semantic', 'instance'])
def test_category_tasks(data_root, task):
    names = ['person', 'sports ball', 'grass']
    results = _loaded(
        data_root, dict(task=task, class_names=names),
        is_thing=[True, True, False],
        gt_masks=_masks(4, (171, 256)),
        gt_bboxes_labels=np.array([0, 0, 1, 2]))
    sample = _check_common(PackPSALMInputs()(results), task)
    assert sample.metainfo['is_thing'] == [True, True, False]
    assert sample.gt_instances.masks.masks.shape == (4, 171, 256)
    assert sample.gt_instances.labels.dtype == torch.long
    assert sample.gt_instances.labels.tolist() == [0, 0, 1, 2]
    with pytest.raises(ValueError, match=r'labels must lie in \[0, 3\)'):
        PackPSALMInputs()(dict(results, gt_bboxes_labels=np.array([0, 0, 1,
                                                                    3])))
    with pytest.raises(ValueError, match='is_thing has 2 flags'):
        PackPSALMInputs()(dict(results, is_thing=[True, False]))


@pytest.mark.parametrize('task, num', [('referring', 1), ('gres', 0),
                                       ('gres', 1), ('gres', 2)])
def test_sentence_tasks(data_root, task, num):
    prompt = dict(task=task, sentences=['the ball in the air'])
    results = _loaded(data_root, prompt, gt_masks=_masks(num, (171, 256)))
    sample = _check_common(PackPSALMInputs()(results), task)
    assert sample.metainfo['prompt']['sentences'] == ['the ball in the air']
    assert sample.gt_instances.masks.masks.shape == (num, 171, 256)
    assert sample.gt_instances.labels.tolist() == [0] * num  # zeros added

    # evaluation: original-size union in the metainfo, no gt_instances
    masks = _masks(num, (427, 640))
    pack = PackPSALMInputs(meta_keys=PSALM_META_KEYS + ('gt_masks', ))
    sample = _check_common(pack(dict(results, gt_masks=masks)), task)
    assert 'gt_instances' not in sample
    gt = sample.metainfo['gt_masks'].masks
    assert gt.shape == (1, 427, 640)
    expected = masks.masks.any(0) if num else np.zeros((427, 640), bool)
    assert np.array_equal(gt[0].astype(bool), expected)
    with pytest.raises(ValueError, match='load the annotations after'):
        pack(results)  # resized masks are not evaluation GT


def test_interactive(data_root):
    prompt_masks = _masks(3, (171, 256)).masks.astype(bool)
    results = _loaded(
        data_root, dict(task='interactive'), prompt_masks=prompt_masks,
        prompt_type=['point', 'box', 'mask'], gt_masks=_masks(3, (171, 256)),
        gt_bboxes_labels=np.array([0, 1, 2]))
    sample = _check_common(PackPSALMInputs()(results), 'interactive')
    assert sample.prompt_masks.dtype == torch.bool
    assert torch.equal(sample.prompt_masks, torch.from_numpy(prompt_masks))
    assert sample.metainfo['prompt_type'] == ['point', 'box', 'mask']
    assert sample.gt_instances.labels.tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match='need prompt_masks'):
        PackPSALMInputs()({k: v for k, v in results.items()
                           if k != 'prompt_masks'})
    with pytest.raises(ValueError, match='prompt_masks are'):
        PackPSALMInputs()(dict(results, prompt_masks=prompt_masks[:, :10]))


@pytest.mark.parametrize('task', ['vqa', 'caption'])
def test_conversation_tasks(data_root, task):
    convs = [{'from': 'human', 'value': '<image>\nWhat is this?'}]
    results = _loaded(data_root, dict(task=task, conversations=convs),
                      gt_answers=['rugby', 'rugby match'])
    sample = _check_common(PackPSALMInputs()(results), task)
    assert 'gt_instances' not in sample
    assert 'ignored_instances' not in sample
    assert sample.metainfo['gt_answers'] == ['rugby', 'rugby match']


def test_bad_results_raise(data_root):
    results = _loaded(data_root, dict(task='referring', sentences=['x']),
                      gt_masks=_masks(1, (171, 256)))
    with pytest.raises(ValueError, match='prompt dict'):
        PackPSALMInputs()(dict(results, prompt=None))
    with pytest.raises(ValueError, match='unknown prompt task'):
        PackPSALMInputs()(dict(results, prompt=dict(task='detection')))
    with pytest.raises(ValueError, match='load the annotations before'):
        PackPSALMInputs()(dict(results, gt_masks=_masks(1, (427, 640))))
    with pytest.raises(ValueError, match='no image'):
        PackPSALMInputs()({k: v for k, v in results.items() if k != 'img'})


# ----------------------------------------------------------------------
# packed real samples -> tiny model
# ----------------------------------------------------------------------
@pytest.fixture(scope='module')
def tiny_model(repo_root):
    torch.manual_seed(0)
    return build_tiny_psalm(repo_root).train()


def _datasets(data_root, tmp_path):
    register_all_modules()
    images = _image_dir(data_root)
    pan_root = osp.join(data_root, 'coco_panoptic_sample')
    ref_root = osp.join(data_root, 'refcoco_sample')
    resize = dict(type='Resize', scale=(SIZE, SIZE), keep_ratio=True)
    load = dict(type='LoadImageFromFile')
    pack = dict(type='PackPSALMInputs')
    llava = osp.join(data_root, 'llava', 'llava_instruct_5.json')
    with open(llava) as f:
        records = json.load(f)
    for i, record in enumerate(records):
        os.symlink(
            osp.join(images, ('000000142238.jpg', '000000439180.jpg')[i % 2]),
            tmp_path / record['image'])
    return dict(
        panoptic=DATASETS.build(
            dict(
                type='PSALMCocoPanopticDataset',
                ann_file=osp.join(pan_root, 'panoptic_examples.json'),
                data_prefix=dict(
                    img=images + '/',
                    seg=osp.join(pan_root, 'panoptic_examples/')),
                pipeline=[load,
                          dict(type='LoadPanopticSegments'), resize,
                          pack])),
        referring=DATASETS.build(
            dict(
                type='PSALMRefCocoDataset',
                ann_file=osp.join(ref_root, 'instances.json'),
                split_file=osp.join(ref_root, 'refs(unc).p'),
                data_prefix=dict(img_path=images + '/'),
                pipeline=[
                    load,
                    dict(type='LoadAnnotations', with_bbox=False,
                         with_mask=True), resize, pack
                ])),
        gres=DATASETS.build(
            dict(
                type='PSALMGRefCocoDataset',
                ann_file=osp.join(ref_root, 'instances.json'),
                split_file=osp.join(ref_root, 'grefs(unc).json'),
                data_prefix=dict(img_path=images + '/'),
                pipeline=[
                    load,
                    dict(type='LoadAnnotations', with_bbox=False,
                         with_mask=True), resize, pack
                ])),
        vqa=DATASETS.build(
            dict(
                type='LLaVAInstructDataset',
                ann_file=llava,
                data_prefix=dict(img_path=str(tmp_path)),
                pipeline=[load, resize, pack])))


def test_packed_samples_feed_the_tiny_model(data_root, tmp_path, tiny_model):
    datasets = _datasets(data_root, tmp_path)
    # gres: [14] one target + [-1] no target in one batch
    for task, indices in [('panoptic', (0, 1)), ('referring', (0, 4)),
                          ('gres', (0, 2)), ('vqa', (0, 1))]:
        packed = [datasets[task][i] for i in indices]
        for out in packed:
            sample = out['data_samples']
            img_shape = sample.metainfo['img_shape']
            assert tuple(out['inputs'].shape[1:]) == img_shape
            if task != 'vqa':
                masks = sample.gt_instances.masks
                assert (masks.height, masks.width) == img_shape
        data = tiny_model.data_preprocessor(
            dict(inputs=[out['inputs'] for out in packed],
                 data_samples=[out['data_samples'] for out in packed]),
            training=True)
        assert data['inputs'].shape == (2, 3, SIZE, SIZE)
        losses = tiny_model(**data, mode='loss')
        assert losses, task
        for name, value in losses.items():
            assert torch.isfinite(value).all(), (task, name)
        if task == 'vqa':
            assert set(losses) == {'loss_lm'} and losses['loss_lm'] > 0
        else:
            assert any('mask' in name for name in losses)


def test_panoptic_targets_after_preprocessor(data_root, tmp_path,
                                             tiny_model):
    """Padded GT masks keep the PNG segments in the top-left corner."""
    ds = _datasets(data_root, tmp_path)['panoptic']
    out = ds[0]
    data = tiny_model.data_preprocessor(
        dict(inputs=[out['inputs']], data_samples=[out['data_samples']]),
        training=True)
    masks = data['data_samples'][0].gt_instances.masks.masks
    h, w = out['data_samples'].metainfo['img_shape']
    assert masks.shape[1:] == (SIZE, SIZE)
    assert not masks[:, h:].any() and not masks[:, :, w:].any()
    pan = rgb2id(
        mmcv.imread(
            osp.join(data_root, 'coco_panoptic_sample', 'panoptic_examples',
                     '000000142238.png'),
            channel_order='rgb'))
    first = out['data_samples'].metainfo['segments_info'][0]
    expected = mmcv.imresize((pan == first['id']).astype(np.uint8), (w, h),
                             interpolation='nearest')
    assert np.array_equal(masks[0, :h, :w], expected)
