# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Runner checkpoints load with weights_only; unsafe or foreign ones are refused."""
import os
import pickle

import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.runner import Runner, load_checkpoint

import projects.psalm  # noqa: F401  (registers the weights-only loader)
from projects.psalm.engine import UnsafeCheckpointError, load_weights_only
from projects.psalm.engine.hooks import from_plain, to_plain


class ToyModel(BaseModel):

    def __init__(self, width: int = 4):
        super().__init__()
        self.fc = nn.Linear(width, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.fc(inputs)
        if mode == 'loss':
            return dict(loss=out.pow(2).mean())
        return out


class ToyData(torch.utils.data.Dataset):

    def __len__(self):
        return 16

    def __getitem__(self, idx):
        g = torch.Generator().manual_seed(idx)
        return dict(inputs=torch.randn(4, generator=g))


class OtherModel(ToyModel):
    """A different architecture: other names, other shapes."""

    def __init__(self):
        super().__init__()
        del self.fc
        self.head = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 1))

    def forward(self, inputs, data_samples=None, mode='tensor'):
        return self.head(inputs)


def make_runner(work_dir, max_iters=4, model=None, **kwargs):
    return Runner(
        model=model or ToyModel(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=ToyData(),
            sampler=dict(type='InfiniteSampler', shuffle=True),
            batch_size=2,
            collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        param_scheduler=[
            dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
                 end=2),
            dict(type='CosineAnnealingLR', by_epoch=False, begin=2,
                 end=max_iters)
        ],
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=2,
                            by_epoch=False)),
        custom_hooks=[dict(type='SafeCheckpointHook')],
        default_scope='mmdet',
        randomness=dict(seed=0),
        **kwargs)


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('ckpt')
    runner = make_runner(work_dir)
    runner.train()
    return work_dir, runner


def test_runner_checkpoint_is_weights_only(trained):
    work_dir, runner = trained
    path = os.path.join(work_dir, 'iter_4.pth')
    # nothing outside torch's weights-only allow-list
    assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == []
    ckpt = torch.load(path, weights_only=True)
    assert torch.equal(ckpt['state_dict']['fc.weight'],
                       runner.model.fc.weight.detach())
    assert ckpt['meta']['iter'] == 4


def test_resume_restores_state(trained, tmp_path):
    work_dir, runner = trained
    resumed = make_runner(tmp_path, max_iters=4)
    resumed.load_checkpoint(os.path.join(work_dir, 'iter_4.pth'))
    resumed.resume(os.path.join(work_dir, 'iter_4.pth'))
    assert resumed.iter == 4
    # message hub history came back as real HistoryBuffers with the values
    src = runner.message_hub.get_scalar('train/loss')
    dst = resumed.message_hub.get_scalar('train/loss')
    assert dst.data[0].tolist() == pytest.approx(src.data[0].tolist())
    # optimizer state (AdamW moments) restored
    s_src = runner.optim_wrapper.optimizer.state_dict()['state'][0]
    s_dst = resumed.optim_wrapper.optimizer.state_dict()['state'][0]
    assert torch.allclose(s_src['exp_avg'], s_dst['exp_avg'])


def test_to_plain_round_trip():
    from mmengine.logging import HistoryBuffer
    import numpy as np
    buf = HistoryBuffer([1.0, 2.0], [1, 1])
    plain = to_plain({'a': buf, 'b': np.float64(3.5), 'c': np.arange(3)})
    assert plain['b'] == 3.5 and isinstance(plain['b'], float)
    assert plain['c'] == [0, 1, 2]
    back = from_plain(plain)
    assert isinstance(back['a'], HistoryBuffer)
    assert back['a'].mean() == pytest.approx(1.5)


class _RunsCode:

    def __reduce__(self):
        return (os.system, ('echo pwned > /dev/null',))


def test_crafted_pickle_is_refused(tmp_path):
    path = tmp_path / 'evil.pth'
    with open(path, 'wb') as f:
        pickle.dump({'state_dict': {}, 'x': _RunsCode()}, f)
    with pytest.raises(UnsafeCheckpointError, match='evil.pth'):
        load_weights_only(str(path))
    # mmengine's own entry point goes through the same loader
    with pytest.raises(UnsafeCheckpointError):
        load_checkpoint(ToyModel(), str(path))


def test_truncated_and_missing_files(trained, tmp_path):
    work_dir, _ = trained
    data = open(os.path.join(work_dir, 'iter_4.pth'), 'rb').read()
    path = tmp_path / 'cut.pth'
    path.write_bytes(data[:len(data) // 2])
    with pytest.raises(UnsafeCheckpointError, match='cut.pth'):
        load_weights_only(str(path))
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        load_weights_only(str(tmp_path / 'nope.pth'))


def test_checkpoint_of_another_model_is_refused(trained, tmp_path):
    work_dir, _ = trained
    other = make_runner(tmp_path, model=OtherModel())
    with pytest.raises(ValueError, match='does not fit this model'):
        other.load_checkpoint(os.path.join(work_dir, 'iter_4.pth'))


def test_safetensors_load_without_pickle(tmp_path):
    from safetensors.torch import save_file
    model = ToyModel()
    path = tmp_path / 'toy.safetensors'
    save_file(model.state_dict(), str(path))
    state = load_weights_only(str(path))
    assert torch.equal(state['fc.weight'], model.fc.weight.detach())
    other = ToyModel()
    load_checkpoint(other, str(path))  # mmengine's entry point
    assert torch.equal(other.fc.weight, model.fc.weight)
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(UnsafeCheckpointError, match='toy.safetensors'):
        load_weights_only(str(path))


def test_no_unsafe_loading_switch_in_the_code(repo_root):
    """Nothing turns remote code or full unpickling on."""
    forbidden = ('trust_remote_' + 'code', 'weights_only=' + 'False',
                 'TORCH_FORCE_NO_WEIGHTS_' + 'ONLY_LOAD=1')
    hits = []
    for folder in ('projects', 'tools', 'configs'):
        for root, _, files in os.walk(os.path.join(repo_root, folder)):
            for name in files:
                if not name.endswith(('.py', '.sh')):
                    continue
                path = os.path.join(root, name)
                with open(path, encoding='utf-8') as f:
                    text = f.read()
                hits += [(path, word) for word in forbidden if word in text]
    assert hits == []
