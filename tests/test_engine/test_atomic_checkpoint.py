# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""AtomicCheckpointHook: a kill during a save leaves the previous checkpoint
and ``last_checkpoint`` loadable (mmengine's CheckpointHook does not)."""
import os
import os.path as osp
from unittest import mock

import pytest
import torch
import torch.nn as nn
from mmengine.fileio.backends import LocalBackend
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mmengine.runner.checkpoint import find_latest_checkpoint

import projects.psalm  # noqa: F401  (registers the hooks and the loader)
from projects.psalm.engine import UnsafeCheckpointError, load_weights_only
from projects.psalm.engine.hooks import atomic_checkpoint_hook


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs (not even except blocks)."""


class ToyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.fc(inputs)
        return dict(loss=out.pow(2).mean()) if mode == 'loss' else out


class ToyData(torch.utils.data.Dataset):

    def __len__(self):
        return 8

    def __getitem__(self, idx):
        return dict(inputs=torch.full((4, ), float(idx)))


def make_runner(work_dir, hook_type='AtomicCheckpointHook', max_iters=4,
                resume=False):
    return Runner(
        model=ToyModel(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=ToyData(),
            sampler=dict(type='InfiniteSampler', shuffle=False),
            batch_size=2,
            collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(
            checkpoint=dict(type=hook_type, interval=2, by_epoch=False,
                            max_keep_ckpts=1),
            logger=dict(type='LoggerHook', interval=100)),
        custom_hooks=[dict(type='SafeCheckpointHook')],
        resume=resume,
        default_scope='mmdet',
        randomness=dict(seed=0))


def killed_on_second_call(target):
    """A side effect for ``target`` that writes half the data and dies at
    its second call (the save at iteration 4)."""
    calls = []

    def put(self, obj, filepath):
        calls.append(filepath)
        if len(calls) == 2:
            with open(filepath, 'wb') as f:
                f.write(obj[:len(obj) // 2])
            raise Killed(filepath)
        return target(self, obj, filepath)

    return put


def test_kill_while_writing_the_checkpoint(tmp_path):
    runner = make_runner(tmp_path)
    put = killed_on_second_call(LocalBackend.put)
    with mock.patch.object(LocalBackend, 'put', put), \
            pytest.raises(Killed, match=r'\.iter_4\.pth\.tmp'):
        runner.train()
    # last_checkpoint still names iteration 2, which still loads, although
    # max_keep_ckpts=1 (the hook deletes it only after the new one is safe)
    latest = find_latest_checkpoint(str(tmp_path))
    assert latest == osp.join(str(tmp_path), 'iter_2.pth')
    assert load_weights_only(latest)['meta']['iter'] == 2
    assert not osp.exists(tmp_path / 'iter_4.pth')
    assert osp.exists(tmp_path / '.iter_4.pth.tmp')  # the partial write

    # --resume continues from iteration 2, and the partial file goes
    resumed = make_runner(tmp_path, resume=True)
    resumed.train()
    assert resumed.iter == 4
    assert not osp.exists(tmp_path / '.iter_4.pth.tmp')
    assert load_weights_only(str(tmp_path / 'iter_4.pth'))['meta'][
        'iter'] == 4
    assert not osp.exists(tmp_path / 'iter_2.pth')  # max_keep_ckpts=1


def test_kill_before_last_checkpoint_is_updated(tmp_path):
    runner = make_runner(tmp_path)
    calls = []
    original = atomic_checkpoint_hook.atomic_write_bytes

    def write(data, path):
        calls.append(path)
        if len(calls) == 2:
            raise Killed(path)
        return original(data, path)

    with mock.patch.object(atomic_checkpoint_hook, 'atomic_write_bytes',
                           write), pytest.raises(Killed):
        runner.train()
    # the new checkpoint is complete, last_checkpoint still names the old
    # one, which was not deleted yet: both load
    assert find_latest_checkpoint(str(tmp_path)) == osp.join(
        str(tmp_path), 'iter_2.pth')
    for it in (2, 4):
        assert load_weights_only(str(tmp_path / f'iter_{it}.pth'))['meta'][
            'iter'] == it


def test_control_plain_checkpoint_hook_is_corrupted(tmp_path):
    """What the hook prevents: mmengine's hook deletes iter_2 first and
    writes iter_4 in place, so the same kill leaves last_checkpoint pointing
    at a missing file and a truncated iter_4.pth."""
    runner = make_runner(tmp_path, hook_type='CheckpointHook')
    put = killed_on_second_call(LocalBackend.put)
    with mock.patch.object(LocalBackend, 'put', put), \
            pytest.raises(Killed):
        runner.train()
    latest = find_latest_checkpoint(str(tmp_path))
    assert not osp.exists(latest)  # iter_2.pth was deleted
    with pytest.raises(UnsafeCheckpointError, match='iter_4.pth'):
        load_weights_only(str(tmp_path / 'iter_4.pth'))


def test_checkpoint_files_are_complete(tmp_path):
    runner = make_runner(tmp_path)
    runner.train()
    names = sorted(os.listdir(tmp_path))
    assert 'iter_4.pth' in names and 'last_checkpoint' in names
    assert not [n for n in names if n.endswith('.tmp')]
    with open(tmp_path / 'last_checkpoint') as f:
        assert f.read() == osp.join(str(tmp_path), 'iter_4.pth')
    ckpt = torch.load(tmp_path / 'iter_4.pth', weights_only=True)
    assert ckpt['meta']['iter'] == 4
