# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""ObjectClassifier (the quickstart's Swin pre-training): mask pooling gives
the known mean, bad masks raise, and the real config learns the shapes of a
small generated ShapesWorld."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmengine.structures import InstanceData

from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
import projects.psalm  # noqa: F401
from projects.psalm.datasets.shapesworld import generate_shapesworld

REPO = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
CONFIG = osp.join(REPO, 'configs', 'shapesworld',
                  'swin-tiny-convstem_objcls_1xb4-1k_shapesworld.py')


def _model():
    cfg = Config.fromfile(CONFIG)
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model.eval()


def _sample(masks, labels, shape=(64, 64)):
    sample = DetDataSample(metainfo=dict(img_path='x.png', img_shape=shape))
    sample.gt_instances = InstanceData(
        masks=BitmapMasks(masks, *shape), labels=torch.tensor(labels))
    return sample


def test_pooling_is_the_mean_under_the_mask():
    model = _model()
    image = torch.randn(1, 3, 64, 64)
    masks = torch.zeros(2, 48, 64, dtype=torch.uint8)  # image 48 x 64
    masks[0, 8:24, 16:40] = 1  # stride-8 cells rows 1-2, cols 2-4
    masks[1, 0:8, 0:4] = 1  # half of cell (0, 0)
    sample = _sample(masks.numpy(), [0, 3], shape=(48, 64))
    with torch.no_grad():
        pooled = model.pool_objects(image, [sample])[0]  # [2, 32]
        level = model.backbone(image)[1][0]  # [32, 8, 8]
    assert pooled.shape == (2, 32)
    torch.testing.assert_close(pooled[0], level[:, 1:3, 2:5].mean((1, 2)))
    torch.testing.assert_close(pooled[1], level[:, 0, 0])
    logits = model(image, [sample], mode='tensor')[0]
    torch.testing.assert_close(logits, model.classifier(pooled))
    loss = model(image, [sample], mode='loss')
    torch.testing.assert_close(
        loss['loss_cls'],
        torch.nn.functional.cross_entropy(logits, torch.tensor([0, 3])))


def test_empty_or_oversized_masks_raise():
    model = _model()
    image = torch.randn(1, 3, 64, 64)
    masks = torch.zeros(2, 64, 64, dtype=torch.uint8)
    masks[0, :8, :8] = 1
    with pytest.raises(ValueError, match=r'x\.png: object\(s\) \[1\] have '
                       'empty masks'):
        model.pool_objects(image, [_sample(masks.numpy(), [0, 1])])
    big = torch.ones(1, 80, 64, dtype=torch.uint8)
    with pytest.raises(ValueError, match='exceed the input'):
        model.pool_objects(image, [_sample(big.numpy(), [0], (80, 64))])


def test_config_learns_the_training_shapes(tmp_path):
    """150 steps of the real config on 4 generated images: the loss falls
    and the segments of those images (6 shapes, 4 stuff) get their
    classes."""
    root = str(tmp_path / 'data')
    generate_shapesworld(root, num_train=4, num_val=1, num_videos=0, seed=3)
    cfg = Config.fromfile(CONFIG)
    iters = 150
    cfg.work_dir = str(tmp_path / 'run')
    cfg.train_dataloader.dataset.data_root = osp.join(root, 'coco') + '/'
    cfg.train_dataloader.num_workers = 0
    cfg.train_dataloader.persistent_workers = False
    cfg.train_cfg.max_iters = iters
    cfg.param_scheduler[0].end = 10
    cfg.param_scheduler[1].begin = 10
    cfg.param_scheduler[1].end = iters
    cfg.default_hooks.checkpoint.interval = iters
    cfg.default_hooks.logger.interval = 10
    runner = Runner.from_cfg(cfg)
    runner.train()
    scalars = runner.message_hub.log_scalars
    losses = scalars['train/loss_cls'].data[0]
    assert losses[-10:].mean() < 0.5 * losses[:10].mean()
    model = runner.model.eval()
    correct = total = 0
    with torch.no_grad():
        # the infinite sampler: one pass over the 4 images is one batch
        data = model.data_preprocessor(next(iter(runner.train_dataloader)),
                                       False)
        for sample in model(**data, mode='predict'):
            correct += int((sample.pred_instances.labels ==
                            sample.gt_instances.labels).sum())
            total += len(sample.gt_instances)
    assert correct / total > 0.9, (correct, total)
    assert osp.isfile(osp.join(cfg.work_dir, f'iter_{iters}.pth'))
