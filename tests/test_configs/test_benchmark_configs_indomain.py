# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""In-domain benchmark configs (COCO panoptic, RefCOCO/+/g, COCO-Interactive).

* every config parses and points at the right data, protocol and metrics;
* the COCO panoptic evaluator, fed the ground truth as prediction, gives
  PQ = 100, mask AP = 100 % and mIoU = 100 (and the detectron2 mIoU rule);
* batched evaluation (batch 4) gives every sample the outputs of batch 1;
* ``tools/test.py`` (and ``tools/dist_test.sh`` with 2 CPU processes) runs a
  tiny random PSALM through the real configs on the fixture images and
  prints finite metrics in [0, 100].
"""
import json
import math
import os
import os.path as osp
import subprocess
import sys

import mmcv
import mmengine
import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch
from config_testing import (BENCH, PQ_KEYS, SEM_KEYS, benchmark_config,
                            parse_metrics, pipeline_types,
                            save_random_checkpoint, tiny_config)
from mmengine.dataset import pseudo_collate
from mmengine.structures import InstanceData, PixelData
from psalm_testing import load_tool

import projects.psalm  # noqa: F401
from mmdet.evaluation.functional import INSTANCE_OFFSET
from mmdet.registry import DATASETS, METRICS, MODELS, TRANSFORMS
from mmdet.structures.mask import mask2bbox
from mmdet.utils import register_all_modules
from projects.psalm.evaluation.functional import rgb2id

PANOPTIC = 'coco-panoptic'
# RefCOCO benchmarks: name -> (folder, refs file, split)
REFCOCO_SPLITS = (('refcoco', 'refs(unc).p', ('val', 'testA', 'testB')),
                  ('refcoco+', 'refs(unc).p', ('val', 'testA', 'testB')),
                  ('refcocog', 'refs(umd).p', ('val', 'test')))
REFCOCO = {
    f'{name}-{split}': (name, refs, split)
    for name, refs, splits in REFCOCO_SPLITS for split in splits
}
PROMPT_TYPES = ('point', 'scribble', 'box', 'mask')
BENCHMARKS = ([PANOPTIC] + list(REFCOCO) + [f'{b}-merged' for b in REFCOCO] +
              [f'coco-interactive-{t}' for t in PROMPT_TYPES])

PAN = 'coco_panoptic_sample'
REF = 'refcoco_sample'
AP_KEYS = ['coco/segm_mAP', 'coco/segm_mAP_50', 'coco/segm_mAP_75']


# ----------------------------------------------------------------------
# the configs
# ----------------------------------------------------------------------
def test_benchmark_files_match_the_table(repo_root):
    """Every in-domain benchmark has its config, and no other exists."""
    folder = osp.join(repo_root, 'configs', 'benchmarks')
    prefix = 'psalm_swin-b_phi-1.5_test_'
    names = [
        f[len(prefix):-len('.py')] for f in os.listdir(folder)
        if f.startswith(prefix)
    ]
    in_domain = {n for n in names if n.startswith(('coco-', 'refcoco'))}
    assert in_domain == set(BENCHMARKS)


@pytest.mark.parametrize('name', BENCHMARKS)
def test_config_points_at_its_benchmark(repo_root, name):
    register_all_modules()
    cfg = benchmark_config(repo_root, name)
    # runtime and the paper-size model with the Sec. 5 test thresholds
    assert cfg.default_scope == 'mmdet'
    assert 'projects.psalm' in cfg.custom_imports.imports
    assert cfg.test_cfg == dict(type='TestLoop')
    assert cfg.model.type == 'PSALM'
    assert cfg.model.backbone.embed_dims == 128
    assert cfg.model.language_model.pretrained == 'checkpoints/phi-1_5'
    assert cfg.model.data_preprocessor.fixed_size == (1024, 1024)
    assert cfg.model.test_cfg.object_mask_thr == 0.8
    assert cfg.model.test_cfg.iou_thr == 0.8
    assert cfg.model.test_cfg.max_per_image == 100
    # one task per benchmark: batches of 4, in order, every sample once
    loader = cfg.test_dataloader
    assert loader.batch_size == 4
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

    if name == PANOPTIC:
        root = dataset.data_root
        assert dataset.type == 'PSALMCocoPanopticDataset'
        assert dataset.task == 'panoptic'
        assert root == 'data/coco/'
        assert dataset.ann_file == 'annotations/panoptic_val2017.json'
        assert dataset.data_prefix == dict(
            img='val2017/', seg='annotations/panoptic_val2017/')
        # the default meta keys carry segments_info and seg_map_path
        assert types == ['LoadImageFromFile', 'Resize', 'PackPSALMInputs']
        assert 'meta_keys' not in pipeline[-1]
        pq, ap, sem = evaluator
        assert pq.type == 'PSALMPanopticMetric'
        assert pq.ann_file == root + dataset.ann_file
        assert pq.seg_prefix == root + dataset.data_prefix.seg
        assert ap.type == 'CocoMetric' and ap.metric == 'segm'
        assert ap.ann_file == root + 'annotations/instances_val2017.json'
        assert sem.type == 'PanopticSemSegMetric'
        assert cfg.model.input_schema.merge_sentences is False
    elif name.startswith('refcoco'):
        merged = name.endswith('-merged')
        folder, refs, split = REFCOCO[name.replace('-merged', '')]
        assert dataset.type == 'PSALMRefCocoDataset'
        assert dataset.data_root == 'data/coco/'
        assert dataset.data_prefix == dict(img_path='train2014/')
        assert dataset.ann_file == f'{folder}/instances.json'
        assert dataset.split_file == f'{folder}/{refs}'
        assert dataset.split == split
        assert dataset.protocol == ('merged' if merged else 'per_expression')
        # merged prompts hold every expression of the referent
        assert cfg.model.input_schema.merge_sentences is merged
        # GT masks loaded after Resize (original size) for the metric
        assert types.index('LoadAnnotations') > types.index('Resize')
        assert 'gt_masks' in pipeline[-1].meta_keys
        assert evaluator == dict(type='ReferSegMetric')
    else:
        prompt_type = name.split('-')[-1]
        assert dataset.type == 'COCOInteractiveDataset'
        assert dataset.data_root == 'data/coco/'
        assert dataset.ann_file == \
            'annotations/coco_interactive_val_psalm.json'
        assert dataset.data_prefix == dict(img='val2017/')
        assert dataset.prompt_type == prompt_type
        assert types == [
            'LoadImageFromFile', 'LoadVisualPrompts', 'Resize',
            'ResizeVisualPrompts', 'LoadAnnotations', 'PackPSALMInputs'
        ]
        assert pipeline[3].skip_empty is True
        assert {'gt_masks', 'prompt_type'} <= set(pipeline[-1].meta_keys)
        assert evaluator == dict(
            type='InteractiveSegMetric', prompt_types=(prompt_type, ))
        assert cfg.model.input_schema.merge_sentences is False
    for metric in evaluator if isinstance(evaluator, list) else [evaluator]:
        assert METRICS.get(metric.type) is not None, metric.type


# ----------------------------------------------------------------------
# fixture data in the configs
# ----------------------------------------------------------------------
def _panoptic_on_fixture(cfg, data_root, instances_json):
    """Point the COCO panoptic config at the 2-image fixture."""
    root = osp.join(data_root, PAN) + '/'
    dataset = cfg.test_dataloader.dataset
    dataset.data_root = root
    dataset.ann_file = 'panoptic_examples.json'
    dataset.data_prefix = dict(img='input_images/', seg='panoptic_examples/')
    pq, ap, _ = cfg.test_evaluator
    pq.ann_file = root + 'panoptic_examples.json'
    pq.seg_prefix = root + 'panoptic_examples/'
    ap.ann_file = instances_json
    return cfg


def _refcoco_on_fixture(cfg, data_root):
    """Point a RefCOCO config at the refer-toolkit fixture (val: 3 refs,
    7 expressions, on the two COCO images)."""
    dataset = cfg.test_dataloader.dataset
    dataset.data_root = osp.join(data_root, REF) + '/'
    dataset.ann_file = 'instances.json'
    dataset.split_file = 'refs(unc).p'
    dataset.data_prefix = dict(
        img_path=osp.join(data_root, PAN, 'input_images') + '/')
    return cfg


def _interactive_on_fixture(cfg, data_root, ann_file):
    """Point a COCO-Interactive config at a json built from the fixture."""
    dataset = cfg.test_dataloader.dataset
    dataset.data_root = ''
    dataset.ann_file = ann_file
    dataset.data_prefix = dict(img=osp.join(data_root, PAN, 'input_images'))
    return cfg


@pytest.fixture(scope='module')
def fixture_tree(repo_root, tmp_path_factory):
    """The README's data/ tree made of the fixtures by
    tools/misc/prepare_fixture_data.py; returns its paths."""
    module = load_tool('tools/misc/prepare_fixture_data.py')
    return module.prepare(str(tmp_path_factory.mktemp('data')))


@pytest.fixture(scope='module')
def instances_json(fixture_tree):
    """The COCO instance json of the two images (80 thing classes), its
    annotation ids + 1: pycocotools counts a detection matched to the
    annotation of id 0 as a false positive (real COCO ids start at 1).
    (``instances_val2017.json`` of the fixture tree.)"""
    return fixture_tree['instances_val']


@pytest.fixture(scope='module')
def interactive_json(fixture_tree):
    """COCO-Interactive json of the 2 fixture images (47 regions), built by
    the dataset converter with seed 0 (``coco_interactive_val_psalm.json``
    of the fixture tree)."""
    return fixture_tree['interactive_val']


# ----------------------------------------------------------------------
# ground truth as prediction
# ----------------------------------------------------------------------
def _gt_predictions(data_root, sample, classes):
    """Panoptic, instance and semantic predictions equal to the GT."""
    root = osp.join(data_root, PAN)
    with open(osp.join(root, 'panoptic_examples.json')) as f:
        pan_json = json.load(f)
    with open(osp.join(data_root, REF, 'instances.json')) as f:
        ins_json = json.load(f)
    cat2label = {c['id']: i for i, c in enumerate(pan_json['categories'])}
    is_thing = {c['id']: c['isthing'] for c in pan_json['categories']}
    img_id = sample.metainfo['img_id']
    ann = next(a for a in pan_json['annotations'] if a['image_id'] == img_id)
    pan = rgb2id(
        mmcv.imread(
            osp.join(root, 'panoptic_examples', ann['file_name']),
            channel_order='rgb'))
    num_classes = len(classes)
    panoptic = np.full(pan.shape, num_classes, dtype=np.int64)  # VOID
    semantic = np.zeros(pan.shape, dtype=np.int64)  # VOID: ignored
    for k, seg in enumerate(ann['segments_info']):
        mask = pan == seg['id']
        label = cat2label[seg['category_id']]
        semantic[mask] = label  # crowd included (Mask2Former's maps)
        if not seg['iscrowd']:
            instance = k + 1 if is_thing[seg['category_id']] else 0
            panoptic[mask] = label + instance * INSTANCE_OFFSET
    names = {c['id']: c['name'] for c in ins_json['categories']}
    anns = [
        a for a in ins_json['annotations']
        if a['image_id'] == img_id and not a['iscrowd']
    ]
    masks = torch.from_numpy(
        np.stack([mask_utils.decode(a['segmentation']) for a in anns
                  ])).bool()
    sample.pred_panoptic_seg = PixelData(
        sem_seg=torch.from_numpy(panoptic)[None])
    sample.pred_instances = InstanceData(
        masks=masks,
        labels=torch.tensor(
            [classes.index(names[a['category_id']]) for a in anns]),
        scores=torch.ones(len(anns)),
        bboxes=mask2bbox(masks))
    sample.pred_sem_seg = PixelData(sem_seg=torch.from_numpy(semantic)[None])
    return sample


def _evaluate(cfg, samples, metainfo):
    results = {}
    for metric_cfg in cfg.test_evaluator:
        metric = METRICS.build(metric_cfg)
        metric.dataset_meta = metainfo
        metric.process({}, [s.to_dict() for s in samples])
        results.update(metric.evaluate(len(samples)))
    return results


def test_panoptic_evaluator_on_ground_truth(repo_root, data_root,
                                           instances_json):
    register_all_modules()
    cfg = _panoptic_on_fixture(benchmark_config(repo_root, PANOPTIC), data_root,
                               instances_json)
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    classes = list(dataset.metainfo['classes'])
    samples = [
        _gt_predictions(data_root, dataset[i]['data_samples'], classes)
        for i in range(len(dataset))
    ]
    results = _evaluate(cfg, samples, dataset.metainfo)
    for key in PQ_KEYS + SEM_KEYS:
        assert results[key] == pytest.approx(100.0), key
    assert results['coco/segm_mAP'] == pytest.approx(1.0)  # mmdet: 0-1

    # detectron2's mIoU averages the classes with GT pixels only: give the
    # pixels of one GT class to a class absent from the GT
    gt_labels = set()
    for sample in samples:
        gt_labels |= {s['category'] for s in sample.metainfo['segments_info']}
    moved, absent = min(gt_labels), min(set(range(len(classes))) - gt_labels)
    for sample in samples:
        sem = sample.pred_sem_seg.sem_seg
        sem[sem == moved] = absent
    metric = METRICS.build(dict(cfg.test_evaluator[2], classwise=True))
    metric.dataset_meta = dataset.metainfo
    metric.process({}, [s.to_dict() for s in samples])
    results = metric.evaluate(len(samples))
    num = len(gt_labels)
    assert results['sem_seg/mIoU'] == pytest.approx(100 * (num - 1) / num)
    assert results[f'sem_seg/IoU-{classes[moved]}'] == 0
    assert math.isnan(results[f'sem_seg/IoU-{classes[absent]}'])


# ----------------------------------------------------------------------
# batched evaluation
# ----------------------------------------------------------------------
@pytest.fixture(scope='module')
def tiny_checkpoint(repo_root, tmp_path_factory):
    """Random weights of the tiny PSALM (one model for every config)."""
    cfg = tiny_config(BENCH.format(PANOPTIC), repo_root)
    path = str(tmp_path_factory.mktemp('tiny') / 'tiny_psalm.pth')
    save_random_checkpoint(cfg, path)
    return path


@pytest.mark.parametrize('name', [
    PANOPTIC, 'refcoco-val', 'refcoco-val-merged', 'coco-interactive-scribble'
])
def test_batch_of_4_equals_batch_of_1(repo_root, data_root, instances_json,
                                      tiny_checkpoint, interactive_json,
                                      name):
    """A batch gives every sample the outputs of batch 1: panoptic prompts
    are all alike, sentences and visual prompts are right-padded; so the
    configs' batch size of 4 is safe."""
    register_all_modules()
    cfg = tiny_config(BENCH.format(name), repo_root)
    if name == PANOPTIC:
        _panoptic_on_fixture(cfg, data_root, instances_json)
    elif name.startswith('refcoco'):
        _refcoco_on_fixture(cfg, data_root)
    else:
        _interactive_on_fixture(cfg, data_root, interactive_json)
    model = MODELS.build(cfg.model)
    model.load_state_dict(
        torch.load(tiny_checkpoint, weights_only=True)['state_dict'])
    model.eval()
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    batch = [dataset[i] for i in range(min(len(dataset), 4))]
    prompts = [s['data_samples'].metainfo['prompt'] for s in batch]
    if name == PANOPTIC:
        assert all(p == prompts[0] for p in prompts)
    else:  # prompts of different lengths: the batch is right-padded
        if name.startswith('refcoco'):
            tokenizer = model.language_model.tokenizer
            lengths = {
                len(tokenizer(' '.join(p['sentences']))['input_ids'])
                for p in prompts
            }
        else:
            lengths = {len(s['data_samples'].prompt_masks) for s in batch}
        assert len(lengths) > 1

    def run(samples):
        data = model.data_preprocessor(pseudo_collate(samples), False)
        with torch.no_grad():
            all_cls, all_masks = model(**data, mode='tensor')
        return all_cls[-1], all_masks[-1]

    cls_batch, masks_batch = run(batch)
    for i, sample in enumerate(batch):
        cls_one, masks_one = run([sample])
        num_conditions = cls_one.shape[-1]
        torch.testing.assert_close(
            cls_batch[i, :, :num_conditions], cls_one[0], atol=1e-4,
            rtol=1e-4)
        torch.testing.assert_close(
            masks_batch[i], masks_one[0], atol=1e-4, rtol=1e-4)


