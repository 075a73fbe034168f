# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""NonFiniteCheckHook: an injected NaN loss or gradient stops the run (naming
iteration and task) or skips the step, leaving weights and optimizer state
untouched."""
import copy
import math
import re

import pytest
import torch
import torch.nn as nn
from mmengine.hooks import Hook
from mmengine.model import BaseModel
from mmengine.runner import Runner

import projects.psalm  # noqa: F401  (registers the hook)
from mmdet.structures import DetDataSample
from projects.psalm.engine.hooks import NonFiniteCheckHook

NAN = float('nan')


class TaskData(torch.utils.data.Dataset):
    """PSALM-like samples: the task is in the metainfo prompt."""

    def __len__(self):
        return 8

    def __getitem__(self, idx):
        sample = DetDataSample(metainfo=dict(
            img_path=f'img_{idx}.jpg', prompt=dict(task='referring')))
        return dict(inputs=torch.full((4, ), float(idx + 1)),
                    data_samples=sample)


class InjectingModel(BaseModel):
    """A NaN in the loss (``bad='loss'``) or only in the gradient of
    ``fc.weight`` (``bad='grad'``, finite loss) at iterations ``at``."""

    def __init__(self, bad='loss', at=(3, )):
        super().__init__()
        self.fc = nn.Linear(4, 1)
        self.bad, self.at, self.calls = bad, set(at), 0
        self.grad_hook = None

    def forward(self, inputs, data_samples=None, mode='tensor'):
        self.calls += 1
        if self.grad_hook is not None:  # only the injected iteration
            self.grad_hook.remove()
            self.grad_hook = None
        inputs = torch.stack(inputs) if isinstance(inputs, list) else inputs
        out = self.fc(inputs)
        if mode != 'loss':
            return out
        loss = out.pow(2).mean()
        if self.calls in self.at:
            if self.bad == 'loss':
                loss = loss * NAN
            else:
                self.grad_hook = self.fc.weight.register_hook(
                    lambda grad: torch.full_like(grad, NAN))
        return dict(loss=loss)


class Snapshots(Hook):
    """Weights and optimizer state after every iteration."""

    priority = 'LOWEST'

    def __init__(self):
        self.states = []

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        model = runner.model
        self.states.append(
            (copy.deepcopy(model.state_dict()),
             copy.deepcopy(runner.optim_wrapper.optimizer.state_dict())))


def make_runner(work_dir, model, action, **hook_kwargs):
    torch.manual_seed(0)
    snapshots = Snapshots()
    runner = Runner(
        model=model,
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=TaskData(),
            sampler=dict(type='InfiniteSampler', shuffle=False),
            batch_size=2,
            collate_fn=dict(type='pseudo_collate')),
        optim_wrapper=dict(
            optimizer=dict(type='AdamW', lr=0.01),
            clip_grad=dict(max_norm=1.0)),
        train_cfg=dict(by_epoch=False, max_iters=5),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=100),
            logger=dict(type='LoggerHook', interval=100),
            non_finite=dict(type='NonFiniteCheckHook', action=action,
                            **hook_kwargs)),
        custom_hooks=[snapshots],
        default_scope='mmdet',
        randomness=dict(seed=0))
    return runner, snapshots


def assert_same_state(a, b):
    (weights_a, optim_a), (weights_b, optim_b) = a, b
    for key in weights_a:
        assert torch.equal(weights_a[key], weights_b[key]), key
    assert optim_a['state'].keys() == optim_b['state'].keys()
    for idx, state in optim_a['state'].items():
        for key, value in state.items():
            assert torch.equal(value, optim_b['state'][idx][key]), (idx, key)


@pytest.mark.parametrize('bad,message', [
    ('loss', 'non-finite loss'),
    ('grad', r"non-finite gradients of \['fc.weight'\]"),
])
def test_stop_names_iteration_and_task(tmp_path, bad, message):
    runner, snapshots = make_runner(tmp_path, InjectingModel(bad), 'stop')
    with pytest.raises(FloatingPointError) as info:
        runner.train()
    text = str(info.value)
    assert 'iteration 3' in text and "task 'referring'" in text
    assert 'img_4.jpg' in text  # the batch's images: samples 4 and 5
    assert len(snapshots.states) == 2  # stopped inside iteration 3
    # nothing of iteration 3 reached the weights or the optimizer
    model = runner.model
    assert_same_state(
        snapshots.states[-1],
        (model.state_dict(), runner.optim_wrapper.optimizer.state_dict()))
    assert all(math.isfinite(v) for v in model.fc.weight.flatten().tolist())
    assert re.search(message, text), text


@pytest.mark.parametrize('bad', ['loss', 'grad'])
def test_skip_leaves_weights_and_optimizer_untouched(tmp_path, bad):
    runner, snapshots = make_runner(tmp_path, InjectingModel(bad), 'skip')
    runner.train()
    states = snapshots.states
    assert len(states) == 5
    # iteration 3 was skipped: its state equals iteration 2's (AdamW's step
    # count and moments included) ...
    assert_same_state(states[2], states[1])
    assert states[2][1]['state'][0]['step'] == 2
    # ... and training went on from there
    assert states[3][1]['state'][0]['step'] == 3
    assert not torch.equal(states[3][0]['fc.weight'],
                           states[2][0]['fc.weight'])
    assert all(
        math.isfinite(v) for v in runner.model.fc.weight.flatten().tolist())
    hook = next(h for h in runner.hooks if isinstance(h, NonFiniteCheckHook))
    assert hook.total_skips == 1 and hook.consecutive_skips == 0
    # the guard is removed after training
    assert 'step' not in vars(runner.optim_wrapper)


def test_skip_stops_after_too_many_in_a_row(tmp_path):
    model = InjectingModel('loss', at=(2, 3, 4))
    runner, _ = make_runner(tmp_path, model, 'skip',
                            max_consecutive_skips=3)
    with pytest.raises(FloatingPointError, match='3 skipped steps in a row'):
        runner.train()


def test_bad_arguments():
    with pytest.raises(ValueError, match='action'):
        NonFiniteCheckHook(action='ignore')
    with pytest.raises(ValueError, match='max_consecutive_skips'):
        NonFiniteCheckHook(action='skip', max_consecutive_skips=0)
