# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Bad inputs give a clear error naming the file or sample and the problem,
or (an empty interactive sample in evaluation) a counted, logged skip that
the final metric table shows.

Every case goes through the real dataset classes and pipelines of the
quickstart configs (the training config's four sub-datasets, the
COCO-Interactive point test config) on the fixture tree of
tools/misc/prepare_fixture_data.py, with one file of the tree replaced by a
broken copy, and, for the prompt checks, through the tiny PSALM.
"""
import copy
import json
import logging
import os
import os.path as osp
import pickle

import numpy as np
import pycocotools.mask as mask_utils
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.runner import Runner
from psalm_testing import load_tool

import projects.psalm  # noqa: F401  (registers everything)
from mmdet.registry import DATASETS, METRICS
from mmdet.utils import register_all_modules
from projects.psalm.engine import UnsafeCheckpointError

TRAIN = 'configs/fixtures/psalm_tiny_1xb2-1000it_fixtures.py'
EVAL_INTERACTIVE = ('configs/fixtures/'
                    'psalm_tiny_test_coco-interactive-point.py')
PANOPTIC, REFCOCO, INTERACTIVE, LLAVA = range(4)
IMAGES = ('000000142238.jpg', '000000439180.jpg')


# ----------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------
@pytest.fixture(scope='module')
def tree(repo_root, tmp_path_factory):
    module = load_tool('tools/misc/prepare_fixture_data.py')
    return module.prepare(str(tmp_path_factory.mktemp('bad') / 'data'))


@pytest.fixture(scope='module')
def configs(repo_root):
    register_all_modules()
    train = Config.fromfile(osp.join(repo_root, TRAIN))
    evaluation = Config.fromfile(osp.join(repo_root, EVAL_INTERACTIVE))
    return train.train_dataloader.dataset.datasets, evaluation


@pytest.fixture(scope='module')
def model(repo_root):
    from psalm_testing import build_tiny_psalm
    return build_tiny_psalm(repo_root)


def train_dataset(configs, tree, which, **overrides):
    """Build a training sub-dataset of the quickstart config on the tree."""
    cfg = copy.deepcopy(configs[0][which])
    if which == REFCOCO:
        cfg = cfg.datasets[0]  # RefCOCO (refer-toolkit files)
    root = tree['llava'] if which == LLAVA else tree['coco']
    cfg.update(data_root=root + '/', serialize_data=False, **overrides)
    return DATASETS.build(cfg)


def eval_interactive(configs, tree, **overrides):
    cfg = copy.deepcopy(configs[1].test_dataloader.dataset)
    cfg.update(data_root=tree['coco'] + '/', serialize_data=False,
               **overrides)
    return DATASETS.build(cfg)


def read_json(path):
    with open(path) as f:
        return json.load(f)


def write_json(path, data):
    with open(path, 'w') as f:
        json.dump(data, f)
    return str(path)


def empty_rle(height, width):
    rle = mask_utils.encode(np.zeros((height, width), np.uint8, order='F'))
    rle['counts'] = rle['counts'].decode()
    return rle


def pixel_rle(height, width, y, x):
    mask = np.zeros((height, width), np.uint8, order='F')
    mask[y, x] = 1
    rle = mask_utils.encode(mask)
    rle['counts'] = rle['counts'].decode()
    return rle


class LogRecords(logging.Handler):
    """Collect what mmengine's current logger logs."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())

    def __enter__(self):
        MMLogger.get_current_instance().addHandler(self)
        return self

    def __exit__(self, *exc):
        MMLogger.get_current_instance().removeHandler(self)

    def text(self):
        return '\n'.join(self.messages)


def run_loss(model, sample):
    """The tiny PSALM's loss on one packed sample."""
    model.train()
    batch = model.data_preprocessor(
        dict(inputs=[sample['inputs']],
             data_samples=[sample['data_samples']]), True)
    return model(**batch, mode='loss')


# ----------------------------------------------------------------------
# images
# ----------------------------------------------------------------------
def test_missing_image_file(configs, tree, tmp_path):
    dataset = train_dataset(configs, tree, LLAVA,
                            data_prefix=dict(img_path=str(tmp_path)))
    record = read_json(osp.join(tree['llava'], dataset.ann_file))[0]
    with pytest.raises(FileNotFoundError,
                       match=osp.join(str(tmp_path), record['image'])):
        dataset[0]


