# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Out-of-domain benchmark configs (paper Sec. 4.5: gRefCOCO, open-vocabulary
ADE20K / Cityscapes / PASCAL-Context / VOC, DAVIS-2017) and VQA.

* every config parses and points at its data, protocol and metrics;
* the class-name files list each dataset's classes in label order (a
  shifted file is refused); PC-459's prompt fits the LLM context;
* PC-459 labels above 255 (300) and its ignore value 65535 survive loading
  (16-bit PNG and TIFF) and the metric ignores 65535;
* Cityscapes instances from ``instanceIds``: the GT as prediction gives
  mask AP = 1 and mIoU = 100;
* ``tools/test.py`` runs a tiny random PSALM through the real configs on
  real fixture data (gRefCOCO with no-target expressions, 3 ADE20K images,
  1 Cityscapes frame, 10 DAVIS frames, 6 VQA questions) and prints finite
  metrics.
"""
import json
import math
import os
import os.path as osp
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple, Optional

import cv2
import mmcv
import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch
from config_testing import (BENCH, PQ_KEYS, SEM_KEYS, benchmark_config,
                            parse_metrics, pipeline_types,
                            save_random_checkpoint, tiny_config)
from mmengine.structures import InstanceData, PixelData
from PIL import Image

import projects.psalm  # noqa: F401
import projects.psalm.datasets.davis  # noqa: F401
from mmdet.evaluation.functional import INSTANCE_OFFSET
from mmdet.registry import DATASETS, LOOPS, METRICS, MODELS, TRANSFORMS
from mmdet.structures.mask import mask2bbox
from mmdet.utils import register_all_modules
from projects.psalm.datasets.ov_semseg import (load_class_names,
                                               prompt_class_names)
from projects.psalm.evaluation.functional import rgb2id
from projects.psalm.evaluation.functional.davis import DAVIS_PALETTE
from projects.psalm.models.lmm.tokenizer import add_tokens, load_tokenizer

GRES = ('grefcoco-val', 'grefcoco-testA', 'grefcoco-testB')
SEMANTIC = {  # name -> (dataset type, class-name file, ignore index)
    'ade20k-150-semantic': ('PSALMADE20KDataset', 'ade150', 255),
    'pascal-context-59': ('PSALMPascalContext59Dataset', 'pascal_context59',
                          255),
    'pascal-context-459': ('PSALMPascalContext459Dataset',
                           'pascal_context459', 65535),
    'pascal-voc-20': ('PSALMPascalVOC20Dataset', 'voc20', 255),
}
ADE_PANOPTIC = 'ade20k-150-panoptic'
CITYSCAPES = 'cityscapes-instance'
DAVIS = 'davis-2017-val'
VQA = 'vqav2-val'
BENCHMARKS = GRES + tuple(SEMANTIC) + (ADE_PANOPTIC, CITYSCAPES, DAVIS, VQA)
NUM_CLASSES = dict(
    ade150=150,
    cityscapes19=19,
    cityscapes_thing8=8,
    pascal_context59=59,
    pascal_context459=459,
    voc20=20)
ADE_IMAGES = ('ADE_val_00000001', 'ADE_val_00000002', 'ADE_val_00000003')
COCO_IMAGES = ('000000142238.jpg', '000000439180.jpg')


# ----------------------------------------------------------------------
# the configs
# ----------------------------------------------------------------------
def test_benchmark_files_match_the_table(repo_root):
    folder = osp.join(repo_root, 'configs', 'benchmarks')
    prefix = 'psalm_swin-b_phi-1.5_test_'
    names = {
        f[len(prefix):-len('.py')]
        for f in os.listdir(folder) if f.startswith(prefix)
    }
    out_of_domain = {
        n for n in names if not n.startswith(('coco-', 'refcoco'))
    }
    assert out_of_domain == set(BENCHMARKS)


@pytest.mark.parametrize('name', BENCHMARKS)
def test_config_points_at_its_benchmark(repo_root, name):
    register_all_modules()
    cfg = benchmark_config(repo_root, name)
    assert cfg.default_scope == 'mmdet'
    assert 'projects.psalm' in cfg.custom_imports.imports
    assert cfg.model.type == 'PSALM'
    assert cfg.model.language_model.pretrained == 'checkpoints/phi-1_5'
    assert cfg.model.data_preprocessor.fixed_size == (1024, 1024)
    loader = cfg.test_dataloader
    assert loader.sampler == dict(type='DefaultSampler', shuffle=False)
    dataset = loader.dataset
    assert dataset.test_mode is True
    pipeline = dataset.pipeline
    for step in pipeline:  # every transform builds with its arguments
        TRANSFORMS.build(step)
    types = pipeline_types(pipeline)
    resize = pipeline[types.index('Resize')]
    assert resize.scale == (1024, 1024) and resize.keep_ratio is True
    assert types[-1] == 'PackPSALMInputs'
    evaluator = cfg.test_evaluator
    metrics = evaluator if isinstance(evaluator, list) else [evaluator]
    for metric in metrics:
        assert METRICS.get(metric.type) is not None, metric.type
    assert LOOPS.get(cfg.test_cfg.type) is not None

    if name in GRES:
        assert dataset.type == 'PSALMGRefCocoDataset'
        assert dataset.split == name.split('-')[1]
        assert dataset.split_file == 'grefcoco/grefs(unc).json'
        assert dataset.protocol == 'per_expression'
        assert cfg.model.test_cfg.gres_threshold == 0.6
        # GT loaded after Resize: original size for the metric
        assert types.index('LoadAnnotations') > types.index('Resize')
        assert 'gt_masks' in pipeline[-1].meta_keys
        assert evaluator == dict(type='GRESMetric')
    elif name in SEMANTIC:
        dataset_type, class_names, ignore_index = SEMANTIC[name]
        assert dataset.type == dataset_type
        assert dataset.class_names == class_names
        assert dataset.task == 'semantic'
        assert cfg.custom_imports.imports == ['projects.psalm']
        # uint16 labels need the uint16-safe loader
        loader_type = 'LoadSemSegAnnotations' if ignore_index == 65535 \
            else 'mmseg.LoadAnnotations'
        assert types == [
            'LoadImageFromFile', 'Resize', loader_type, 'PackPSALMInputs'
        ]
        assert evaluator == dict(
            type='OVSemSegMetric', ignore_index=ignore_index)
    elif name == ADE_PANOPTIC:
        assert dataset.type == 'PSALMOVPanopticDataset'
        assert dataset.task == 'panoptic' and dataset.class_names == 'ade150'
        assert dataset.ann_file == 'ade20k_panoptic_val.json'
        assert types == [
            'LoadImageFromFile', 'Resize', 'LoadPanopticInstances',
            'PackPSALMInputs'
        ]
        assert {'instances', 'segments_info', 'seg_map_path'} <= set(
            pipeline[-1].meta_keys)
        pq, ap = metrics
        assert pq.type == 'PSALMPanopticMetric'
        assert pq.ann_file == dataset.data_root + dataset.ann_file
        assert pq.seg_prefix == dataset.data_root + dataset.data_prefix.seg
        assert ap.type == 'CocoMetric' and 'ann_file' not in ap
    elif name == CITYSCAPES:
        assert dataset.type == 'PSALMCityscapesDataset'
        assert dataset.task == 'panoptic'
        assert dataset.thing_classes == 'cityscapes_thing8'
        assert types == [
            'LoadImageFromFile', 'Resize', 'mmseg.LoadAnnotations',
            'LoadCityscapesInstances', 'PackPSALMInputs'
        ]
        assert 'instances' in pipeline[-1].meta_keys
        assert [m.type for m in metrics] == ['CocoMetric', 'OVSemSegMetric']
        assert metrics[0].metric == 'segm' and 'ann_file' not in metrics[0]
    elif name == DAVIS:
        assert dataset.type == 'PSALMDAVISDataset'
        assert dataset.ann_file == 'ImageSets/2017/val.txt'
        assert dataset.mask_format == 'palette'
        assert loader.batch_size == 1
        assert types == [
            'LoadImageFromFile', 'Resize', 'LoadDAVISAnnotations',
            'PackPSALMInputs'
        ]
        assert cfg.test_cfg == dict(
            type='VOSTestLoop', topk=10, consistency_iou_thr=0.4)
        assert {'frame_id', 'ori_video_length', 'object_ids',
                'ref_frame_ids'} <= set(pipeline[-1].meta_keys)
        assert evaluator.type == 'VOSMetric' and evaluator.output_dir
    else:
        assert dataset.type == 'VQADataset'
        assert loader.batch_size == 1
        assert evaluator == dict(type='VQAMetric')
    if name != DAVIS:
        assert cfg.test_cfg == dict(type='TestLoop')


# ----------------------------------------------------------------------
# class names
# ----------------------------------------------------------------------
def test_class_name_files(repo_root, tmp_path):
    for name, num in NUM_CLASSES.items():
        assert len(load_class_names(name)) == num, name
    ade = prompt_class_names(load_class_names('ade150'))
    assert ade[1] == 'building, edifice'  # synonyms form one name
    pc459 = prompt_class_names(load_class_names('pascal_context459'))
    assert pc459[2] == 'air conditioner'  # > 200 classes: first synonym
    assert prompt_class_names([('a', 'b')], 'first') == ['a']
    with pytest.raises(ValueError, match='synonyms'):
        prompt_class_names([('a', )], 'some')

    # the official (paper-size) prompt of PC-459 fits the 2048 context:
    # text + 256 image tokens + 100 mask tokens
    cfg = benchmark_config(repo_root, 'pascal-context-459')
    tokenizer = load_tokenizer(
        osp.join(repo_root, cfg.model.language_model.tokenizer))
    add_tokens(tokenizer, cfg.model.language_model.added_tokens)
    schema = MODELS.build(
        cfg.model.input_schema, default_args=dict(tokenizer=tokenizer))
    spec = schema.build(dict(task='semantic', class_names=pc459))
    assert len(spec.cond_spans) == 459 + 1  # + background
    assert len(spec.input_ids) - 2 + 256 + 100 <= 2048

    # a file whose lines are shifted is refused by the dataset
    lines = open(osp.join(repo_root, 'projects/psalm/datasets/class_names',
                          'voc20.txt')).read().splitlines()
    names = [line for line in lines if not line.startswith('#')]
    shifted = tmp_path / 'shifted.txt'
    shifted.write_text('\n'.join(names[1:] + names[:1]) + '\n')
    register_all_modules()
    voc = tmp_path / 'voc'
    (voc / 'JPEGImages').mkdir(parents=True)
    (voc / 'val.txt').write_text('x\n')
    with pytest.raises(ValueError, match='label order'):
        DATASETS.build(
            dict(
                type='PSALMPascalVOC20Dataset',
                data_root=str(voc),
                data_prefix=dict(img_path='JPEGImages', seg_map_path='S'),
                ann_file='val.txt',
                class_names=str(shifted)))
    with pytest.raises(ValueError, match='empty class name'):
        bad = tmp_path / 'bad.txt'
        bad.write_text('a, , b\n')
        load_class_names(str(bad))


# ----------------------------------------------------------------------
# PC-459: uint16 labels
# ----------------------------------------------------------------------
@pytest.mark.parametrize('suffix', ['.tif', '.png'])
def test_pc459_uint16_labels_survive_loading(repo_root, data_root, tmp_path,
                                             suffix):
    root = tmp_path / 'pascal_ctx_d2'
    images = root / 'images' / 'validation'
    labels = root / 'annotations_ctx459' / 'validation'
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    image = mmcv.imread(
        osp.join(data_root, 'ade20k_sample', 'images', 'ADE_val_00000003.jpg'))
    height, width = image.shape[:2]
    mmcv.imwrite(image, str(images / 'x.jpg'))
    label = np.full((height, width), 5, dtype=np.uint16)
    label[:100] = 300
    label[-50:] = 65535
    assert cv2.imwrite(str(labels / f'x{suffix}'), label)

    register_all_modules()
    cfg = benchmark_config(repo_root, 'pascal-context-459')
    dataset_cfg = cfg.test_dataloader.dataset
    dataset_cfg.update(data_root=str(root), seg_map_suffix=suffix)
    dataset = DATASETS.build(dataset_cfg)
    assert len(dataset.metainfo['classes']) == 459
    packed = dataset[0]
    sample = packed['data_samples']
    gt = sample.gt_sem_seg.sem_seg[0]
    assert gt.shape == (height, width)  # original size
    np.testing.assert_array_equal(gt.numpy(), label.astype(np.int64))
    assert len(sample.metainfo['prompt']['class_names']) == 459
    assert packed['inputs'].shape[-2:] != (height, width)  # resized image

    # the metric ignores 65535: a prediction wrong only there scores 100
    pred = gt.clone()
    pred[gt == 65535] = 7
    sample.pred_sem_seg = PixelData(sem_seg=pred[None])
    metric = METRICS.build(cfg.test_evaluator)
    metric.dataset_meta = dataset.metainfo
    metric.process({}, [sample.to_dict()])
    results = metric.evaluate(1)
    assert results['sem_seg/mIoU'] == 100.0
    assert results['sem_seg/pACC'] == 100.0


# ----------------------------------------------------------------------
# Cityscapes instances
# ----------------------------------------------------------------------
class Paths(NamedTuple):
    """Where the fixtures of an end-to-end run are."""
    data_root: str
    folder: Optional[str] = None  # the run's own folder
    ade_panoptic: Optional[str] = None  # the `ade_panoptic` fixture


def _cityscapes_on_fixture(cfg, paths):
    dataset = cfg.test_dataloader.dataset
    dataset.data_root = osp.join(paths.data_root, 'cityscapes_sample',
                                 'pseudo_cityscapes_dataset') + '/'
    dataset.data_prefix = dict(img_path='leftImg8bit', seg_map_path='gtFine')
    return cfg


def test_cityscapes_ground_truth_scores_perfectly(repo_root, data_root):
    register_all_modules()
    cfg = _cityscapes_on_fixture(
        benchmark_config(repo_root, CITYSCAPES), Paths(data_root))
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    assert len(dataset) == 1
    sample = dataset[0]['data_samples']
    meta = sample.metainfo
    assert meta['is_thing'] == [False] * 11 + [True] * 8
    ids = np.array(
        Image.open(
            osp.join(data_root, 'cityscapes_sample',
                     'pseudo_cityscapes_dataset', 'gtFine',
                     'frankfurt_000000_000294_gtFine_instanceIds.png')))
    instances = meta['instances']
    values = [v for v in np.unique(ids) if (v // 1000 if v >= 1000 else v) in
              (24, 25, 26, 27, 28, 31, 32, 33)]
    assert len(instances) == len(values) > 0
    crowd = [inst for inst in instances if inst['ignore_flag']]
    assert len(crowd) == sum(v < 1000 for v in values)
    assert all(11 <= inst['bbox_label'] <= 18 for inst in instances)

    # the GT as prediction: mask AP = 1 (mmdet: fraction), mIoU = 100
    objects = [inst for inst in instances if not inst['ignore_flag']]
    masks = torch.from_numpy(
        np.stack([mask_utils.decode(inst['mask'])
                  for inst in objects])).bool()
    sample.pred_instances = InstanceData(
        masks=masks,
        labels=torch.tensor([inst['bbox_label'] for inst in objects]),
        scores=torch.ones(len(objects)),
        bboxes=mask2bbox(masks))
    sample.pred_sem_seg = PixelData(sem_seg=sample.gt_sem_seg.sem_seg.long())
    results = {}
    for metric_cfg in cfg.test_evaluator:
        metric = METRICS.build(metric_cfg)
        metric.dataset_meta = dataset.metainfo
        metric.process({}, [sample.to_dict()])
        results.update(metric.evaluate(1))
    assert results['coco/segm_mAP'] == pytest.approx(1.0)
    assert results['sem_seg/mIoU'] == pytest.approx(100.0)


# ----------------------------------------------------------------------
# ADE20K-150 panoptic / instance
# ----------------------------------------------------------------------
@pytest.fixture(scope='module')
def ade_panoptic(data_root, tmp_path_factory):
    """A COCO-format ADE20K-150 panoptic set (Mask2Former's layout) made
    from the 3 real ADE20K label maps: every class present is a stuff
    segment, except the (synthetic) thing classes, the even class indices,
    whose connected components are instances."""
    root = tmp_path_factory.mktemp('ade_panoptic')
    pngs = root / 'ade20k_panoptic_val'
    pngs.mkdir()
    os.symlink(
        osp.join(data_root, 'ade20k_sample', 'images'),
        root / 'images_validation')
    names = load_class_names('ade150')
    categories = [
        dict(id=k + 1, name=', '.join(n), isthing=int(k % 2 == 0))
        for k, n in enumerate(names)
    ]
    images, annotations = [], []
    for img_id, stem in enumerate(ADE_IMAGES, 1):
        labels = np.array(
            Image.open(
                osp.join(data_root, 'ade20k_sample', 'annotations',
                         f'{stem}.png')))
        pan = np.zeros(labels.shape, dtype=np.int64)
        segments = []
        for label in np.unique(labels).tolist():
            if label == 0:  # "other": VOID
                continue
            mask = (labels == label).astype(np.uint8)
            if categories[label - 1]['isthing']:
                count, parts = cv2.connectedComponents(mask, connectivity=8)
                masks = [parts == k for k in range(1, count)]
            else:
                masks = [mask.astype(bool)]
            for part in masks:
                seg_id = len(segments) + 1
                pan[part] = seg_id
                ys, xs = np.nonzero(part)
                segments.append(
                    dict(
                        id=seg_id,
                        category_id=label,
                        area=int(part.sum()),
                        bbox=[
                            int(xs.min()),
                            int(ys.min()),
                            int(xs.max() - xs.min() + 1),
                            int(ys.max() - ys.min() + 1)
                        ],
                        iscrowd=0))
        rgb = np.stack([pan % 256, pan // 256 % 256, pan // 65536],
                       -1).astype(np.uint8)
        mmcv.imwrite(rgb[..., ::-1], str(pngs / f'{stem}.png'))
        height, width = labels.shape
        images.append(
            dict(id=img_id, file_name=f'{stem}.jpg', height=height,
                 width=width))
        annotations.append(
            dict(image_id=img_id, file_name=f'{stem}.png',
                 segments_info=segments))
    with open(root / 'ade20k_panoptic_val.json', 'w') as f:
        json.dump(
            dict(images=images, annotations=annotations,
                 categories=categories), f)
    return str(root) + '/'


def _ade_panoptic_on_fixture(cfg, paths):
    root = paths.ade_panoptic
    dataset = cfg.test_dataloader.dataset
    dataset.data_root = root
    dataset.data_prefix = dict(
        img='images_validation/', seg='ade20k_panoptic_val/')
    pq = cfg.test_evaluator[0]
    pq.ann_file = root + 'ade20k_panoptic_val.json'
    pq.seg_prefix = root + 'ade20k_panoptic_val/'
    return cfg


def test_ade_panoptic_ground_truth_scores_perfectly(repo_root, ade_panoptic):
    register_all_modules()
    cfg = _ade_panoptic_on_fixture(
        benchmark_config(repo_root, ADE_PANOPTIC),
        Paths('', ade_panoptic=ade_panoptic))
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    assert len(dataset) == 3
    num_classes = len(dataset.metainfo['classes'])
    assert num_classes == 150
    samples = []
    for i in range(len(dataset)):
        sample = dataset[i]['data_samples']
        meta = sample.metainfo
        # the prompt holds the class-name file's synonym strings
        assert meta['prompt']['class_names'][12] == \
            'person, individual, someone, somebody, mortal, soul'
        pan = rgb2id(
            mmcv.imread(osp.join(ade_panoptic, 'ade20k_panoptic_val',
                                 osp.basename(meta['seg_map_path'])),
                        channel_order='rgb'))
        panoptic = np.full(pan.shape, num_classes, dtype=np.int64)
        for k, segment in enumerate(meta['segments_info']):
            thing = meta['is_thing'][segment['category']]
            panoptic[pan == segment['id']] = segment['category'] + (
                (k + 1) * INSTANCE_OFFSET if thing else 0)
        things = meta['instances']
        assert len(things) == sum(
            meta['is_thing'][s['category']] for s in meta['segments_info'])
        masks = torch.from_numpy(
            np.stack([mask_utils.decode(t['mask']) for t in things])).bool()
        sample.pred_panoptic_seg = PixelData(
            sem_seg=torch.from_numpy(panoptic)[None])
        sample.pred_instances = InstanceData(
            masks=masks,
            labels=torch.tensor([t['bbox_label'] for t in things]),
            scores=torch.ones(len(things)),
            bboxes=mask2bbox(masks))
        samples.append(sample.to_dict())
    results = {}
    for metric_cfg in cfg.test_evaluator:
        metric = METRICS.build(metric_cfg)
        metric.dataset_meta = dataset.metainfo
        metric.process({}, samples)
        results.update(metric.evaluate(len(samples)))
    for key in PQ_KEYS:
        assert results[key] == pytest.approx(100.0), key
    assert results['coco/segm_mAP'] == pytest.approx(1.0)


# ----------------------------------------------------------------------
# tools/test.py end to end
# ----------------------------------------------------------------------
def _gres_on_fixture(cfg, paths):
    """gRefCOCO val of the refer-toolkit fixture: 3 refs, 5 expressions,
    2 of them without target."""
    dataset = cfg.test_dataloader.dataset
    dataset.data_root = osp.join(paths.data_root, 'refcoco_sample') + '/'
    dataset.ann_file = 'instances.json'
    dataset.split_file = 'grefs(unc).json'
    dataset.data_prefix = dict(img_path=osp.join(
        paths.data_root, 'coco_panoptic_sample', 'input_images') + '/')
    return cfg


def _ade_on_fixture(cfg, paths):
    dataset = cfg.test_dataloader.dataset
    dataset.data_root = osp.join(paths.data_root, 'ade20k_sample') + '/'
    dataset.data_prefix = dict(img_path='images', seg_map_path='annotations')
    return cfg


def _davis_on_fixture(cfg, paths):
    """The 10 blackswan frames (DAVIS-2016 0/255 masks), every video of the
    folder (no ImageSets file)."""
    dataset = cfg.test_dataloader.dataset
    dataset.data_root = osp.join(paths.data_root, 'davis') + '/'
    dataset.ann_file = ''
    dataset.mask_format = 'binary'
    cfg.test_evaluator.output_dir = osp.join(paths.folder, 'davis_pngs')
    return cfg


def _vqa_on_fixture(cfg, paths):
    """The 6 qa90 questions; their COCO images are stood in for by the two
    fixture images."""
    ann_file = osp.join(paths.data_root, 'llava', 'qa90_vqa_6.json')
    with open(ann_file) as f:
        images = sorted({record['image'] for record in json.load(f)})
    folder = osp.join(paths.folder, 'vqa_images')
    os.mkdir(folder)
    for i, image in enumerate(images):
        os.symlink(
            osp.join(paths.data_root, 'coco_panoptic_sample',
                     'input_images', COCO_IMAGES[i % 2]),
            osp.join(folder, image))
    dataset = cfg.test_dataloader.dataset
    dataset.data_root = ''
    dataset.ann_file = ann_file
    dataset.data_prefix = dict(img_path=folder + '/')
    cfg.model.test_cfg.max_new_tokens = 8
    return cfg


END_TO_END = {
    'grefcoco-val': _gres_on_fixture,
    'ade20k-150-semantic': _ade_on_fixture,
    ADE_PANOPTIC: _ade_panoptic_on_fixture,
    CITYSCAPES: _cityscapes_on_fixture,
    DAVIS: _davis_on_fixture,
    VQA: _vqa_on_fixture,
}


@pytest.fixture(scope='module')
def tools_test_runs(repo_root, data_root, ade_panoptic, tmp_path_factory):
    """Run ``tools/test.py`` on every end-to-end benchmark, two at a time
    (2 CPU cores), with one random tiny PSALM; name -> (log, work folder)."""
    root = tmp_path_factory.mktemp('tools_test')
    checkpoint = str(root / 'tiny_psalm.pth')
    save_random_checkpoint(
        tiny_config(BENCH.format('ade20k-150-semantic'), repo_root),
        checkpoint)
    commands = {}
    for name, on_fixture in END_TO_END.items():
        folder = root / name
        folder.mkdir()
        cfg = on_fixture(
            tiny_config(BENCH.format(name), repo_root),
            Paths(data_root, str(folder), ade_panoptic))
        cfg.test_dataloader.num_workers = 0
        cfg.test_dataloader.persistent_workers = False
        config = str(folder / f'{name}.py')
        cfg.dump(config)
        commands[name] = [
            sys.executable, 'tools/test.py', config, checkpoint, '--work-dir',
            str(folder / 'work')
        ]

    def run(name):
        proc = subprocess.run(
            commands[name],
            cwd=repo_root,
            # two runs on 2 cores: one thread each
            env=dict(os.environ, CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1'),
            capture_output=True,
            text=True,
            timeout=600)
        return name, proc

    runs = {}
    with ThreadPoolExecutor(max_workers=2) as pool:
        for name, proc in pool.map(run, commands):
            if proc.returncode != 0:
                raise AssertionError(
                    f'tools/test.py on {name} failed ({proc.returncode}):\n'
                    f'{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}')
            runs[name] = (proc.stdout + proc.stderr, root / name)
    return runs


def _check(metrics, keys, high=100.0):
    for key in keys:
        assert key in metrics, (key, sorted(metrics))
        value = metrics[key]
        assert math.isfinite(value) and 0 <= value <= high, (key, value)


@pytest.mark.parametrize('name', list(END_TO_END))
def test_tools_test_end_to_end(tools_test_runs, name):
    log, folder = tools_test_runs[name]
    metrics = parse_metrics(log)
    if name == 'grefcoco-val':
        assert 'Generalised referring segmentation results' in log
        _check(metrics, [
            f'gres/{m}' for m in ('cIoU', 'gIoU', 'N-acc', 'T-acc')
        ])
        assert metrics['gres/num_samples'] == 5
        assert metrics['gres/num_no_target'] == 2
    elif name == 'ade20k-150-semantic':
        assert 'Semantic segmentation results' in log
        _check(metrics, SEM_KEYS)
    elif name == ADE_PANOPTIC:
        assert 'Panoptic Evaluation Results' in log
        assert 'segm_mAP_copypaste' in log
        _check(metrics, PQ_KEYS)
        _check(metrics, ['coco/segm_mAP', 'coco/segm_mAP_50'], high=1.0)
    elif name == CITYSCAPES:
        assert 'segm_mAP_copypaste' in log
        assert 'Semantic segmentation results' in log
        _check(metrics, ['coco/segm_mAP', 'coco/segm_mAP_50'], high=1.0)
        _check(metrics, SEM_KEYS)
    elif name == DAVIS:
        assert 'Video object segmentation results' in log
        _check(metrics, ['vos/J', 'vos/F', 'vos/J&F'])
        assert metrics['vos/num_objects'] == 1
        pngs = folder / 'davis_pngs' / 'blackswan'
        assert sorted(os.listdir(pngs)) == [f'{t:05d}.png' for t in range(10)]
        png = Image.open(pngs / '00005.png')
        assert png.mode == 'P' and png.size == (854, 480)
        palette = np.array(png.getpalette(), dtype=np.uint8).reshape(-1, 3)
        np.testing.assert_array_equal(palette, DAVIS_PALETTE)
    else:
        assert 'VQA results' in log
        _check(metrics, ['vqa/exact_match', 'vqa/vqa_acc'])
        assert metrics['vqa/num_samples'] == 6
