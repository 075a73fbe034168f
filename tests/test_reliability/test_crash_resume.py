# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""SIGKILL a real training run, ``--resume`` it, get the same losses.

tools/train.py trains the quickstart's joint config (tiny PSALM; panoptic,
referring, interactive and vqa batches, a random task per step) on the
fixture tree for 8 iterations, with a checkpoint every 3. One run goes
through uninterrupted; a second one, started at the same time with the same
command, is killed with SIGKILL as soon as its ``last_checkpoint`` names a
checkpoint, and is then resumed with ``--resume`` in a new process. Every
logged loss of the iterations after the checkpoint equals the uninterrupted
run's (model, optimizer, scheduler, sampler position and RNG states all
restored; data loading reseeded per batch in the workers).
"""
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import time

import pytest
from psalm_testing import load_tool

from projects.psalm.engine import load_weights_only

CONFIG = 'configs/fixtures/psalm_tiny_1xb2-1000it_fixtures.py'
MAX_ITERS = 8
INTERVAL = 3


@pytest.fixture(scope='module')
def data_options(repo_root, tmp_path_factory):
    module = load_tool('tools/misc/prepare_fixture_data.py')
    root = str(tmp_path_factory.mktemp('crash') / 'data')
    module.prepare(root)
    return [f'{k}={v}' for k, v in module.joint_data_roots(root).items()]


def train_command(work_dir, options, num_workers, resume=False):
    return [
        sys.executable, 'tools/train.py', CONFIG, '--work-dir',
        str(work_dir), *(['--resume'] if resume else []), '--cfg-options',
        *options, f'train_cfg.max_iters={MAX_ITERS}',
        f'default_hooks.checkpoint.interval={INTERVAL}',
        'default_hooks.logger.interval=1', 'log_processor.window_size=1',
        f'train_dataloader.num_workers={num_workers}',
        f'train_dataloader.persistent_workers={num_workers > 0}'
    ]


def start(cmd, cwd, log):
    """Start a run in its own process group (it and its dataloader
    workers: a worker orphaned by a SIGKILL of the main process alone can
    block forever writing its prefetched batch to the dead parent)."""
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1')
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def kill_group(proc):
    """SIGKILL the run and its workers (the group started by start)."""
    if proc.poll() is None or _group_alive(proc.pid):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def _group_alive(pgid):
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def finish(proc, log_path, timeout=240):
    proc.wait(timeout=timeout)
    if proc.returncode != 0:
        with open(log_path) as f:
            raise AssertionError(f'training failed ({proc.returncode}):\n'
                                 f'{f.read()[-5000:]}')


def losses_by_iter(work_dir, after=0):
    """iter -> every logged loss / lr / grad_norm value, from all runs in
    ``work_dir`` (a resumed run logs in its own timestamp folder)."""
    found = {}
    for folder in sorted(os.listdir(work_dir)):
        path = osp.join(work_dir, folder, 'vis_data', 'scalars.json')
        if not osp.isfile(path):
            continue
        with open(path) as f:
            for line in f:
                entry = json.loads(line)
                if 'loss' in entry and entry['iter'] > after:
                    found[entry['iter']] = {
                        k: v
                        for k, v in entry.items()
                        if k.startswith(('loss', 'd0.', 'd1.', 'd2.',
                                         'lr', 'grad_norm'))
                    }
    return found


@pytest.mark.timeout(300)
def test_sigkill_then_resume_equals_uninterrupted(repo_root, tmp_path,
                                                  data_options):
    """With the quickstart's loader: 1 persistent worker. (num_workers=0,
    where the main process draws the data randomness, is checked in
    tests/test_engine/test_random_state.py.)"""
    num_workers = 1
    started = time.time()
    ref_dir, run_dir = tmp_path / 'uninterrupted', tmp_path / 'killed'
    ref_log, run_log = tmp_path / 'ref.log', tmp_path / 'run.log'
    with open(ref_log, 'w') as ref_out, open(run_log, 'w') as run_out:
        ref = start(
            train_command(ref_dir, data_options, num_workers), repo_root,
            ref_out)
        run = start(
            train_command(run_dir, data_options, num_workers), repo_root,
            run_out)
        try:
            # kill as soon as a checkpoint is complete and named
            latest = run_dir / 'last_checkpoint'
            while not (latest.exists() and latest.read_text()):
                assert run.poll() is None, open(run_log).read()[-3000:]
                assert time.time() - started < 200, 'no checkpoint in 200 s'
                time.sleep(0.02)
            assert run.poll() is None, 'the run ended before the kill'
            kill_group(run)
            finish(ref, ref_log)
        finally:
            for proc in (ref, run):
                kill_group(proc)
    assert run.returncode == -signal.SIGKILL
    # the kill came before the end, and last_checkpoint names a complete
    # checkpoint (written atomically) with the random states
    ckpt_path = latest.read_text()
    ckpt = load_weights_only(ckpt_path)
    resumed_at = ckpt['meta']['iter']
    assert resumed_at in range(INTERVAL, MAX_ITERS, INTERVAL)
    assert not osp.exists(run_dir / f'iter_{MAX_ITERS}.pth')
    assert len(ckpt['random_states']) == 1
    assert ckpt['meta']['sampler_seed'] == 0

    with open(tmp_path / 'resume.log', 'w') as out:
        resumed = start(
            train_command(run_dir, data_options, num_workers, resume=True),
            repo_root, out)
        try:
            finish(resumed, tmp_path / 'resume.log')
        finally:
            kill_group(resumed)
    log = (tmp_path / 'resume.log').read_text()
    assert f'Load checkpoint from {ckpt_path}' in log
    assert f'random states of iteration {resumed_at} are restored' in log

    expected = losses_by_iter(ref_dir, after=resumed_at)
    got = losses_by_iter(run_dir, after=resumed_at)
    assert sorted(expected) == list(range(resumed_at + 1, MAX_ITERS + 1))
    assert sorted(got) == sorted(expected)
    max_diff = 0.0
    for it in expected:
        assert got[it].keys() == expected[it].keys(), it
        for key, value in expected[it].items():
            assert got[it][key] == pytest.approx(value, abs=1e-6), (it, key)
            max_diff = max(max_diff, abs(got[it][key] - value))
    # the steps after the checkpoint trained both kinds of heads
    keys = set().union(*expected.values())
    assert 'loss_dice' in keys and 'loss_lm' in keys
    print(f'killed after iteration {resumed_at}, {len(expected)} '
          f'iterations x {len(keys)} values compared, largest difference '
          f'{max_diff}, {time.time() - started:.1f} s')