@pytest.mark.parametrize('damage', ['truncated', 'not an image'])
def test_truncated_or_corrupt_jpeg(configs, tree, tmp_path, damage):
    for name in IMAGES:
        with open(osp.join(tree['coco'], 'train2017', name), 'rb') as f:
            data = f.read()
        broken = data[:len(data) * 9 // 10] if damage == 'truncated' \
            else b'<html>not found</html>'
        (tmp_path / name).write_bytes(broken)
    dataset = train_dataset(configs, tree, INTERACTIVE,
                            data_prefix=dict(img=str(tmp_path)))
    # mmcv's LoadImageFromFile: OpenCV decodes a truncated JPEG to nothing
    with pytest.raises(AssertionError,
                       match=f'failed to load image: {tmp_path}/0000'):
        dataset[0]


# ----------------------------------------------------------------------
# annotations
# ----------------------------------------------------------------------
def test_image_without_any_annotation(configs, tree, tmp_path):
    panoptic = read_json(
        osp.join(tree['coco'], 'annotations', 'panoptic_train2017.json'))
    panoptic['annotations'][0]['segments_info'] = []
    ann_file = write_json(tmp_path / 'panoptic.json', panoptic)
    with pytest.raises(ValueError,
                       match=r'panoptic.json: image 142238 '
                       r"\('000000142238.jpg'\) has no non-crowd segment"):
        train_dataset(configs, tree, PANOPTIC, ann_file=ann_file)

    entries = read_json(
        osp.join(tree['coco'], 'annotations',
                 'coco_interactive_train_psalm.json'))
    entries[1]['anns'] = []
    ann_file = write_json(tmp_path / 'interactive.json', entries)
    with pytest.raises(ValueError, match="interactive.json: image "
                       "'000000439180.jpg' has no annotation usable"):
        train_dataset(configs, tree, INTERACTIVE, ann_file=ann_file)


def test_instance_with_empty_or_zero_area_mask(configs, tree, tmp_path):
    # RefCOCO: the referent's COCO annotation is empty
    instances = read_json(osp.join(tree['coco'], 'refcoco', 'instances.json'))
    refs = pickle.load(open(osp.join(tree['coco'], 'refcoco', 'refs(unc).p'),
                            'rb'))
    target = next(r for r in refs if r['split'] == 'train')
    for ann in instances['annotations']:
        if ann['id'] == target['ann_id']:
            ann.update(area=0, segmentation=[])
    ann_file = write_json(tmp_path / 'instances.json', instances)
    with pytest.raises(ValueError,
                       match=rf"refs\(unc\).p ref {target['ref_id']}: target "
                       rf"ann {target['ann_id']} has an empty mask"):
        train_dataset(configs, tree, REFCOCO, ann_file=ann_file)

    # COCO-Interactive: an empty GT mask
    entries = read_json(
        osp.join(tree['coco'], 'annotations',
                 'coco_interactive_train_psalm.json'))
    bad = entries[0]['anns'][2]
    bad['area'] = 0
    ann_file = write_json(tmp_path / 'interactive.json', entries)
    with pytest.raises(ValueError,
                       match=f"'000000142238.jpg' annotation {bad['id']}: "
                       'empty GT mask'):
        train_dataset(configs, tree, INTERACTIVE, ann_file=ann_file)

    # panoptic: a segment of the json without a pixel in the PNG
    panoptic = read_json(
        osp.join(tree['coco'], 'annotations', 'panoptic_train2017.json'))
    panoptic['annotations'][0]['segments_info'][1]['id'] = 12345
    dataset = train_dataset(configs, tree, PANOPTIC,
                            ann_file=write_json(tmp_path / 'p1.json',
                                                panoptic))
    with pytest.raises(ValueError, match=r'000000142238.png: segment 12345 '
                       'of the json has no pixel in the PNG'):
        dataset[0]

    # panoptic: a zero-area segment is left out as mmdet does: counted, logged
    panoptic = read_json(
        osp.join(tree['coco'], 'annotations', 'panoptic_train2017.json'))
    zero = panoptic['annotations'][0]['segments_info'][1]
    zero['area'] = 0
    with LogRecords() as logs:
        dataset = train_dataset(configs, tree, PANOPTIC,
                                ann_file=write_json(tmp_path / 'p2.json',
                                                    panoptic))
    assert ("left out 1 segments with area <= 0 or a box side below 1 "
            f"pixel (as mmdet), first (file, segment id): "
            f"[('000000142238.jpg', {zero['id']})]") in logs.text()
    assert zero['id'] not in [
        s['id'] for s in dataset.get_data_info(0)['segments_info']
    ]


def test_visual_prompt_outside_the_image(configs, tree, tmp_path):
    entries = read_json(
        osp.join(tree['coco'], 'annotations',
                 'coco_interactive_train_psalm.json'))
    ann = entries[0]['anns'][0]
    for key in ('point', 'scribble', 'box', 'mask'):
        ann[f'{key}_visual_prompt_mask'] = pixel_rle(1000, 1000, 900, 900)
    dataset = train_dataset(configs, tree, INTERACTIVE,
                            ann_file=write_json(tmp_path / 'i.json', entries))
    with pytest.raises(ValueError,
                       match=r"000000142238.jpg region 0 \(annotation "
                       rf"{ann['id']}\): the \w+ prompt has size "
                       r'\(1000, 1000\) but the image is \(427, 640\); the '
                       'prompt lies outside the image'):
        dataset[0]


def test_visual_prompt_empty_after_resizing(configs, tree, tmp_path):
    entries = read_json(
        osp.join(tree['coco'], 'annotations',
                 'coco_interactive_train_psalm.json'))
    ann = entries[0]['anns'][0]
    # a 1-pixel box / mask prompt on a row and column that the nearest
    # resize 640x427 -> 256x171 does not sample (points and scribbles are
    # dilated before resizing, so they are left out of this region)
    for key in ('point', 'scribble'):
        ann[f'{key}_visual_prompt_mask'] = empty_rle(427, 640)
    for key in ('box', 'mask'):
        ann[f'{key}_visual_prompt_mask'] = pixel_rle(427, 640, 1, 1)
    ann_file = write_json(tmp_path / 'i.json', entries)
    dataset = train_dataset(configs, tree, INTERACTIVE, ann_file=ann_file)
    with pytest.raises(ValueError,
                       match=r"000000142238.jpg: the visual prompts of "
                       r"regions \(index, type\) \[\(0, '(box|mask)'\)\] are "
                       'empty after resizing to 171x256'):
        dataset[0]
    # evaluation (skip_empty=True): the region is left out, logged
    for key in ('point', 'box'):  # the point config evaluates points only
        ann[f'{key}_visual_prompt_mask'] = pixel_rle(427, 640, 1, 1)
    dataset = eval_interactive(
        configs, tree, ann_file=write_json(tmp_path / 'e.json', entries),
        prompt_type='box')
    with LogRecords() as logs:
        sample = dataset[0]
    assert "000000142238.jpg: skipped regions (index, type) [(0, 'box')]" \
        in logs.text()
    regions = sum(1 for a in entries[0]['anns'] if not a.get('iscrowd'))
    assert len(sample['data_samples'].prompt_masks) == regions - 1


# ----------------------------------------------------------------------
# prompts
# ----------------------------------------------------------------------
def refs_with(tree, tmp_path, sentence):
    """The refer-toolkit files with the first train ref's expressions
    replaced by ``sentence``; returns (split_file, ref)."""
    refs = pickle.load(open(osp.join(tree['coco'], 'refcoco', 'refs(unc).p'),
                            'rb'))
    ref = next(r for r in refs if r['split'] == 'train')
    ref['sentences'] = [dict(sent=sentence, raw=sentence, sent_id=0)]
    path = tmp_path / 'refs.p'
    with open(path, 'wb') as f:
        pickle.dump(refs, f)
    return str(path), ref


def test_expression_longer_than_the_llm_context(configs, tree, tmp_path,
                                                model):
    split_file, ref = refs_with(tree, tmp_path, 'the dog ' * 1500)
    dataset = train_dataset(configs, tree, REFCOCO, split_file=split_file)
    index = next(i for i in range(len(dataset))
                 if dataset.get_data_info(i)['ref_id'] == ref['ref_id'])
    sample = dataset[index]  # the data side has no length limit
    with pytest.raises(ValueError,
                       match=r"sample '.*000000142238.jpg' \(referring\): "
                       r'expanded length \d+ exceeds max_length=2048'):
        run_loss(model, sample)


def test_empty_category_list(configs, tree, tmp_path, model):
    panoptic = read_json(
        osp.join(tree['coco'], 'annotations', 'panoptic_train2017.json'))
    panoptic['categories'] = []
    with pytest.raises(ValueError,
                       match="panoptic.json: no categories for task "
                       "'panoptic'"):
        train_dataset(configs, tree, PANOPTIC,
                      ann_file=write_json(tmp_path / 'panoptic.json',
                                          panoptic))
    # a prompt built elsewhere with no class name: the model names it
    sample = train_dataset(configs, tree, PANOPTIC)[0]
    sample['data_samples'].set_metainfo(
        dict(prompt=dict(task='panoptic', class_names=[])))
    with pytest.raises(ValueError,
                       match=r"sample '.*000000142238.jpg': task 'panoptic' "
                       'needs a non-empty class_names list'):
        run_loss(model, sample)


@pytest.mark.parametrize('sentence,message', [
    ('', 'has no \'sent\' text \\(empty expression\\)'),
    ('   ', 'has no \'sent\' text \\(empty expression\\)'),
    (b'the ball', 'holds bytes, not text'),
    ('the b\udcffall', 'is not valid Unicode'),
])
def test_empty_or_non_utf8_expression(configs, tree, tmp_path, sentence,
                                      message):
    split_file, ref = refs_with(tree, tmp_path, sentence)
    with pytest.raises(ValueError,
                       match=rf"refs.p ref {ref['ref_id']}: sentence .*"
                       f'{message}'):
        train_dataset(configs, tree, REFCOCO, split_file=split_file)


def test_non_utf8_prompt_built_elsewhere(configs, tree, model):
    """A prompt that no loader checked (API, demo) is named by the model."""
    sample = train_dataset(configs, tree, PANOPTIC)[0]
    sample['data_samples'].set_metainfo(
        dict(prompt=dict(task='panoptic', class_names=['per\udcffson'])))
    with pytest.raises(ValueError,
                       match=r"prompt text ' per\\udcffson' is not valid "
                       r'Unicode \(surrogates not allowed'):
        run_loss(model, sample)


def test_non_utf8_annotation_file(configs, tree, tmp_path):
    with open(osp.join(tree['llava'],
                       'llava_v1_5_mix665k_onlyMM_filtered.json'),
              'rb') as f:
        data = f.read()
    at = data.index(b'pickup')
    path = tmp_path / 'latin1.json'
    path.write_bytes(data[:at] + 'pick\xfcp'.encode('latin-1') +
                     data[at + 6:])
    with pytest.raises(ValueError,
                       match=r"latin1.json: not UTF-8 text \(byte b'\\xfc' "
                       r'at offset \d+\)'):
        train_dataset(configs, tree, LLAVA, ann_file=str(path))
    records = read_json(osp.join(tree['llava'],
                                 'llava_v1_5_mix665k_onlyMM_filtered.json'))
    records[2]['conversations'][1]['value'] = 'a \udcff b'
    with pytest.raises(ValueError,
                       match=r'surrogate.json record 2 .*: turn 1 is not '
                       'valid Unicode'):
        train_dataset(configs, tree, LLAVA,
                      ann_file=write_json(tmp_path / 'surrogate.json',
                                          records))


# ----------------------------------------------------------------------
# json structure
# ----------------------------------------------------------------------
def test_json_with_missing_keys(configs, tree, tmp_path):
    entries = read_json(
        osp.join(tree['coco'], 'annotations',
                 'coco_interactive_train_psalm.json'))
    del entries[1]['image_info']
    with pytest.raises(KeyError,
                       match=r"i.json: entry 1 \(image '000000439180.jpg'\) "
                       r"lacks \['image_info', 'image_info.id'"):
        train_dataset(configs, tree, INTERACTIVE,
                      ann_file=write_json(tmp_path / 'i.json', entries))

    panoptic = read_json(
        osp.join(tree['coco'], 'annotations', 'panoptic_train2017.json'))
    del panoptic['annotations'][1]['segments_info']
    with pytest.raises(KeyError, match=r"p.json: the panoptic json lacks the "
                       r"key 'segments_info'"):
        train_dataset(configs, tree, PANOPTIC,
                      ann_file=write_json(tmp_path / 'p.json', panoptic))

    refs = pickle.load(open(osp.join(tree['coco'], 'refcoco', 'refs(unc).p'),
                            'rb'))
    del refs[3]['split']
    with open(tmp_path / 'refs.p', 'wb') as f:
        pickle.dump(refs, f)
    with pytest.raises(KeyError,
                       match=rf"refs.p: ref 3 \(ref_id {refs[3]['ref_id']}\)"
                       r" lacks \['split'\]"):
        train_dataset(configs, tree, REFCOCO,
                      split_file=str(tmp_path / 'refs.p'))

    instances = read_json(osp.join(tree['coco'], 'refcoco', 'instances.json'))
    del instances['annotations']
    with pytest.raises(KeyError, match="inst.json: the COCO instances json "
                       "lacks 'annotations'"):
        train_dataset(configs, tree, REFCOCO,
                      ann_file=write_json(tmp_path / 'inst.json', instances))

    records = read_json(osp.join(tree['llava'],
                                 'llava_v1_5_mix665k_onlyMM_filtered.json'))
    del records[4]['conversations']
    with pytest.raises(ValueError,
                       match=r'l.json record 4 .*: conversations must be a '
                       'non-empty list'):
        train_dataset(configs, tree, LLAVA,
                      ann_file=write_json(tmp_path / 'l.json', records))


# ----------------------------------------------------------------------
# checkpoints
# ----------------------------------------------------------------------
class _RunsCode:

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'touch {self.marker}', ))


