# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Open-vocabulary class names at test time (the category condition).

The custom panoptic test config prompts with the json's own category names
(any names: the user's ``pony`` instead of COCO's ``horse``); with
``--cfg-options test_dataloader.dataset.type=PSALMOVPanopticDataset
test_dataloader.dataset.class_names=FILE`` the prompt strings come from a
class-name file (synonyms included), which must list the json's categories
in order. The tiny model's prediction then carries one class per file line.
"""
import pytest
import torch
from custom_data import CLASS_NAMES
from mmengine.config import Config
from mmengine.registry import init_default_scope
from psalm_testing import build_tiny_psalm
from recipe_testing import tiny_test_config

from mmdet.registry import DATASETS


def _dataset(custom_data, tmp_path, class_names=None):
    cfg = Config.fromfile(tiny_test_config(custom_data['root'],
                                           str(tmp_path)))
    if class_names is not None:
        cfg.merge_from_dict({
            'test_dataloader.dataset.type': 'PSALMOVPanopticDataset',
            'test_dataloader.dataset.class_names': class_names})
    init_default_scope('mmdet')
    return DATASETS.build(cfg.test_dataloader.dataset)


def test_json_names_are_the_prompt(custom_data, tmp_path):
    dataset = _dataset(custom_data, tmp_path)
    prompt = dataset[0]['data_samples'].metainfo['prompt']
    assert prompt['class_names'] == [
        'player', 'ball', 'lorry', 'pony', 'foliage', 'sky', 'lawn',
        'dirt track']


def test_class_name_file_is_honoured(custom_data, tmp_path, repo_root):
    dataset = _dataset(custom_data, tmp_path, custom_data['class_names'])
    item = dataset[0]
    prompt = item['data_samples'].metainfo['prompt']
    assert prompt == dict(task='panoptic', class_names=list(CLASS_NAMES))
    # the model prompts with them: one class score per file line
    model = build_tiny_psalm(repo_root).eval()
    data = model.data_preprocessor(
        dict(inputs=[item['inputs']], data_samples=[item['data_samples']]))
    with torch.no_grad():
        cls_logits, _ = model(**data, mode='tensor')
    # K = the 8 file classes + background
    assert cls_logits[-1].shape[-1] == len(CLASS_NAMES) + 1

    # a file out of the json's order fails, naming the line
    wrong = tmp_path / 'wrong.txt'
    wrong.write_text('\n'.join([CLASS_NAMES[1], CLASS_NAMES[0],
                                *CLASS_NAMES[2:]]))
    with pytest.raises(ValueError, match='class 0'):
        _dataset(custom_data, tmp_path, str(wrong))
