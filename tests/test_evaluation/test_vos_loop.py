# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""DAVIS data and the VOS test loop on the real ``blackswan`` frames.

* the dataset gives one sample per frame with the references seen so far;
  an object appearing mid-video gets its first mask as reference there;
* the ground truth, fused and written through the loop's fusion and
  :class:`VOSMetric`, gives DAVIS-palette PNGs equal to the GT and
  J&F = 100 %;
* the loop (tiny random PSALM, in process) writes one DAVIS-palette PNG per
  frame and, per frame, feeds the model the previous frame's fused
  prediction on the previous frame's image (``prompt_inputs``) as the
  visual prompt (spied on the model input), starting from the GT of
  frame 0; a later object's reference joins the prompts the frame after it
  appears.
"""
import os
import os.path as osp

import mmcv
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from config_testing import save_random_checkpoint, tiny_config
from mmengine.dataset import pseudo_collate
from mmengine.runner import Runner
from mmengine.structures import PixelData
from PIL import Image

import projects.psalm.datasets.davis  # noqa: F401
from mmdet.registry import DATASETS, METRICS, MODELS
from mmdet.utils import register_all_modules
from projects.psalm.engine import fuse_object_masks
from projects.psalm.evaluation.functional.davis import (DAVIS_PALETTE,
                                                        save_davis_png)
from projects.psalm.models import PSALM

CONFIG = 'configs/benchmarks/psalm_swin-b_phi-1.5_test_davis-2017-val.py'
NUM_FRAMES = 10
# object 3 of the synthetic two-object video: a box in the water, from frame 2
BOX = (slice(20, 120), slice(40, 200))
BOX_FIRST_FRAME = 2


def _davis_root(data_root):
    return osp.join(data_root, 'davis')


def _blackswan_dataset(data_root, **kwargs):
    """The 10 real blackswan frames (DAVIS-2016 binary masks)."""
    register_all_modules()
    cfg = dict(
        type='PSALMDAVISDataset',
        data_root=_davis_root(data_root),
        mask_format='binary',
        test_mode=True)
    cfg.update(kwargs)
    return DATASETS.build(cfg)


@pytest.fixture(scope='module')
def two_object_video(data_root, tmp_path_factory):
    """blackswan frames 0-5 as a DAVIS-2017 video (palette PNGs): object 1
    is the swan (real GT), object 3 a box that appears at frame 2."""
    root = tmp_path_factory.mktemp('davis2017')
    images = root / 'JPEGImages' / '480p' / 'swanbox'
    annotations = root / 'Annotations' / '480p' / 'swanbox'
    images.mkdir(parents=True)
    src = osp.join(_davis_root(data_root), '{}', '480p', 'blackswan',
                   '{:05d}.{}')
    for t in range(6):
        os.symlink(src.format('JPEGImages', t, 'jpg'),
                   images / f'{t:05d}.jpg')
        ids = (np.array(Image.open(src.format('Annotations', t, 'png'))) >
               0).astype(np.uint8)
        if t >= BOX_FIRST_FRAME:
            assert not ids[BOX].any()  # the box does not hide the swan
            ids[BOX] = 3
        save_davis_png(ids, str(annotations / f'{t:05d}.png'))
    return str(root)


@pytest.fixture(scope='module')
def tiny_checkpoint(repo_root, tmp_path_factory):
    cfg = tiny_config(CONFIG, repo_root)
    path = str(tmp_path_factory.mktemp('tiny') / 'tiny_psalm.pth')
    save_random_checkpoint(cfg, path)
    return path


# ----------------------------------------------------------------------
# data
# ----------------------------------------------------------------------
def test_dataset_frames_and_references(data_root, two_object_video):
    dataset = _blackswan_dataset(data_root)
    assert len(dataset) == NUM_FRAMES
    for t in range(NUM_FRAMES):
        info = dataset.get_data_info(t)
        assert info['img_path'].endswith(f'blackswan/{t:05d}.jpg')
        assert info['frame_id'] == t
        assert info['ori_video_length'] == NUM_FRAMES
        assert info['object_ids'] == [1] and info['ref_frame_ids'] == [0]
        assert info['prompt'] == dict(task='vos')

    register_all_modules()
    dataset = DATASETS.build(
        dict(
            type='PSALMDAVISDataset',
            data_root=two_object_video,
            test_mode=True,
            pipeline=[
                dict(type='LoadImageFromFile'),
                dict(type='Resize', scale=(256, 256), keep_ratio=True),
                dict(type='LoadDAVISAnnotations')
            ]))
    infos = [dataset.get_data_info(t) for t in range(6)]
    assert [i['object_ids'] for i in infos] == [[1], [1]] + [[1, 3]] * 4
    assert infos[-1]['ref_frame_ids'] == [0, BOX_FIRST_FRAME]
    results = dataset[4]
    assert results['gt_seg_map'].shape == (480, 854)
    assert set(np.unique(results['gt_seg_map'])) == {0, 1, 3}
    # the references: object 1 on frame 0, object 3 on frame 2, resized
    prompts = results['prompt_masks']
    assert prompts.shape == (2, 144, 256) and prompts.dtype == bool
    box = np.zeros((480, 854), dtype=np.uint8)
    box[BOX] = 1
    expected = mmcv.imresize(box, (256, 144), interpolation='nearest')
    np.testing.assert_array_equal(prompts[1], expected.astype(bool))

    # palette masks are refused as binary ones and vice versa
    with pytest.raises(ValueError, match='mode P'):
        _blackswan_dataset(data_root, mask_format='palette')


# ----------------------------------------------------------------------
# fusion + writer + metric
# ----------------------------------------------------------------------
def test_fuse_object_masks():
    masks = torch.zeros(2, 4, 4, dtype=torch.bool)
    masks[0, :2] = True
    masks[1, 1:3] = True
    fused = fuse_object_masks(masks, [1, 3], torch.tensor([0.9, 0.5]))
    assert fused.dtype == torch.uint8
    assert fused[0].tolist() == [1] * 4 and fused[1].tolist() == [1] * 4
    assert fused[2].tolist() == [3] * 4 and fused[3].tolist() == [0] * 4
    fused = fuse_object_masks(masks, [1, 3], torch.tensor([0.5, 0.9]))
    assert fused[1].tolist() == [3] * 4  # the higher score wins
    with pytest.raises(ValueError, match='1, 254'):
        fuse_object_masks(masks, [1, 255], torch.ones(2))
    with pytest.raises(ValueError, match='must match'):
        fuse_object_masks(masks, [1], torch.ones(2))


def test_ground_truth_through_writer_and_metric(data_root, tmp_path):
    """GT per-object masks -> fusion -> VOSMetric PNGs + J&F = 100 %."""
    dataset = _blackswan_dataset(
        data_root,
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='Resize', scale=(256, 256), keep_ratio=True),
            dict(type='LoadDAVISAnnotations'),
            dict(
                type='PackPSALMInputs',
                meta_keys=('img_path', 'ori_shape', 'img_shape', 'prompt',
                           'frame_id', 'ori_video_length', 'object_ids'))
        ])
    metric = METRICS.build(dict(type='VOSMetric', output_dir=str(tmp_path)))
    gts = []
    for t in range(len(dataset)):
        sample = dataset[t]['data_samples']
        gt = sample.gt_sem_seg.sem_seg[0]
        object_ids = sample.metainfo['object_ids']
        masks = torch.stack([gt == obj_id for obj_id in object_ids])
        fused = fuse_object_masks(masks, object_ids,
                                  torch.ones(len(object_ids)))
        sample.pred_sem_seg = PixelData(sem_seg=fused[None])
        metric.process({}, [sample.to_dict()])
        gts.append(gt.numpy())
    results = metric.evaluate(len(dataset))
    assert results['vos/J&F'] == 100.0
    assert results['vos/J'] == 100.0 and results['vos/F'] == 100.0
    assert results['vos/num_objects'] == 1
    for t, gt in enumerate(gts):
        png = Image.open(tmp_path / 'blackswan' / f'{t:05d}.png')
        assert png.mode == 'P'
        np.testing.assert_array_equal(np.array(png), gt)
        palette = np.array(png.getpalette(), dtype=np.uint8).reshape(-1, 3)
        np.testing.assert_array_equal(palette, DAVIS_PALETTE)


# ----------------------------------------------------------------------
# the model's prompt images
# ----------------------------------------------------------------------
def test_model_pools_prompts_from_prompt_inputs(repo_root, data_root,
                                                tiny_checkpoint):
    """``prompt_inputs``: the visual prompts are pooled from that image."""
    register_all_modules()
    cfg = tiny_config(CONFIG, repo_root)
    model = MODELS.build(cfg.model)
    model.load_state_dict(
        torch.load(tiny_checkpoint, weights_only=True)['state_dict'])
    model.eval()
    pipeline = cfg.test_dataloader.dataset.pipeline
    dataset = _blackswan_dataset(data_root, pipeline=pipeline)
    frames = [
        model.data_preprocessor(pseudo_collate([dataset[t]]), False)
        for t in (0, 9)
    ]
    inputs0, inputs9 = frames[0]['inputs'], frames[1]['inputs']
    sample0, sample9 = frames[0]['data_samples'][0], frames[1][
        'data_samples'][0]

    def run(inputs, samples):
        with torch.no_grad():
            all_cls, all_masks = model(inputs, samples, mode='tensor')
        return all_cls[-1], all_masks[-1]

    def with_prompt_image(sample, prompt_inputs, **fields):
        query = sample.clone()
        query.prompt_masks = sample0.prompt_masks  # drawn on frame 0
        query.prompt_inputs = prompt_inputs
        for key, value in fields.items():
            query.set_field(value, key)
        return query

    # the prompt image is the image itself: same as without prompt_inputs
    same = run(inputs0, [with_prompt_image(sample0, inputs0)])
    plain = run(inputs0, [sample0])
    for a, b in zip(same, plain):
        torch.testing.assert_close(a, b)
    # frame 9 prompted from frame 0: not the same as pooling frame 9
    across = run(inputs9, [with_prompt_image(sample9, inputs0)])
    own = sample9.clone()
    own.prompt_masks = sample0.prompt_masks
    assert not torch.allclose(across[0], run(inputs9, [own])[0])
    # several prompt images: each prompt names its image
    two = run(inputs9, [
        with_prompt_image(
            sample9,
            torch.cat([inputs9, inputs0]),
            prompt_image_ids=torch.tensor([1]))
    ])
    for a, b in zip(two, across):
        torch.testing.assert_close(a, b)
    # a batch mixes samples with and without prompt images
    mixed = run(
        torch.cat([inputs9, inputs0]),
        [with_prompt_image(sample9, inputs0), sample0])
    torch.testing.assert_close(mixed[0][0], across[0][0])
    torch.testing.assert_close(mixed[0][1], plain[0][0])
    with pytest.raises(ValueError, match='need prompt_image_ids'):
        run(inputs9,
            [with_prompt_image(sample9, torch.cat([inputs9, inputs0]))])
    with pytest.raises(ValueError, match='one index'):
        run(inputs9, [
            with_prompt_image(
                sample9, inputs0, prompt_image_ids=torch.tensor([1]))
        ])


# ----------------------------------------------------------------------
# the loop
# ----------------------------------------------------------------------
class ModelSpy:
    """Record the model inputs of every VOS forward pass (per frame)."""

    def __init__(self, monkeypatch):
        self.calls = {}
        original = PSALM.forward

        def forward(model, inputs, data_samples=None, mode='tensor'):
            sample = data_samples[0]
            self.calls[sample.metainfo['frame_id']] = dict(
                inputs=inputs.clone(),
                prompt_masks=sample.prompt_masks.clone(),
                prompt_inputs=sample.prompt_inputs.clone(),
                prompt_image_ids=sample.prompt_image_ids.clone())
            return original(model, inputs, data_samples, mode)

        monkeypatch.setattr(PSALM, 'forward', forward)


def _run_loop(repo_root, checkpoint, work_dir, dataset_cfg):
    """Run the DAVIS benchmark config (tiny model) in process."""
    register_all_modules()
    cfg = tiny_config(CONFIG, repo_root)
    loader = cfg.test_dataloader
    loader.num_workers = 0
    loader.persistent_workers = False
    loader.dataset.update(dataset_cfg)
    cfg.test_evaluator.output_dir = osp.join(work_dir, 'Annotations')
    cfg.work_dir = work_dir
    cfg.load_from = checkpoint
    cfg.launcher = 'none'
    runner = Runner.from_cfg(cfg)
    metrics = runner.test()
    return runner, metrics


def _preprocessed(runner, index):
    """The model input of a frame, as the loop computes it."""
    dataset = runner.test_dataloader.dataset
    model = runner.model
    data = model.data_preprocessor(pseudo_collate([dataset[index]]), False)
    return data['inputs'], data['data_samples'][0]


def _prompt_from_png(path, obj_id, img_shape, pad_shape):
    """An object's mask in a written PNG, as a padded network-size prompt."""
    ids = np.array(Image.open(path))
    mask = mmcv.imresize((ids == obj_id).astype(np.uint8),
                         img_shape[::-1], interpolation='nearest')
    prompt = torch.from_numpy(mask).bool()
    return F.pad(prompt, (0, pad_shape[1] - img_shape[1], 0,
                          pad_shape[0] - img_shape[0]))


