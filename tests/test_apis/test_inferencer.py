# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""PSALMInferencer on a real COCO image with the random tiny PSALM: outputs
per prompt kind, samples built like the datasets build them, the cached
set_image/predict API, and the errors on bad input."""
import json
import os.path as osp

import cv2
import mmcv
import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate

from mmdet.registry import DATASETS
from projects.psalm.apis import parse_prompt
from projects.psalm.datasets.coco_interactive import (PROMPT_FIELDS,
                                                      encode_rle, mask_to_box)

ORI_SHAPE = (360, 640)  # (H, W) of the test image
SIZE = 256  # the tiny model's input size
REGION_MASK = np.zeros(ORI_SHAPE, dtype=bool)
REGION_MASK[100:220, 200:330] = True
KINDS = {
    'referring': dict(text='the man on the white horse'),
    'gres': dict(text='the dog', task='gres'),
    'panoptic': dict(categories=['person', 'horse', 'tree', 'grass']),
    'semantic': dict(categories=['person', 'horse', 'sky'],
                     task='semantic'),
    'instance': dict(categories=['person', 'horse'], task='instance'),
    'points': dict(points=[(300, 200), (310, 190)]),
    'box': dict(box=(200, 100, 330, 220)),
    'scribble': dict(scribble=[(210, 110), (260, 150), (320, 130)]),
    'mask': dict(mask=REGION_MASK),
    'regions': dict(points=[[(300, 200)], [(100, 300), (120, 310)],
                            [(500, 60)]]),
}


def decode(rle: dict) -> np.ndarray:
    return mask_utils.decode(rle).astype(bool)


@pytest.fixture
def low_thresholds(inferencer):
    """Let the random model's panoptic queries through."""
    cfg = inferencer.model.test_cfg
    saved = dict(cfg)
    cfg.update(object_mask_thr=0.0, iou_thr=0.0)
    yield
    cfg.clear()
    cfg.update(saved)


@pytest.mark.parametrize('kind', list(KINDS))
def test_outputs_of_every_prompt_kind(inferencer, image_path, low_thresholds,
                                      kind):
    prompt = KINDS[kind]
    result = inferencer(image_path, mask_format='array', pred_score_thr=0.0,
                        **prompt)
    (pred, ), (picture, ) = result['predictions'], result['visualization']
    masks = pred['masks']
    assert masks.dtype == bool and masks.shape[1:] == ORI_SHAPE
    assert len(pred['labels']) == len(pred['label_names']) == len(
        pred['scores']) == len(masks)
    if 'categories' in prompt:
        assert pred['task'] == prompt.get('task', 'panoptic')
        assert len(masks) > 0
        assert set(pred['label_names']) <= set(prompt['categories'])
        assert all(prompt['categories'][label] == name for label, name in
                   zip(pred['labels'], pred['label_names']))
        if pred['task'] == 'instance':
            assert all(isinstance(s, float) for s in pred['scores'])
        else:  # fused segments carry no score
            assert all(s is None for s in pred['scores'])
            if pred['task'] == 'semantic':  # a pixel has one class
                assert masks.sum(0).max() == 1
    elif 'text' in prompt:
        assert pred['task'] == prompt.get('task', 'referring')
        assert len(masks) == 1 and pred['label_names'] == [prompt['text']]
        assert isinstance(pred['scores'][0], float)
    else:
        assert pred['task'] == 'interactive'
        num_regions = 3 if kind == 'regions' else 1
        assert len(masks) == num_regions
        assert pred['labels'] == list(range(num_regions))
        prompt_type = {'regions': 'point', 'points': 'point'}.get(kind, kind)
        assert pred['label_names'][0] == f'{prompt_type} 0'

    image = mmcv.imread(image_path, channel_order='rgb')
    assert picture.dtype == np.uint8 and picture.shape == image.shape
    drawn = masks.any(0)
    if drawn.any():  # the masks are blended in
        assert (picture != image).any(-1)[drawn].mean() > 0.5
    if not drawn.all():  # away from masks, prompts and labels: untouched
        assert (picture == image).all(-1)[~drawn].mean() > 0.5

    rle_result = inferencer(image_path, **prompt)['predictions'][0]
    assert len(rle_result['masks']) == len(masks)
    for rle, mask in zip(rle_result['masks'], masks):
        assert rle['size'] == list(ORI_SHAPE) and isinstance(
            rle['counts'], str)
        assert np.array_equal(decode(rle), mask)
    json.dumps(rle_result)  # json-ready


