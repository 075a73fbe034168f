# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""tools/analysis_tools/browse_dataset.py on a real COCO-Interactive sample:
the prompt colour is exactly where the resized prompt masks are."""
import os.path as osp

import cv2
import numpy as np
import pytest
from psalm_testing import load_tool
from scipy import ndimage

import projects.psalm  # noqa: F401  (registers the dataset / transforms)
from mmdet.registry import DATASETS
from mmdet.utils import register_all_modules
from projects.psalm.visualization import PROMPT_COLOR, prompt_lines
from projects.psalm.visualization.browse import PALETTE

SAMPLE = 'coco_panoptic_sample'


def dataset_cfg(ann_file: str, image_dir: str, prompt_type: str) -> dict:
    return dict(
        type='COCOInteractiveDataset', ann_file=ann_file,
        data_prefix=dict(img=image_dir), prompt_type=prompt_type,
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
            dict(type='LoadVisualPrompts'),
            dict(type='Resize', scale=(256, 256), keep_ratio=True),
            dict(type='ResizeVisualPrompts'),
            dict(type='PackPSALMInputs'),
        ])


@pytest.fixture(scope='module')
def browsed(repo_root, data_root, tmp_path_factory):
    """Build COCO-Interactive, browse the scribble sub-dataset (task 1 of a
    point / scribble concatenation) and fetch the same sample."""
    tmp = tmp_path_factory.mktemp('browse')
    root = osp.join(data_root, SAMPLE)
    ann_file = str(tmp / 'coco_interactive.json')
    load_tool('tools/dataset_converters/build_coco_interactive.py').main(
        [osp.join(root, 'panoptic_coco_detection_format.json'), ann_file])
    image_dir = osp.join(root, 'input_images')
    datasets = [dataset_cfg(ann_file, image_dir, t)
                for t in ('point', 'scribble')]
    config = tmp / 'browse_cfg.py'
    config.write_text(
        "default_scope = 'mmdet'\n"
        "custom_imports = dict(imports=['projects.psalm'])\n"
        f'train_dataloader = dict(dataset=dict(type=\'ConcatDataset\', '
        f'datasets={datasets!r}))\n')
    paths = load_tool('tools/analysis_tools/browse_dataset.py').main(
        [str(config), '--output-dir', str(tmp / 'out'), '--num', '1',
         '--task-index', '1'])
    register_all_modules()
    item = DATASETS.build(datasets[1])[0]
    return paths, item


def test_browse_png_draws_prompts_exactly(browsed):
    paths, item = browsed
    assert [osp.basename(p) for p in paths] == ['00000_000000142238.png']
    picture = cv2.imread(paths[0])  # BGR
    image = item['inputs'].permute(1, 2, 0).numpy()  # (h, w, 3) BGR
    sample = item['data_samples']
    height, width = image.shape[:2]
    assert max(height, width) == 256
    # GT panel | prompt panel, text below
    assert picture.shape[0] > height and picture.shape[1:] == (2 * width, 3)
    gt_panel, canvas = picture[:height, :width], picture[:height, width:]

    prompts = sample.prompt_masks.numpy()  # (K, h, w)
    assert sample.metainfo['prompt_type'] == ['scribble'] * len(prompts)
    union = prompts.any(0)
    magenta = (canvas == PROMPT_COLOR).all(-1)
    # the prompt colour never leaves the prompt masks ...
    assert not (magenta & ~union).any()
    # ... and fills them except within 2 px of a prompt border (outlines)
    borders = np.zeros_like(union)
    for mask in prompts:
        borders |= mask & ~ndimage.binary_erosion(mask)
    near_border = ndimage.binary_dilation(borders, np.ones((5, 5), bool))
    assert (magenta | ~union | near_border).all()
    assert magenta.sum() >= 0.5 * union.sum()
    # every prompt is outlined in its target's colour
    for k, mask in enumerate(prompts[:len(PALETTE)]):
        ring = mask & ~ndimage.binary_erosion(mask)
        assert (canvas[ring] == PALETTE[k]).all(-1).mean() > 0.5

    # elsewhere the prompt panel is the raw image
    assert (canvas[~union] == image[~union]).all()

    # GT panel: targets blended 50 % with their colour, no prompt drawn
    gt = sample.gt_instances.masks.to_ndarray().astype(bool)  # (K, h, w)
    outside = ~gt.any(0)
    assert (gt_panel[outside] == image[outside]).all()
    single = gt.sum(0) == 1
    assert single.sum() > 10000
    for k in range(len(gt)):
        pixels = single & gt[k]
        expected = np.round(0.5 * image[pixels] + 0.5 * np.array(PALETTE[
            k % len(PALETTE)])).astype(int)
        assert np.abs(gt_panel[pixels].astype(int) - expected).max() <= 1
    assert not (gt_panel == PROMPT_COLOR).all(-1).any()
    # the text panel under the image: the task and the (wrapped) regions
    panel = picture[height:]
    assert panel.shape[0] >= 18 * 3
    assert (panel < 128).any()


def test_prompt_lines_of_every_task():
    assert prompt_lines(dict(prompt=dict(task='panoptic', class_names=[
        'person', 'sky'
    ]))) == ['task: panoptic', 'classes: person, sky']
    assert prompt_lines(dict(prompt=dict(
        task='referring', sentences=['the man']))) == [
            'task: referring', 'sentence: the man'
        ]
    assert prompt_lines(dict(prompt=dict(task='vqa', conversations=[
        {'from': 'human', 'value': '<image>\nWhat?'},
        {'from': 'gpt', 'value': 'A dog.'}
    ]))) == ['task: vqa', 'question: <image>\nWhat?', 'answer: A dog.']
    assert prompt_lines(dict(prompt=dict(task='interactive'), prompt_type=[
        'point', 'box'
    ])) == ['task: interactive', 'regions: 0 point, 1 box']
