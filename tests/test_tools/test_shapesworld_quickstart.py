# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""The ShapesWorld quickstart (tools/quickstart.sh): its configs, the
trivial baselines through tools/test.py, and the report.

* every benchmark of the script has a PSALM test config (the real benchmark
  bases with the ShapesWorld tiny model) and baseline configs that differ
  from it only by the model; the report covers the same benchmarks;
* tools/test.py runs PSALM (the session's briefly trained
  ``shapesworld_model``) and the baselines on a generated ShapesWorld, and
  the report script turns their metric files and the training log into
  report.md, loss_curve.png and pictures of every prompt kind.
"""
import glob
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
from mmengine.config import Config
from psalm_testing import load_tool

SW = 'configs/shapesworld/'
TRAIN = SW + 'psalm_tiny_2xb2-5k_shapesworld.py'
PRETRAIN = SW + 'swin-tiny-convstem_objcls_1xb4-1k_shapesworld.py'
REPORT = 'tools/analysis_tools/shapesworld_report.py'


def _script(repo_root):
    with open(osp.join(repo_root, 'tools', 'quickstart.sh')) as f:
        return f.read()


def _benchmarks(repo_root):
    match = re.search(r'BENCHMARKS=\(([^)]*)\)', _script(repo_root))
    return match.group(1).split()


def test_script_configs_and_report_agree(repo_root):
    script = _script(repo_root)
    assert f'CONFIG={TRAIN}' in script
    assert f'PRETRAIN_CONFIG={PRETRAIN}' in script
    # step 2 writes where the training config reads the Swin from
    assert 'WORK_DIR=work_dirs/quickstart\n' in script
    assert '--work-dir "$WORK_DIR/swin_pretrain"' in script
    subprocess.run(['bash', '-n', 'tools/quickstart.sh'], cwd=repo_root,
                   check=True)
    benchmarks = _benchmarks(repo_root)
    report = load_tool(REPORT)
    assert [b[0] for b in report.BENCHMARKS] == benchmarks
    baselines = sorted(
        osp.basename(p)
        for p in glob.glob(osp.join(repo_root, SW, 'baselines', '*.py')))
    expected = sorted(f'trivial_{rule}_shapesworld-{name}.py'
                      for name, _, _, rules, _ in report.BENCHMARKS
                      for rule, _ in rules)
    assert baselines == expected


def test_pretraining_trains_the_psalm_swin(repo_root):
    """Step 2 pre-trains exactly the Swin that step 3 loads and freezes,
    on the same training split (its checkpoint is where the training
    config looks for it)."""
    pretrain = Config.fromfile(osp.join(repo_root, PRETRAIN))
    train = Config.fromfile(osp.join(repo_root, TRAIN))
    assert pretrain.model.type == 'ObjectClassifier'
    swin = dict(train.model.backbone, init_cfg=None)
    assert pretrain.model.backbone == swin
    assert pretrain.model.data_preprocessor == train.model.data_preprocessor
    assert train.model.backbone.init_cfg.checkpoint == (
        f'work_dirs/quickstart/swin_pretrain/iter_'
        f'{pretrain.train_cfg.max_iters}.pth')
    panoptic = train.train_dataloader.dataset.datasets[0]
    data = pretrain.train_dataloader.dataset
    for key in ('type', 'data_root', 'ann_file', 'data_prefix', 'pipeline'):
        assert data[key] == panoptic[key], key


@pytest.mark.parametrize('name', [
    'panoptic', 'refcoco', 'grefcoco', 'interactive-point', 'davis', 'vqa'
])
def test_test_configs(repo_root, name):
    cfg = Config.fromfile(
        osp.join(repo_root, SW, f'psalm_tiny_test_shapesworld-{name}.py'))
    train = Config.fromfile(osp.join(repo_root, TRAIN))
    # the trained model, as trained; only training starts from the
    # pre-trained Swin and keeps it frozen
    assert train.model.frozen_modules == ('backbone', )
    assert train.model.backbone.init_cfg.checkpoint == \
        'work_dirs/quickstart/swin_pretrain/iter_1000.pth'
    train.model.frozen_modules = ()
    train.model.backbone.init_cfg = None
    assert cfg.model == train.model
    assert cfg.model.frozen_modules == ()
    assert cfg.model.input_schema.num_mask_tokens == 20
    dataset = cfg.test_dataloader.dataset
    assert dataset.data_root.startswith('data/shapesworld/')
    resize = [s for s in dataset.pipeline if s.type == 'Resize']
    assert [s.scale for s in resize] == [(256, 256)]
    for rule_cfg in glob.glob(
            osp.join(repo_root, SW, 'baselines', f'*shapesworld-{name}.py')):
        base = Config.fromfile(rule_cfg)
        assert base.model.type == 'TrivialBaseline'
        assert base.model.data_preprocessor == cfg.model.data_preprocessor
        assert base.test_dataloader == cfg.test_dataloader
        assert base.test_evaluator == cfg.test_evaluator


def _moved(config: str, data_root: str, out: str) -> str:
    """Dump ``config`` with every 'data/shapesworld/' path moved to
    ``data_root``."""
    cfg = Config.fromfile(config)
    text = cfg.pretty_text.replace("'data/shapesworld/",
                                   f"'{data_root.rstrip('/')}/")
    text = text.replace("'work_dirs/shapesworld_davis_val/",
                        f"'{osp.dirname(out)}/davis_out/")
    with open(out, 'w') as f:
        f.write(text)
    return out


def _test(repo_root, config, work_dir, checkpoint=None):
    cmd = [sys.executable, 'tools/test.py', config, '--work-dir', work_dir]
    if checkpoint:
        cmd.insert(3, checkpoint)
    proc = subprocess.run(
        cmd, cwd=repo_root, capture_output=True, text=True, timeout=600,
        env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.mark.timeout(600)
def test_baselines_psalm_and_report(repo_root, shapesworld_model, tmp_path):
    model = shapesworld_model
    root = model['data_root']
    work = tmp_path / 'quickstart'
    # PSALM and two baselines on the held-out interactive points; the
    # copy-first-frame baseline through the VOS loop
    runs = [
        ('test_interactive-point', 'psalm_tiny_test_shapesworld-'
         'interactive-point.py', model['checkpoint']),
        ('baseline_prompt_interactive-point', 'baselines/trivial_prompt_'
         'shapesworld-interactive-point.py', None),
        ('baseline_prompt_davis',
         'baselines/trivial_prompt_shapesworld-davis.py', None),
        ('baseline_colour_regions_panoptic', 'baselines/trivial_colour_'
         'regions_shapesworld-panoptic.py', None),
    ]
    for name, config, checkpoint in runs:
        moved = _moved(osp.join(repo_root, SW, config), root,
                       str(tmp_path / f'{name}.py'))
        _test(repo_root, moved, str(work / name), checkpoint)
    # a checkpoint is required for a model with weights
    moved = _moved(osp.join(repo_root, SW, runs[0][1]), root,
                   str(tmp_path / 'no_ckpt.py'))
    proc = subprocess.run(
        [sys.executable, 'tools/test.py', moved, '--work-dir',
         str(tmp_path / 'x')], cwd=repo_root, capture_output=True, text=True)
    assert proc.returncode != 0
    assert 'give the checkpoint to evaluate' in proc.stderr

    report = load_tool(REPORT)
    metrics = report.read_metrics(str(work / 'baseline_prompt_davis'))
    # copying the first frame: perfect on frame 0 only, objects move
    assert 0 < metrics['vos/J&F'] < 100
    points = report.read_metrics(
        str(work / 'baseline_prompt_interactive-point'))
    assert 0 < points['interactive/mIoU'] < 50  # a dilated click is small
    # the training log of the fixture model -> loss curve; pictures
    run = osp.dirname(glob.glob(osp.join(
        osp.dirname(model['checkpoint']), '2*', 'vis_data'))[0])
    os.symlink(run, str(work / osp.basename(run)))
    report.make_pictures(model['config'], model['checkpoint'], root,
                         str(work / 'vis'), num_images=1)
    out, failures = report.write_report(str(work), dict(training=1))
    text = open(out).read()
    assert osp.isfile(work / 'loss_curve.png')
    assert '| PSALM (tiny) |' in text and 'the point itself' in text
    assert 'copy the first frame' not in text  # no PSALM davis run
    assert any('davis: no PSALM result' in f for f in failures)
    pictures = sorted(os.listdir(work / 'vis'))
    assert {p.split('_', 1)[1] for p in pictures} >= {
        'panoptic.png', 'referring.png', 'point.png', 'scribble.png',
        'box.png', 'mask.png', 'vqa.png'
    }
    for picture in pictures:
        assert f'vis/{picture}' in text