def test_checkpoint_of_another_model_or_truncated(model, tmp_path):
    runner = Runner(
        model=model,
        work_dir=str(tmp_path / 'work'),
        custom_hooks=[dict(type='SafeCheckpointHook')],
        default_scope='mmdet')
    good = tmp_path / 'tiny.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, good)
    runner.load_checkpoint(str(good))  # control: its own weights load

    other = tmp_path / 'other.pth'
    torch.save({'state_dict': torch.nn.Linear(4, 2).state_dict()}, other)
    with pytest.raises(ValueError,
                       match=r'does not fit this model: only 0 of \d+ '
                       'entries match'):
        runner.load_checkpoint(str(other))

    data = good.read_bytes()
    cut = tmp_path / 'cut.pth'
    cut.write_bytes(data[:len(data) // 3])
    with pytest.raises(UnsafeCheckpointError,
                       match='cut.pth" is not a readable torch checkpoint '
                       r'\(truncated or corrupt\?\)'):
        runner.load_checkpoint(str(cut))

    # a crafted pickle that runs code when unpickled is refused unread
    marker = tmp_path / 'pwned'
    evil = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'x': _RunsCode(marker)}, evil)
    with pytest.raises(UnsafeCheckpointError,
                       match=r"evil.pth.*needs these globals: "
                       r"\['posix.system'\]"):
        runner.load_checkpoint(str(evil))
    assert not marker.exists()


