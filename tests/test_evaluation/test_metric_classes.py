# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Every PSALM metric end to end (registry -> Evaluator -> results), plus
the mmdet / mmseg metrics PSALM reuses, on real samples."""
import copy
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmdet.evaluation import CocoMetric
from mmdet.registry import METRICS
from mmdet.structures import DetDataSample, TrackDataSample
from mmdet.structures.mask import BitmapMasks
from mmengine.evaluator import Evaluator
from mmengine.structures import InstanceData, PixelData
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from projects.psalm.evaluation.functional.panoptic_quality import rgb2id
from projects.psalm.evaluation.metrics import (GRESMetric,
                                               InteractiveSegMetric,
                                               PSALMPanopticMetric,
                                               ReferSegMetric, VOSMetric,
                                               VQAMetric)

DATA = osp.join(osp.dirname(__file__), '..', 'data')
PANOPTIC = osp.join(DATA, 'coco_panoptic_sample')


def evaluate(cfg: dict, data_samples: list, dataset_meta=None) -> dict:
    """Build a metric from the mmdet registry and run it like tools/test.py.

    Returns the metrics without their prefix.
    """
    evaluator = Evaluator([METRICS.build(cfg)])
    if dataset_meta is not None:
        evaluator.dataset_meta = dataset_meta
    evaluator.process(data_samples)
    results = evaluator.evaluate(len(data_samples))
    return {k.split('/', 1)[1]: v for k, v in results.items()}


def mask_sample(pred: np.ndarray, gt: np.ndarray, **metainfo) -> DetDataSample:
    """A DetDataSample with pred_instances.masks and gt_masks (N, H, W)."""
    sample = DetDataSample(
        metainfo=dict(
            gt_masks=BitmapMasks(gt.astype(np.uint8), *gt.shape[1:]),
            **metainfo))
    sample.pred_instances = InstanceData(masks=torch.from_numpy(pred))
    return sample


def blocks(pred_slices, gt_slices, size=10) -> tuple:
    """Stack (N, size, size) masks, each filled on its slice (None = empty)."""
    out = []
    for slices in (pred_slices, gt_slices):
        masks = np.zeros((len(slices), size, size), dtype=bool)
        for mask, region in zip(masks, slices):
            if region is not None:
                mask[region] = True
        out.append(masks)
    return tuple(out)


BLOCK = np.s_[2:6, 2:6]  # 16 px
FULL = np.s_[:, :]  # 100 px
HALF = np.s_[:5, :]  # 50 px


def test_refer_seg_metric_several_expressions_per_image():
    # image a: expression 0 exact (16 / 16), expression 1 half (50 / 100);
    # image b: one expression, both empty (IoU := 1).
    # cIoU = 66 / 116, mIoU = (1 + 0.5 + 1) / 3.
    image_a = mask_sample(*blocks([BLOCK, HALF], [BLOCK, FULL]),
                          img_path='a.jpg')
    image_b = mask_sample(*blocks([None], [None]), img_path='b.jpg')
    result = evaluate(dict(type='ReferSegMetric'), [image_a, image_b])
    assert result == pytest.approx(
        dict(cIoU=100 * 66 / 116, mIoU=100 * 5 / 6, num_samples=3))

    bad = mask_sample(*blocks([BLOCK], [BLOCK, FULL]), img_path='bad.jpg')
    with pytest.raises(ValueError, match="img_path='bad.jpg'"):
        ReferSegMetric().process({}, [bad.to_dict()])


def test_gres_metric_counts_no_target_samples():
    # 5 expressions; targets are rows 0-2 (30 px), no-target GT is empty.
    #   0: no target, empty prediction   -> TN, IoU 1
    #   1: no target, 12 px predicted    -> FP, IoU 0
    #   2: target, 25 px inside it       -> TP, IoU 25/30
    #   3: target, 5 px inside it        -> TP, IoU 5/30
    #   4: target, empty prediction      -> FN, IoU 0
    # cIoU = (25 + 5) / (12 + 30 + 30 + 30), gIoU = (1 + 5/6 + 1/6) / 5,
    # N-acc = 1/2, T-acc = 2/3.
    pred = np.zeros((5, 10, 10), dtype=bool)
    pred[1, 5:7, 0:6] = True
    pred[2, 0:2, :] = True
    pred[2, 2, 0:5] = True
    pred[3, 0, 0:5] = True
    gt = np.zeros_like(pred)
    gt[2:, 0:3, :] = True
    samples = [
        mask_sample(pred[:3], gt[:3], img_path='a.jpg'),
        mask_sample(pred[3:], gt[3:], img_path='b.jpg')
    ]
    result = evaluate(dict(type='GRESMetric'), samples)
    assert result == pytest.approx({
        'cIoU': 100 * 30 / 102,
        'gIoU': 100 * 2 / 5,
        'N-acc': 50.0,
        'T-acc': 100 * 2 / 3,
        'num_samples': 5,
        'num_no_target': 2
    })


def test_interactive_metric_per_prompt_type_and_skipped():
    point = mask_sample(*blocks([BLOCK, HALF], [BLOCK, FULL]),
                        img_path='a.jpg', prompt_type='point')
    box = mask_sample(*blocks([FULL], [HALF]),
                      img_path='b.jpg', prompt_type=['box'])
    skipped = mask_sample(*blocks([], []), img_path='c.jpg',
                          prompt_type='scribble')
    result = evaluate(dict(type='InteractiveSegMetric'),
                      [point, box, skipped])
    assert result == pytest.approx({
        'mIoU': 100 * 2 / 3,
        'cIoU': 100 * 116 / 216,
        'mIoU_point': 75.0,
        'cIoU_point': 100 * 66 / 116,
        'mIoU_box': 50.0,
        'cIoU_box': 50.0,
        'num_regions': 3,
        'num_skipped': 1
    })
    bad = mask_sample(*blocks([FULL], [HALF]), img_path='d.jpg',
                      prompt_type='lasso')
    with pytest.raises(ValueError, match="'d.jpg'.*lasso"):
        InteractiveSegMetric().process({}, [bad.to_dict()])


def blackswan_frames(pred_override=None) -> list:
    """10 real DAVIS frames as DetDataSamples; the prediction is the GT."""
    frames = []
    for t in range(10):
        gt = np.array(
            Image.open(
                osp.join(DATA, 'davis', 'Annotations', '480p', 'blackswan',
                         f'{t:05d}.png')))
        gt = torch.from_numpy((gt > 0).astype(np.uint8))[None]
        pred = gt.clone()
        if pred_override is not None and t in pred_override:
            pred[:] = pred_override[t]
        frame = DetDataSample(
            metainfo=dict(
                img_path=f'JPEGImages/480p/blackswan/{t:05d}.jpg',
                frame_id=t,
                ori_video_length=10))
        frame.gt_sem_seg = PixelData(sem_seg=gt)
        frame.pred_sem_seg = PixelData(sem_seg=pred)
        frames.append(frame)
    return frames


def test_vos_metric_video_mode_writes_davis_pngs(tmp_path):
    frames = blackswan_frames()
    video = TrackDataSample()
    video.video_data_samples = frames
    result = evaluate(dict(type='VOSMetric', output_dir=str(tmp_path)),
                      [video])
    assert result == {'J': 100.0, 'F': 100.0, 'J&F': 100.0, 'num_objects': 1}
    for t, frame in enumerate(frames):
        png = Image.open(tmp_path / 'blackswan' / f'{t:05d}.png')
        assert png.mode == 'P'
        np.testing.assert_array_equal(
            np.array(png), frame.pred_sem_seg.sem_seg[0].numpy())


def test_vos_metric_frame_by_frame():
    # frames 0 and 9 (excluded) and 5 predicted empty: J = F = 7 / 8
    frames = blackswan_frames(pred_override={0: 0, 5: 0, 9: 0})
    result = evaluate(dict(type='VOSMetric'), frames)
    assert result == pytest.approx({
        'J': 87.5,
        'F': 87.5,
        'J&F': 87.5,
        'num_objects': 1
    })
    metric = VOSMetric()
    metric.process({}, [f.to_dict() for f in frames[:9]])
    with pytest.raises(RuntimeError, match="'blackswan': 9"):
        metric.evaluate(9)


def test_vqa_metric():
    samples = []
    for pred, answers in (('Two', '2'), ('yes', ['yes'] * 3 + ['no'] * 7),
                          ('cat', 'dog')):
        sample = DetDataSample(metainfo=dict(gt_answers=answers))
        sample.pred_text = pred
        samples.append(sample)
    result = evaluate(dict(type='VQAMetric'), samples)
    assert result == pytest.approx({
        'exact_match': 100 * 2 / 3,
        'vqa_acc': 100 * 1.9 / 3,
        'num_samples': 3
    })
    with pytest.raises(KeyError, match="'pred_text'"):
        VQAMetric().process({}, [dict(img_id=3, gt_answers='2')])


def panoptic_meta() -> tuple:
    ann = json.load(open(osp.join(PANOPTIC, 'panoptic_examples.json')))
    classes = tuple(c['name'] for c in ann['categories'])
    thing_classes = tuple(c['name'] for c in ann['categories']
                          if c['isthing'])
    return ann, dict(classes=classes, thing_classes=thing_classes)


def test_panoptic_metric_gt_vs_gt_is_100():
    ann, meta = panoptic_meta()
    label_of = {c['id']: i for i, c in enumerate(ann['categories'])}
    isthing = {c['id']: c['isthing'] for c in ann['categories']}
    images = {image['id']: image for image in ann['images']}
    samples = []
    for image_ann in ann['annotations']:
        ids = rgb2id(
            np.array(
                Image.open(
                    osp.join(PANOPTIC, 'panoptic_examples',
                             image_ann['file_name']))))
        # mmdet's encoding: label + instance * 1000; VOID = len(classes)
        pan = np.full(ids.shape, len(meta['classes']), dtype=np.int64)
        for k, segment in enumerate(image_ann['segments_info']):
            label = label_of[segment['category_id']]
            instance = k + 1 if isthing[segment['category_id']] else 0
            pan[ids == segment['id']] = label + instance * 1000
        image = images[image_ann['image_id']]
        sample = DetDataSample(
            metainfo=dict(
                img_id=image['id'],
                img_path=image['file_name'],
                ori_shape=(image['height'], image['width'])))
        sample.pred_panoptic_seg = PixelData(
            sem_seg=torch.from_numpy(pan)[None])
        samples.append(sample)
    result = evaluate(
        dict(
            type='PSALMPanopticMetric',
            ann_file=osp.join(PANOPTIC, 'panoptic_examples.json'),
            seg_prefix=osp.join(PANOPTIC, 'panoptic_examples')), samples,
        meta)
    assert result == pytest.approx({
        k: 100.0
        for k in ('PQ', 'SQ', 'RQ', 'PQ_th', 'SQ_th', 'RQ_th', 'PQ_st',
                  'SQ_st', 'RQ_st')
    })


@pytest.mark.parametrize('shift_ids,expected_map', [(1, 1.0), (0, 0.99)])
def test_coco_instance_map_gt_as_prediction_matches_pycocotools(
        tmp_path, shift_ids, expected_map):
    """GT-as-prediction segm mAP, mmdet CocoMetric vs COCOeval directly.

    The sample json numbers its annotations from 0, but COCOeval stores the
    matched gt id in ``dtMatches`` with 0 meaning "unmatched", so annotation
    0 (a person) counts as missed: person AP = 25/26 at every threshold and
    mAP = 0.99. With ids from 1 (as COCO requires) the mAP is 1.0. Both
    implementations agree either way.
    """
    ann = json.load(
        open(osp.join(PANOPTIC, 'panoptic_coco_detection_format.json')))
    for a in ann['annotations']:
        a['id'] += shift_ids
    ann_file = str(tmp_path / 'instances.json')
    json.dump(ann, open(ann_file, 'w'))
    classes = tuple(c['name'] for c in ann['categories'])
    label_of = {c['id']: i for i, c in enumerate(ann['categories'])}
    samples = []
    for image in ann['images']:
        anns = [a for a in ann['annotations'] if a['image_id'] == image['id']]
        # shape (N, H, W)
        masks = np.stack([mask_utils.decode(a['segmentation']) for a in anns])
        boxes = np.array([a['bbox'] for a in anns], dtype=np.float32)
        boxes[:, 2:] += boxes[:, :2]  # xywh -> xyxy
        sample = DetDataSample(
            metainfo=dict(
                img_id=image['id'],
                ori_shape=(image['height'], image['width'])))
        sample.pred_instances = InstanceData(
            masks=torch.from_numpy(masks).bool(),
            bboxes=torch.from_numpy(boxes),
            scores=torch.ones(len(anns)),
            labels=torch.tensor([label_of[a['category_id']] for a in anns]))
        samples.append(sample)
    evaluator = Evaluator(CocoMetric(ann_file=ann_file, metric='segm'))
    evaluator.dataset_meta = dict(classes=classes)
    evaluator.process(samples)
    result = evaluator.evaluate(len(samples))

    coco = COCO(ann_file)
    detections = [
        dict(
            image_id=a['image_id'],
            category_id=a['category_id'],
            segmentation=copy.deepcopy(a['segmentation']),
            score=1.0) for a in ann['annotations']
    ]
    coco_eval = COCOeval(coco, coco.loadRes(detections), 'segm')
    coco_eval.evaluate()
    coco_eval.accumulate()
    coco_eval.summarize()
    assert round(coco_eval.stats[0], 3) == expected_map
    for i, key in enumerate(('mAP', 'mAP_50', 'mAP_75', 'mAP_s', 'mAP_m',
                             'mAP_l')):
        assert result[f'coco/segm_{key}'] == round(coco_eval.stats[i], 3)


def test_ade20k_miou_with_reduce_zero_label_is_100():
    import mmseg.datasets  # noqa: F401  (registers the ADE20K meta)
    from mmseg.datasets import ADE20KDataset
    from mmseg.datasets.transforms import LoadAnnotations
    from mmseg.evaluation import IoUMetric
    from mmseg.structures import SegDataSample

    def load(folder: str, name: str) -> torch.Tensor:
        # ADE label 0 ("other") -> 255 (ignored), 1..150 -> 0..149
        results = LoadAnnotations()(
            dict(
                seg_map_path=osp.join(DATA, 'ade20k_sample', folder, name),
                reduce_zero_label=True,
                seg_fields=[]))
        return torch.from_numpy(results['gt_seg_map'].astype(np.int64))[None]

    samples = []
    for i in (1, 2, 3):
        name = f'ADE_val_0000000{i}.png'
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=load('annotations', name))
        sample.pred_sem_seg = PixelData(data=load('predictions', name))
        samples.append(sample)
    assert all((s.gt_sem_seg.data == 255).any() for s in samples)
    evaluator = Evaluator(IoUMetric(iou_metrics=['mIoU']))
    evaluator.dataset_meta = ADE20KDataset.METAINFO
    evaluator.process(samples)
    result = evaluator.evaluate(len(samples))
    assert result['mIoU'] == 100.0 and result['aAcc'] == 100.0


def test_metric_classes_are_registered():
    for cls in (PSALMPanopticMetric, ReferSegMetric, GRESMetric,
                InteractiveSegMetric, VOSMetric, VQAMetric):
        assert METRICS.get(cls.__name__) is cls