def test_question_gives_a_text_answer(inferencer, image_path):
    cfg = inferencer.model.test_cfg
    saved, cfg['max_new_tokens'] = cfg['max_new_tokens'], 8
    try:
        result = inferencer(image_path,
                            question='What are the people riding?')
    finally:
        cfg['max_new_tokens'] = saved
    pred = result['predictions'][0]
    assert pred['task'] == 'vqa' and isinstance(pred['answer'], str)
    assert 'masks' not in pred
    picture = result['visualization'][0]
    image = mmcv.imread(image_path, channel_order='rgb')
    assert picture.shape == image.shape and (picture != image).any()


def test_array_input_and_datasamples(inferencer, image_path):
    image = mmcv.imread(image_path)  # BGR, as mmcv / mmdet load images
    from_array = inferencer(image, text='the flag', return_datasamples=True)
    from_file = inferencer(image_path, text='the flag',
                           return_datasamples=True)
    a = from_array['predictions'][0].pred_instances
    b = from_file['predictions'][0].pred_instances
    assert torch.equal(a.masks, b.masks) and torch.equal(a.scores, b.scores)
    assert np.array_equal(from_array['visualization'][0],
                          from_file['visualization'][0])


# ----------------------------------------------------------------------
# the inferencer builds its samples as the datasets do
# ----------------------------------------------------------------------
def _dataset(repo_root, config, **dataset):
    cfg = Config.fromfile(osp.join(repo_root, config))
    cfg.test_dataloader.dataset.update(data_root='', **dataset)
    return DATASETS.build(cfg.test_dataloader.dataset)


def _assert_same(inferencer, sample, result):
    """The dataset sample through model.predict == the inferencer result."""
    with torch.no_grad():
        expected = inferencer.model.test_step(pseudo_collate([sample]))[0]
    pred = result['predictions'][0].pred_instances
    assert torch.equal(pred.masks, expected.pred_instances.masks)
    torch.testing.assert_close(pred.scores, expected.pred_instances.scores,
                               rtol=0, atol=1e-6)


def _assert_same_inputs(inferencer, sample, image_path, **prompt):
    data = next(
        inferencer.preprocess([image_path], prompt=parse_prompt(**prompt)))
    assert torch.equal(data['inputs'][0], sample['inputs'])
    ours, theirs = data['data_samples'][0], sample['data_samples']
    for key in ('img_shape', 'ori_shape', 'prompt', 'prompt_type'):
        assert ours.metainfo.get(key) == theirs.metainfo.get(key), key
    if 'prompt_masks' in theirs:
        assert torch.equal(ours.prompt_masks, theirs.prompt_masks)


def test_referring_sample_equals_the_refcoco_pipeline(inferencer, repo_root,
                                                      data_root):
    root = osp.join(data_root, 'refcoco_sample')
    dataset = _dataset(
        repo_root, 'configs/fixtures/psalm_tiny_test_refcoco-val.py',
        ann_file=osp.join(root, 'instances.json'),
        split_file=osp.join(root, 'refs(unc).p'),
        data_prefix=dict(img_path=osp.join(data_root, 'coco_panoptic_sample',
                                           'input_images/')))
    for index in (0, len(dataset) - 1):
        sample = dataset[index]
        metainfo = sample['data_samples'].metainfo
        (text, ) = metainfo['prompt']['sentences']
        _assert_same_inputs(inferencer, sample, metainfo['img_path'],
                            text=text)
        result = inferencer(metainfo['img_path'], text=text,
                            return_datasamples=True)
        _assert_same(inferencer, sample, result)