# ----------------------------------------------------------------------
# tools/test.py and tools/dist_test.sh end to end
# ----------------------------------------------------------------------
def _run(cmd, cwd, **env):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='', **env)
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)
    if proc.returncode != 0:
        raise AssertionError(f'{" ".join(cmd)} failed ({proc.returncode}):\n'
                             f'{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}')
    return proc.stdout + proc.stderr


def _check(metrics, keys):
    for key in keys:
        assert key in metrics, (key, sorted(metrics))
        value = metrics[key]
        assert math.isfinite(value) and 0 <= value <= 100, (key, value)


def _tiny(repo_root, name, tmp_path, on_fixture, *args):
    """Dump the tiny version of a benchmark config on fixture data."""
    cfg = on_fixture(tiny_config(BENCH.format(name), repo_root), *args)
    cfg.test_dataloader.num_workers = 0
    cfg.test_dataloader.persistent_workers = False
    path = str(tmp_path / f'{name}.py')
    cfg.dump(path)
    return path


def test_tools_test_coco_panoptic(repo_root, data_root, instances_json,
                                  tiny_checkpoint, tmp_path):
    config = _tiny(repo_root, PANOPTIC, tmp_path, _panoptic_on_fixture,
                   data_root, instances_json)
    pkl = str(tmp_path / 'predictions.pkl')
    out = _run([
        sys.executable, 'tools/test.py', config, tiny_checkpoint,
        '--work-dir', str(tmp_path / 'work'), '--out', pkl
    ], repo_root)
    for table in ('Panoptic Evaluation Results', 'segm_mAP_copypaste',
                  'Semantic segmentation results'):
        assert table in out
    metrics = parse_metrics(out)
    _check(metrics, PQ_KEYS + AP_KEYS + SEM_KEYS)
    assert all(metrics[key] <= 1 for key in AP_KEYS)  # mmdet: fractions
    # one 'panoptic' run answered with the three outputs at original size
    predictions = mmengine.load(pkl)
    assert len(predictions) == 2
    for pred in predictions:
        shape = tuple(pred['ori_shape'])
        assert tuple(pred['pred_panoptic_seg']['sem_seg'].shape[1:]) == shape
        assert tuple(pred['pred_sem_seg']['sem_seg'].shape[1:]) == shape
        labels = pred['pred_instances']['labels']
        assert len(labels) and int(labels.max()) < 80  # thing classes only

    # the same benchmark on 2 CPU processes gives the same metrics
    out = _run([
        'bash', 'tools/dist_test.sh', config, tiny_checkpoint, '2',
        '--work-dir', str(tmp_path / 'dist')
    ], repo_root, PYTHON=sys.executable, PORT='29541')
    assert parse_metrics(out) == pytest.approx(metrics)


