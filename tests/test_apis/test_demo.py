# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""tools/demo.py writes the picture and the json of one prompt."""
import json
import os
import os.path as osp
import subprocess
import sys

import mmcv
import pycocotools.mask as mask_utils
import pytest
from config_testing import TINY_MODEL
from psalm_testing import load_tool

DEMO = 'tools/demo.py'


def test_demo_subprocess_writes_png_and_json(repo_root, image_path,
                                             tiny_checkpoint, tmp_path):
    out_dir = tmp_path / 'out'
    proc = subprocess.run(
        [sys.executable, DEMO, image_path, '--config', TINY_MODEL,
         '--checkpoint', tiny_checkpoint, '--text', 'the man on the horse',
         '--out-dir', str(out_dir), '--device', 'cpu'],
        cwd=repo_root, capture_output=True, text=True, timeout=300,
        env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert proc.returncode == 0, proc.stderr[-3000:]
    png = out_dir / '000000439180_referring.png'
    js = out_dir / '000000439180_referring.json'
    assert str(png) in proc.stdout and str(js) in proc.stdout
    assert mmcv.imread(str(png)).shape == (360, 640, 3)
    result = json.loads(js.read_text())
    assert result['task'] == 'referring'
    assert result['label_names'] == ['the man on the horse']
    (rle, ) = result['masks']
    assert mask_utils.decode(rle).shape == (360, 640)
    assert isinstance(result['scores'][0], float)


@pytest.mark.parametrize('prompt, task, num_masks', [
    (['--box', '10,20,200,240', '--box', '300,40,420,200'], 'interactive',
     2),
    (['--categories-file', 'CLASSES'], 'semantic', None),
    (['--question', 'What is this?'], 'vqa', None),
])
def test_demo_prompt_options(repo_root, image_path, tiny_checkpoint, tmp_path,
                             prompt, task, num_masks):
    classes = tmp_path / 'classes.txt'
    classes.write_text('person\n\nhorse\ntree\n')
    prompt = [str(classes) if p == 'CLASSES' else p for p in prompt]
    extra = ['--task', 'semantic'] if task == 'semantic' else []
    picture, json_path = load_tool(DEMO).main([
        image_path, '--config', osp.join(repo_root, TINY_MODEL),
        '--checkpoint', tiny_checkpoint, '--out-dir', str(tmp_path)
    ] + prompt + extra)
    assert osp.basename(picture) == f'000000439180_{task}.png'
    assert osp.isfile(picture)
    with open(json_path) as f:
        result = json.load(f)
    assert result['task'] == task
    if task == 'vqa':
        assert isinstance(result['answer'], str)
    elif task == 'semantic':
        assert set(result['label_names']) <= {'person', 'horse', 'tree'}
    else:
        assert len(result['masks']) == num_masks


def test_demo_rejects_two_prompts(repo_root, image_path, tiny_checkpoint):
    with pytest.raises(SystemExit):
        load_tool(DEMO).main([
            image_path, '--config', TINY_MODEL, '--checkpoint',
            tiny_checkpoint, '--text', 'a', '--points', '1,2'
        ])
    with pytest.raises(SystemExit):
        load_tool(DEMO).main([
            image_path, '--config', TINY_MODEL, '--checkpoint',
            tiny_checkpoint, '--points', '1,2,3'
        ])