@pytest.fixture(scope='module')
def interactive_json(data_root, tmp_path_factory):
    """A COCO-Interactive json of the test image: two real annotations whose
    prompts are the pixels / box / polyline the test gives the inferencer.
    """
    with open(osp.join(data_root, 'coco_panoptic_sample',
                       'panoptic_coco_detection_format.json')) as f:
        coco = json.load(f)
    anns = {ann['id']: ann for ann in coco['annotations']}
    regions = []  # per annotation: point, box, scribble (on the object)
    out = []
    for ann_id in (46, 48):
        gt = decode(anns[ann_id]['segmentation'])
        rows, cols = np.nonzero(gt)
        pixels = [(int(cols[i]), int(rows[i]))
                  for i in (len(rows) // 4, len(rows) // 2,
                            3 * len(rows) // 4)]
        x, y = pixels[1]
        x1, y1, x2, y2 = (int(v) for v in mask_to_box(gt))
        regions.append((ann_id, (x, y), (x1, y1, x2, y2), pixels))
        point = np.zeros(ORI_SHAPE, dtype=bool)
        point[y, x] = True
        box = np.zeros(ORI_SHAPE, dtype=bool)
        box[y1:y2, x1:x2] = True
        scribble = np.zeros(ORI_SHAPE, dtype=np.uint8)
        cv2.polylines(scribble, [np.int32(pixels).reshape(-1, 1, 2)],
                      False, 1, 1, cv2.LINE_8)
        prompts = dict(point=point, box=box, scribble=scribble.astype(bool),
                       mask=gt)
        out.append(
            dict(anns[ann_id],
                 **{PROMPT_FIELDS[t]: encode_rle(m)
                    for t, m in prompts.items()}))
    height, width = ORI_SHAPE
    entry = dict(image='000000439180.jpg',
                 image_info=dict(id=439180, height=height, width=width),
                 anns=out)
    path = str(tmp_path_factory.mktemp('interactive') / 'val.json')
    with open(path, 'w') as f:
        json.dump([entry], f)
    prompts = dict(
        point=dict(points=[[r[1]] for r in regions]),
        box=dict(box=[r[2] for r in regions]),
        scribble=dict(scribble=[r[3] for r in regions]))
    return path, prompts


@pytest.mark.parametrize('prompt_type', ['point', 'box', 'scribble'])
def test_visual_prompt_sample_equals_the_coco_interactive_pipeline(
        inferencer, repo_root, data_root, image_path, interactive_json,
        prompt_type):
    ann_file, prompts = interactive_json
    dataset = _dataset(
        repo_root,
        'configs/fixtures/psalm_tiny_test_coco-interactive-point.py',
        ann_file=ann_file,
        prompt_type=prompt_type,
        data_prefix=dict(img=osp.join(data_root, 'coco_panoptic_sample',
                                      'input_images')))
    sample = dataset[0]
    assert sample['data_samples'].prompt_masks.shape[0] == 2
    _assert_same_inputs(inferencer, sample, image_path,
                        **prompts[prompt_type])
    result = inferencer(image_path, return_datasamples=True,
                        **prompts[prompt_type])
    _assert_same(inferencer, sample, result)


# ----------------------------------------------------------------------
# set_image once, predict many times
# ----------------------------------------------------------------------
def test_set_image_then_predict_reuses_the_image(inferencer, image_path):
    model = inferencer.model
    calls = {'backbone': 0, 'pixel_decoder': 0}
    handles = [
        model.backbone.register_forward_hook(
            lambda *_: calls.__setitem__('backbone', calls['backbone'] + 1)),
        model.mask_generator.pixel_decoder.register_forward_hook(
            lambda *_: calls.__setitem__('pixel_decoder',
                                         calls['pixel_decoder'] + 1)),
    ]
    try:
        inferencer.set_image(image_path)
        assert calls == {'backbone': 1, 'pixel_decoder': 1}
        prompts = [dict(text='the man'), dict(text='a brown horse'),
                   dict(points=[(300, 200)]),
                   dict(points=[(300, 200), (310, 210)]),
                   dict(categories=['person', 'horse'], task='instance')]
        cached = [inferencer.predict(mask_format='array', **p)
                  for p in prompts]
        assert calls == {'backbone': 1, 'pixel_decoder': 1}
        # one LLM prefix per task (instruction) is cached
        assert len(inferencer.image_cache.prefixes) == 3
    finally:
        for handle in handles:
            handle.remove()
        inferencer.reset_image()
    assert not inferencer.is_image_set
    for prompt, result in zip(prompts, cached):
        expected = inferencer(image_path, mask_format='array', **prompt)
        pred, ref = result['predictions'], expected['predictions'][0]
        assert np.array_equal(pred['masks'], ref['masks'])
        np.testing.assert_allclose(pred['scores'], ref['scores'], atol=1e-4)
        assert pred['label_names'] == ref['label_names']
        assert np.array_equal(result['visualization'],
                              expected['visualization'][0])


def test_use_image_switches_back_without_encoding(inferencer, image_path):
    """An image encoded earlier is made current again by ``use_image``:
    same answer as when it was set, no new Swin pass."""
    import mmcv
    first = inferencer.set_image(image_path)
    expected = inferencer.predict(text='the man', mask_format='array')
    flipped = mmcv.imread(image_path)[:, ::-1].copy()
    other = inferencer.set_image(flipped)
    assert other is not first
    # the flipped image answers differently, so the check below can fail
    on_other = inferencer.predict(text='the man', mask_format='array')
    assert not np.array_equal(on_other['predictions']['masks'],
                              expected['predictions']['masks'])
    calls = []
    handle = inferencer.model.backbone.register_forward_hook(
        lambda *_: calls.append(1))
    try:
        inferencer.use_image(first)
        result = inferencer.predict(text='the man', mask_format='array')
    finally:
        handle.remove()
        inferencer.reset_image()
    assert calls == []
    assert np.array_equal(result['predictions']['masks'],
                          expected['predictions']['masks'])
    with pytest.raises(TypeError, match='needs the ImageState'):
        inferencer.use_image(image_path)


# ----------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------
@pytest.mark.parametrize('prompt, error, match', [
    (dict(), ValueError, 'exactly one kind of prompt.*got none'),
    (dict(text='a dog', points=[(1, 2)]), ValueError, 'got text, points'),
    (dict(text='   '), ValueError, 'text is empty'),
    (dict(question=''), ValueError, 'question is empty'),
    (dict(categories=[]), ValueError, 'categories is empty'),
    (dict(categories='person'), TypeError, 'list of class names'),
    (dict(categories=['dog', 'dog']), ValueError, 'repeat'),
    (dict(text='a dog', task='panoptic'), ValueError,
     'runs task referring or gres'),
    (dict(points=[(650, 10)]), ValueError,
     r'point \(650, 10\) lies outside the 640x360'),
    (dict(scribble=[(10, 10), (10, 400)]), ValueError, 'lies outside'),
    (dict(box=(600, 10, 700, 100)), ValueError, 'outside the 640x360'),
    (dict(box=(50, 10, 40, 100)), ValueError, 'x1 < x2'),
    (dict(box=(11, 11, 12, 12)), ValueError, 'empty after resizing'),
    (dict(mask=np.pad(np.ones((1, 1), bool), ((11, 348), (11, 628)))),
     ValueError, 'empty after resizing'),
    (dict(mask=np.zeros(ORI_SHAPE, bool)), ValueError, 'mask prompt is '
     'empty'),
    (dict(mask=np.ones((10, 10), bool)), ValueError,
     r'mask is 10x10 \(WxH\) but the image is 640x360'),
    (dict(points='300,200'), ValueError, r'\(x, y\) pixel pairs'),
    (dict(text='horse ' * 3000), ValueError,
     'exceeds the language model context'),
])
def test_bad_prompts_are_named(inferencer, image_path, prompt, error, match):
    with pytest.raises(error, match=match):
        inferencer(image_path, **prompt)


def test_long_prompt_is_refused_by_the_model(inferencer, image_path):
    # short enough for the text check, too long with the category template
    names = [f'class {i}' for i in range(700)]
    with pytest.raises(ValueError, match='exceeds max_length'):
        inferencer(image_path, categories=names)


def test_unreadable_images_are_named(inferencer, tmp_path):
    missing = str(tmp_path / 'missing.jpg')
    with pytest.raises(FileNotFoundError, match='missing.jpg'):
        inferencer(missing, text='a dog')
    broken = tmp_path / 'broken.jpg'
    broken.write_bytes(b'not an image')
    with pytest.raises(ValueError, match='cannot read image .*broken.jpg'):
        inferencer(str(broken), text='a dog')
    with pytest.raises(ValueError, match=r'\(H, W, 3\)'):
        inferencer(np.zeros((4, 4, 4), np.uint8), text='a dog')


def test_predict_needs_an_image(inferencer):
    inferencer.reset_image()
    with pytest.raises(RuntimeError, match=r'set_image\(...\)'):
        inferencer.predict(text='a dog')
