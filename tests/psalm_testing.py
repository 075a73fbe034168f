# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Test helpers: a tiny PSALM and real-image samples for every task."""
import importlib.util
import json
import os.path as osp
import types

import mmcv
import numpy as np
import pycocotools.mask as mask_utils
import torch
from mmengine.config import Config
from mmengine.structures import InstanceData

from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmdet.utils import register_all_modules

REPO_ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..'))
IMAGE_SIZE = 256
TASKS = ('panoptic', 'semantic', 'instance', 'referring', 'gres',
         'interactive', 'vos', 'vqa', 'caption')


def load_tool(rel_path: str) -> types.ModuleType:
    """Import a script of this repository (e.g. ``'tools/demo.py'``) as a
    module: its functions and ``main(argv)`` run in-process."""
    spec = importlib.util.spec_from_file_location(
        osp.splitext(osp.basename(rel_path))[0], osp.join(REPO_ROOT, rel_path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_tiny_psalm(repo_root: str, cfg_options: dict = None):
    """Build the tiny PSALM config (``cfg_options`` as --cfg-options)."""
    import projects.psalm  # noqa: F401
    register_all_modules()
    cfg = Config.fromfile(
        osp.join(repo_root, 'configs/_base_/models/psalm_tiny.py'))
    cfg.model.language_model.tokenizer = osp.join(
        repo_root, cfg.model.language_model.tokenizer)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


class RealSample:
    """COCO val2017 image 000000439180, resized (long side 256), with its
    three largest instance masks (from the real panoptic detection json)."""

    def __init__(self, data_root: str):
        root = osp.join(data_root, 'coco_panoptic_sample')
        coco = json.load(
            open(osp.join(root, 'panoptic_coco_detection_format.json')))
        image_id = 439180
        image = mmcv.imread(osp.join(root, 'input_images',
                                     '000000439180.jpg'))  # BGR
        self.ori_shape = image.shape[:2]
        image, scale = mmcv.imrescale(image, (IMAGE_SIZE, IMAGE_SIZE),
                                      return_scale=True)
        self.image = torch.from_numpy(image).permute(2, 0, 1).contiguous()
        self.img_shape = image.shape[:2]
        cats = {c['id']: c['name'] for c in coco['categories']}
        anns = sorted((a for a in coco['annotations']
                       if a['image_id'] == image_id and not a['iscrowd']),
                      key=lambda a: -a['area'])[:3]
        masks = []
        for ann in anns:
            mask = mask_utils.decode(ann['segmentation'])
            masks.append(mmcv.imresize(mask, image.shape[1::-1],
                                       interpolation='nearest'))
        self.masks = np.stack(masks).astype(np.uint8)  # [3, h, w]
        self.names = [cats[a['category_id']] for a in anns]

    def data_sample(self, task: str) -> DetDataSample:
        h, w = self.img_shape
        sample = DetDataSample(metainfo=dict(
            img_shape=self.img_shape, ori_shape=self.img_shape,
            img_path='000000439180.jpg', scale_factor=(1.0, 1.0)))
        masks = self.masks
        labels = torch.arange(len(masks))
        names = list(dict.fromkeys(self.names))  # unique, in order
        if task in ('panoptic', 'semantic', 'instance'):
            labels = torch.tensor([names.index(n) for n in self.names])
            prompt = dict(task=task, class_names=names)
            sample.set_metainfo(dict(is_thing=[True] * len(names)))
        elif task in ('referring', 'gres'):
            masks, labels = masks[:1], labels[:1]
            prompt = dict(task=task, sentences=[f'the big {self.names[0]}'])
        elif task in ('interactive', 'vos'):
            prompt = dict(task=task)
            sample.prompt_masks = torch.from_numpy(masks).bool()
        else:
            question = 'What is in the image?' if task == 'vqa' else \
                'Describe the image briefly.'
            prompt = dict(task=task, conversations=[
                {'from': 'human', 'value': f'<image>\n{question}'},
                {'from': 'gpt', 'value': f'A {self.names[0]}.'}])
        sample.set_metainfo(dict(prompt=prompt))
        if task not in ('vqa', 'caption'):
            sample.gt_instances = InstanceData(
                masks=BitmapMasks(masks, h, w), labels=labels)
        return sample

    def batch(self, task: str, num: int = 1) -> dict:
        return dict(inputs=[self.image.clone() for _ in range(num)],
                    data_samples=[self.data_sample(task) for _ in range(num)])