# ----------------------------------------------------------------------
# evaluation: an empty interactive sample is skipped, counted, logged
# ----------------------------------------------------------------------
def test_empty_interactive_sample_is_a_counted_skip(configs, tree,
                                                    tmp_path):
    entries = read_json(
        osp.join(tree['coco'], 'annotations',
                 'coco_interactive_val_psalm.json'))
    height, width = (entries[0]['image_info'][k] for k in ('height', 'width'))
    for ann in entries[0]['anns']:  # no point prompt in the first image
        ann['point_visual_prompt_mask'] = empty_rle(height, width)
    with LogRecords() as logs:
        dataset = eval_interactive(
            configs, tree,
            ann_file=write_json(tmp_path / 'val.json', entries))
    assert len(dataset) == 1
    assert dataset.metainfo['skipped_images'] == ['000000142238.jpg']
    assert 'images without regions (first: [\'000000142238.jpg\'])' \
        in logs.text()

    metric = METRICS.build(configs[1].test_evaluator)
    metric.dataset_meta = dataset.metainfo
    sample = dataset[0]['data_samples']  # predict the GT: IoU 100
    gt = torch.from_numpy(sample.gt_masks.masks).bool()
    sample = sample.to_dict()
    sample['pred_instances'] = dict(masks=gt)
    metric.process({}, [sample])
    with LogRecords() as logs:
        results = metric.evaluate(1)
    assert results['interactive/num_skipped'] == 1
    assert results['interactive/mIoU'] == pytest.approx(100)
    text = logs.text()
    assert '1 images without a usable region were left out by the ' \
        "dataset: ['000000142238.jpg']" in text
    table = text[text.index('Interactive segmentation results'):]
    assert '| skipped images (dataset)    |' in table
    row = next(line for line in table.splitlines()
               if 'skipped images (dataset)' in line)
    assert row.replace(' ', '').endswith('|1|')
