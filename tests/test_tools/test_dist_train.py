# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""tools/dist_train.sh with 2 CPU processes (gloo), then tools/test.py."""
import json
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest
import torch

SMOKE = 'configs/smoke/mask2former_swin-tiny_1xb2-60it_coco-sample.py'


def free_port() -> str:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return str(sock.getsockname()[1])


def run(cmd, cwd, env=None, timeout=600):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f'{" ".join(cmd)} failed ({proc.returncode}):\n'
                             f'{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}')
    return proc


@pytest.mark.timeout(900)
def test_dist_train_two_cpu_processes_then_test(repo_root, tmp_path):
    work_dir = str(tmp_path / 'dist')
    env = dict(os.environ, PYTHON=sys.executable, PORT=free_port(),
               CUDA_VISIBLE_DEVICES='')
    run(['bash', 'tools/dist_train.sh', SMOKE, '2', '--work-dir', work_dir,
         '--cfg-options', 'train_cfg.max_iters=6', 'train_cfg.val_interval=6',
         'default_hooks.checkpoint.interval=6', 'default_hooks.logger.interval=2'],
        cwd=repo_root, env=env)
    ckpt = osp.join(work_dir, 'iter_6.pth')
    assert osp.isfile(ckpt)
    # the checkpoint is weights-only loadable and reports the 6 iterations
    state = torch.load(ckpt, weights_only=True)
    assert state['meta']['iter'] == 6
    # the run really was distributed over 2 processes
    log_file = next(osp.join(r, f) for r, _, fs in os.walk(work_dir)
                    for f in fs if f.endswith('.log'))
    log = open(log_file).read()
    assert 'Distributed training: True' in log
    assert 'GPU number: 2' in log  # mmengine's name for the world size
    logs = [json.loads(line) for line in open(
        next(osp.join(r, f) for r, _, fs in os.walk(work_dir) for f in fs
             if f == 'scalars.json'))]
    losses = {e['iter']: e['loss'] for e in logs if 'loss' in e}
    assert {2, 4, 6} <= set(losses)
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())

    # tools/test.py loads that checkpoint and evaluates COCO mask AP
    out = run([sys.executable, 'tools/test.py', SMOKE, ckpt, '--work-dir',
               str(tmp_path / 'test')], cwd=repo_root)
    assert 'coco/segm_mAP' in out.stdout + out.stderr