def test_vos_loop_prompts_with_the_previous_prediction(
        repo_root, data_root, tiny_checkpoint, tmp_path, monkeypatch):
    spy = ModelSpy(monkeypatch)
    work_dir = str(tmp_path)
    runner, metrics = _run_loop(
        repo_root, tiny_checkpoint, work_dir,
        dict(
            data_root=_davis_root(data_root), ann_file='',
            mask_format='binary'))
    for key in ('vos/J', 'vos/F', 'vos/J&F'):
        assert np.isfinite(metrics[key]) and 0 <= metrics[key] <= 100
    assert metrics['vos/num_objects'] == 1

    # one DAVIS-palette PNG per frame, frame 0 = the reference
    out = osp.join(work_dir, 'Annotations', 'blackswan')
    assert sorted(os.listdir(out)) == [
        f'{t:05d}.png' for t in range(NUM_FRAMES)
    ]
    pngs = [osp.join(out, f'{t:05d}.png') for t in range(NUM_FRAMES)]
    for path in pngs:
        png = Image.open(path)
        assert png.mode == 'P'
        palette = np.array(png.getpalette(), dtype=np.uint8).reshape(-1, 3)
        np.testing.assert_array_equal(palette, DAVIS_PALETTE)
        assert set(np.unique(np.array(png))) <= {0, 1}
    gt0 = np.array(Image.open(
        osp.join(_davis_root(data_root), 'Annotations', '480p', 'blackswan',
                 '00000.png'))) > 0
    np.testing.assert_array_equal(np.array(Image.open(pngs[0])), gt0)

    # frame 0 needs no model pass; every later frame is predicted from the
    # memory: the last frame whose fused prediction was not empty
    assert sorted(spy.calls) == list(range(1, NUM_FRAMES))
    inputs0, sample0 = _preprocessed(runner, 0)
    img_shape = sample0.metainfo['img_shape']
    pad_shape = inputs0.shape[-2:]
    memory = 0
    from_previous_prediction = 0
    for t in range(1, NUM_FRAMES):
        call = spy.calls[t]
        inputs_t, _ = _preprocessed(runner, t)
        torch.testing.assert_close(call['inputs'], inputs_t)
        assert call['prompt_image_ids'].tolist() == [0]
        expected_image = inputs0 if memory == 0 else spy.calls[memory][
            'inputs']
        torch.testing.assert_close(call['prompt_inputs'], expected_image)
        if memory == 0:  # the GT reference of frame 0
            expected_mask = sample0.prompt_masks[0]
        else:  # the fused prediction written for the memory frame
            expected_mask = _prompt_from_png(pngs[memory], 1, img_shape,
                                             pad_shape)
            from_previous_prediction += memory == t - 1
        assert torch.equal(call['prompt_masks'][0], expected_mask)
        if _prompt_from_png(pngs[t], 1, img_shape, pad_shape).any():
            memory = t
    # the random model segments something, so the path was exercised
    assert from_previous_prediction >= 1

    # frames must come in order
    loop = runner.test_loop
    loop._reset(None)
    batch = pseudo_collate([runner.test_dataloader.dataset[3]])
    with pytest.raises(ValueError, match='in order'):
        loop.predict_frame(batch)