@pytest.mark.parametrize('protocol', ['per_expression', 'merged'])
def test_tools_test_refcoco(repo_root, data_root, tiny_checkpoint, tmp_path,
                            protocol):
    name = 'refcoco-val' + ('-merged' if protocol == 'merged' else '')
    config = _tiny(repo_root, name, tmp_path, _refcoco_on_fixture, data_root)
    out = _run([
        sys.executable, 'tools/test.py', config, tiny_checkpoint,
        '--work-dir', str(tmp_path / 'work')
    ], repo_root)
    assert 'Referring segmentation results' in out
    metrics = parse_metrics(out)
    _check(metrics, ['refseg/cIoU', 'refseg/mIoU'])
    # fixture val split: 3 referents with 7 expressions
    expected = 3 if protocol == 'merged' else 7
    assert metrics['refseg/num_samples'] == expected


@pytest.mark.parametrize('prompt_type', ['point', 'box'])
def test_tools_test_coco_interactive(repo_root, data_root, tiny_checkpoint,
                                     interactive_json, tmp_path,
                                     prompt_type):
    name = f'coco-interactive-{prompt_type}'
    config = _tiny(repo_root, name, tmp_path, _interactive_on_fixture,
                   data_root, interactive_json)
    out = _run([
        sys.executable, 'tools/test.py', config, tiny_checkpoint,
        '--work-dir', str(tmp_path / 'work')
    ], repo_root)
    assert 'Interactive segmentation results' in out
    metrics = parse_metrics(out)
    _check(metrics, [
        f'interactive/{m}{t}' for m in ('mIoU', 'cIoU')
        for t in ('', f'_{prompt_type}')
    ])
    # every non-crowd instance of the 2 images is one region
    assert metrics['interactive/num_regions'] == 47
    assert metrics['interactive/num_skipped'] == 0
