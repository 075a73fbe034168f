# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""RandomStateHook: a resumed run draws the same random numbers as the
uninterrupted one (data fetch and model, in the main process)."""
import random

import numpy as np
import pytest
import torch
import torch.nn as nn
from mmengine.dataset import BaseDataset
from mmengine.dataset import ConcatDataset as EngineConcatDataset
from mmengine.evaluator import BaseMetric
from mmengine.model import BaseModel
from mmengine.runner import Runner

import projects.psalm  # noqa: F401  (registers the hooks)
from projects.psalm.engine import (get_random_state, load_weights_only,
                                   set_random_state)


def draws():
    return (random.random(), float(np.random.rand()),
            float(torch.rand(())))


def test_state_round_trip_is_weights_only(tmp_path):
    random.gauss(0, 1)  # a cached gaussian is part of the state
    np.random.randn()
    state = get_random_state()
    expected = draws()
    torch.save({'random_states': [state]}, tmp_path / 's.pth')
    loaded = torch.load(tmp_path / 's.pth', weights_only=True)
    draws()
    assert set_random_state(loaded['random_states'][0]) == []
    assert draws() == expected
    with pytest.raises(ValueError, match='lacks'):
        set_random_state({'python': state['python']})


class RandomData(BaseDataset):
    """Every fetch draws from python, numpy and torch (like RefCOCO's random
    expression and COCO-Interactive's random prompt type)."""

    def __init__(self, task='a', size=6):
        self.size = size
        super().__init__(metainfo=dict(task=task), serialize_data=False)

    def load_data_list(self):
        return [dict(idx=i) for i in range(self.size)]

    def __getitem__(self, idx):
        return dict(inputs=torch.tensor([float(idx), *draws()]))


class RandomModel(BaseModel):
    """Its loss draws from torch (like Mask2Former's point sampling) and it
    records the inputs and the loss of every iteration."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 1)
        self.seen = []

    def forward(self, inputs, data_samples=None, mode='tensor'):
        inputs = torch.stack(inputs) if isinstance(inputs, list) else inputs
        out = self.fc(inputs) * torch.rand(())
        if mode == 'loss':
            loss = out.pow(2).mean()
            self.seen.append((inputs.tolist(), loss.item()))
            return dict(loss=loss)
        return [dict(pred=o) for o in out]


class CountMetric(BaseMetric):

    def process(self, data_batch, data_samples):
        torch.rand(100)  # validation draws random numbers too
        self.results.append(len(data_samples))

    def compute_metrics(self, results):
        return dict(count=float(sum(results)))


def make_runner(work_dir, multi_task, hooks=True, resume=False, val=False):
    if multi_task:
        dataset = EngineConcatDataset(
            [RandomData('a', 5), RandomData('b', 7)], ignore_keys=['task'])
        loader = dict(
            dataset=dataset,
            sampler=dict(type='InfiniteSampler', shuffle=True),
            batch_sampler=dict(type='MultiTaskBatchSampler'),
            collate_fn=dict(type='pseudo_collate'))
    else:
        loader = dict(
            dataset=RandomData(),
            sampler=dict(type='InfiniteSampler', shuffle=True),
            collate_fn=dict(type='pseudo_collate'))
    custom_hooks = [dict(type='SafeCheckpointHook')]
    if multi_task:
        custom_hooks.append(dict(type='SamplerResumeHook'))
    default_hooks = dict(
        checkpoint=dict(type='AtomicCheckpointHook', interval=3,
                        by_epoch=False),
        logger=dict(type='LoggerHook', interval=100))
    if hooks:
        default_hooks['random_state'] = dict(type='RandomStateHook')
    val_kwargs = {}
    if val:
        val_kwargs = dict(
            val_dataloader=dict(
                dataset=RandomData('v', 2),
                sampler=dict(type='DefaultSampler', shuffle=False),
                batch_size=2,
                collate_fn=dict(type='pseudo_collate')),
            val_evaluator=dict(type=CountMetric),
            val_cfg=dict(type='ValLoop'))
    torch.manual_seed(0)  # the model is built here, before the runner
    return Runner(
        model=RandomModel(),
        work_dir=str(work_dir),
        train_dataloader=dict(loader, batch_size=2, num_workers=0),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01)),
        train_cfg=dict(by_epoch=False, max_iters=7, val_interval=3),
        default_hooks=default_hooks,
        custom_hooks=custom_hooks,
        resume=resume,
        default_scope='mmdet',
        randomness=dict(seed=3),
        **val_kwargs)


@pytest.mark.parametrize('multi_task,val', [(False, False), (True, False),
                                            (True, True)])
def test_resume_draws_the_same_random_numbers(tmp_path, multi_task, val):
    """num_workers=0: data fetch and model draw from the main process's
    generators; iterations 4..7 after resuming at 3 equal the uninterrupted
    run exactly (plain mmengine resume reloads the 3 skipped batches, the
    multi-task sampler skips them; validation at iteration 3 draws too)."""
    full = make_runner(tmp_path / 'full', multi_task, val=val)
    full.train()
    assert len(full.model.seen) == 7
    ckpt = load_weights_only(str(tmp_path / 'full' / 'iter_3.pth'))
    assert len(ckpt['random_states']) == 1  # one rank

    # the interrupted run: 3 iterations, then a new process resumes
    part = tmp_path / 'part'
    first = make_runner(part, multi_task, val=val)
    first.train_loop._max_iters = 3
    first.train()
    resumed = make_runner(part, multi_task, resume=True, val=val)
    resumed.train()
    assert resumed.model.seen == full.model.seen[3:]

    # control: without the hook the resumed run draws other numbers
    control_dir = tmp_path / 'control'
    first = make_runner(control_dir, multi_task, hooks=False, val=val)
    first.train_loop._max_iters = 3
    first.train()
    control = make_runner(control_dir, multi_task, hooks=False, resume=True,
                          val=val)
    control.train()
    assert control.model.seen != full.model.seen[3:]