def test_vos_loop_object_appearing_mid_video(repo_root, tiny_checkpoint,
                                             two_object_video, tmp_path,
                                             monkeypatch):
    spy = ModelSpy(monkeypatch)
    work_dir = str(tmp_path)
    runner, metrics = _run_loop(repo_root, tiny_checkpoint, work_dir,
                                dict(data_root=two_object_video, ann_file=''))
    assert metrics['vos/num_objects'] == 2
    out = osp.join(work_dir, 'Annotations', 'swanbox')
    # on its first frame, object 3 is its reference (the GT box)
    first = np.array(Image.open(osp.join(out, '00002.png')))
    assert (first == 3).sum() == first[BOX].size and (first[BOX] == 3).all()
    # it is prompted from the next frame on; before, only the swan is
    assert [len(spy.calls[t]['prompt_masks']) for t in range(1, 6)] == \
        [1, 1, 2, 2, 2]
    call = spy.calls[3]
    inputs2, sample2 = _preprocessed(runner, BOX_FIRST_FRAME)
    # object 3's reference lives on frame 2: its prompt image is frame 2
    box_image = call['prompt_inputs'][call['prompt_image_ids'][1]]
    torch.testing.assert_close(box_image, inputs2[0])
    assert torch.equal(call['prompt_masks'][1], sample2.prompt_masks[1])
