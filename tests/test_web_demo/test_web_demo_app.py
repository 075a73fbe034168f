# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""The web demo's logic without a browser (random tiny PSALM): trained
tasks from the config, the default checkpoint, the messages for an empty
prompt / a prompt outside the image / an untrained task, one encoding per
image, the prompts drawn on the image, and the Gradio page's wiring."""
import json
import os.path as osp

import mmcv
import numpy as np
import pytest
from config_testing import TINY_MODEL
from mmengine.config import Config
from psalm_testing import load_tool

from projects.psalm.apis.web_demo import (DEFAULT_CONFIG, TASKS, DemoError,
                                          PSALMWebDemo, default_checkpoint,
                                          draw_clicks, painted_mask,
                                          shapesworld_examples,
                                          trained_tasks)

IMAGE = 'coco_panoptic_sample/input_images/000000439180.jpg'  # 640x360


@pytest.fixture(scope='module')
def demo(repo_root, tiny_checkpoint) -> PSALMWebDemo:
    return PSALMWebDemo(osp.join(repo_root, TINY_MODEL), tiny_checkpoint,
                        device='cpu', tasks=('panoptic', 'referring',
                                             'interactive'))


@pytest.fixture(scope='module')
def image(data_root) -> np.ndarray:
    return mmcv.imread(osp.join(data_root, IMAGE), channel_order='rgb')


# ----------------------------------------------------------------------
# trained tasks, default checkpoint, examples
# ----------------------------------------------------------------------
def test_trained_tasks_of_the_training_configs(repo_root):
    import projects.psalm  # noqa: F401  (registers the datasets)
    from mmdet.utils import register_all_modules
    register_all_modules()
    cfg = Config.fromfile(osp.join(repo_root, DEFAULT_CONFIG))
    assert trained_tasks(cfg) == ('panoptic', 'referring', 'interactive',
                                  'vqa')
    # a sub-dataset the task sampler never draws is not trained
    cfg.train_dataloader.batch_sampler.task_ratios = [0, 1, 1, 0]
    assert trained_tasks(cfg) == ('referring', 'interactive')
    # a `task` argument wins (the panoptic dataset serves three tasks)
    cfg.train_dataloader.batch_sampler.task_ratios = [1, 0, 0, 0]
    cfg.train_dataloader.dataset.datasets[0].task = 'semantic'
    assert trained_tasks(cfg) == ('semantic', )
    # no training data: unknown
    assert trained_tasks(Config.fromfile(osp.join(repo_root,
                                                  TINY_MODEL))) is None


def test_trained_tasks_read_from_the_checkpoint_meta(repo_root, tmp_path,
                                                     tiny_checkpoint):
    import torch
    cfg = Config.fromfile(osp.join(repo_root, DEFAULT_CONFIG))
    cfg.train_dataloader.batch_sampler.task_ratios = [0, 1, 0, 0]
    checkpoint = torch.load(tiny_checkpoint, weights_only=True)
    checkpoint['meta'] = dict(cfg=cfg.pretty_text)
    path = str(tmp_path / 'with_meta.pth')
    torch.save(checkpoint, path)
    demo = PSALMWebDemo(osp.join(repo_root, TINY_MODEL), path, device='cpu')
    assert demo.trained == ('referring', )
    assert demo.tasks_source == "the checkpoint's training config"
    # the config text of a checkpoint is parsed, never run
    marker = tmp_path / 'ran'
    checkpoint['meta'] = dict(
        cfg='import pathlib\ntrain_dataloader = dict(dataset=pathlib.Path('
        f'{str(marker)!r}).touch())\n')
    torch.save(checkpoint, path)
    demo = PSALMWebDemo(osp.join(repo_root, TINY_MODEL), path, device='cpu')
    assert demo.trained is None and not marker.exists()
    # the config without training data: tasks unknown, nothing refused
    demo = PSALMWebDemo(osp.join(repo_root, TINY_MODEL), tiny_checkpoint,
                        device='cpu')
    assert demo.trained is None
    assert all(demo.task_note(task) == '' for task in TASKS)


def test_untrained_task_is_refused_with_a_clear_message(demo, image):
    with pytest.raises(DemoError, match="not trained on the 'vqa' task"):
        demo.predict(image, 'vqa', 'What is there?')
    with pytest.raises(DemoError, match='panoptic, referring, interactive'):
        demo.task_note('vqa')
    # zero-shot tasks of a trained base task run, with a note
    assert demo.task_note('gres').startswith('zero-shot')
    assert demo.task_note('semantic').startswith('zero-shot')
    assert demo.task_label('vqa') == 'vqa (not trained)'
    assert demo.task_label('instance') == 'instance (zero-shot)'
    assert demo.task_label('referring') == 'referring'
    result = demo.predict(image, 'gres', 'the horse')
    assert result.warning.startswith('zero-shot')
    with pytest.raises(DemoError, match='unknown task'):
        demo.task_note('depth')


def test_default_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match='bash tools/quickstart.sh'):
        default_checkpoint(str(tmp_path / 'last_checkpoint'))
    pointer = tmp_path / 'last_checkpoint'
    pointer.write_text('/nowhere/iter_3000.pth')
    with pytest.raises(FileNotFoundError, match='does not exist'):
        default_checkpoint(str(pointer))
    # a moved work dir: the checkpoint next to the pointer
    (tmp_path / 'iter_3000.pth').write_bytes(b'')
    pointer.write_text('iter_3000.pth')
    assert default_checkpoint(str(pointer)) == str(tmp_path /
                                                   'iter_3000.pth')


def test_shapesworld_examples(tmp_path):
    assert shapesworld_examples(str(tmp_path)) == []  # not generated
    from projects.psalm.datasets.shapesworld import generate_shapesworld
    root = str(tmp_path / 'sw')
    generate_shapesworld(root, num_train=1, num_val=4, num_videos=1, seed=0)
    examples = shapesworld_examples(root)
    assert [e.task for e in examples] == [
        'referring', 'interactive', 'panoptic', 'vqa'
    ]
    assert all(osp.isfile(e.image) for e in examples)
    assert examples[0].text.startswith('the ')
    assert 'circle' in examples[2].text and examples[3].text.endswith('?')


# ----------------------------------------------------------------------
# prompts
# ----------------------------------------------------------------------
@pytest.mark.parametrize('task,kwargs,message', [
    ('referring', dict(text='  '), 'type a referring expression'),
    ('panoptic', dict(text=' , ;'), 'type the categories'),
    ('interactive', dict(visual='point'), 'click on the object'),
    ('interactive', dict(visual='box', clicks=[(5, 5)]),
     'two opposite corners'),
    ('interactive', dict(visual='scribble', clicks=[(5, 5)]),
     'at least two points'),
    ('interactive', dict(visual='mask'), 'paint the object'),
])
def test_empty_prompt_messages(demo, image, task, kwargs, message):
    with pytest.raises(DemoError, match='the .*prompt is empty') as error:
        demo.predict(image, task, **kwargs)
    assert message in str(error.value)


@pytest.mark.parametrize('visual,clicks', [
    ('point', [(640, 10)]),
    ('point', [(-1, 10)]),
    ('box', [(10, 10), (700, 400)]),
    ('scribble', [(10, 10), (100, 360)]),
])
def test_prompt_outside_the_image(demo, image, visual, clicks):
    with pytest.raises(DemoError, match='outside the 640x360 image'):
        demo.predict(image, 'interactive', clicks=clicks, visual=visual)


def test_mask_of_another_size_is_refused(demo, image):
    with pytest.raises(DemoError, match='the image is 640x360'):
        demo.predict(image, 'interactive', visual='mask',
                     mask=np.ones((10, 10), bool))
    with pytest.raises(DemoError, match='no image'):
        demo.predict(None, 'referring', 'the horse')


def test_prompt_kwargs(demo):
    shape = (360, 640)
    assert demo.prompt_kwargs('panoptic', shape, 'horse, person;grass,'
                              'horse') == dict(
                                  categories=['horse', 'person', 'grass'],
                                  task='panoptic')
    # the clicked corner pixels are inside the box
    assert demo.prompt_kwargs(
        'interactive', shape, clicks=[(30, 40), (10, 20)],
        visual='box') == dict(box=(10.0, 20.0, 31.0, 41.0),
                              task='interactive')
    assert demo.prompt_kwargs(
        'interactive', shape, clicks=[(1, 2), (3, 4)],
        visual='scribble') == dict(scribble=[(1.0, 2.0), (3.0, 4.0)],
                                   task='interactive')


# ----------------------------------------------------------------------
# one encoding per image
# ----------------------------------------------------------------------
def test_prompts_reuse_the_image_features(repo_root, tiny_checkpoint,
                                          image, backbone_calls):
    demo = PSALMWebDemo(osp.join(repo_root, TINY_MODEL), tiny_checkpoint,
                        device='cpu', cache_size=2)
    calls = backbone_calls(demo.inferencer.model)
    assert demo.set_image(image) == (demo.image_key(image), True)
    assert calls.count == 1
    first = demo.predict(image, 'interactive', clicks=[(300, 200)])
    second = demo.predict(image, 'interactive',
                          clicks=[(300, 200), (310, 190)])
    demo.predict(image, 'referring', 'the man on the horse')
    assert calls.count == 1 and demo.encode_count == 1  # clicks: no encoding
    assert 'image features reused' in second.status
    assert first.picture.shape == image.shape
    # another image is encoded; switching back uses the cache
    other = np.ascontiguousarray(image[:, ::-1])
    demo.predict(other, 'interactive', clicks=[(300, 200)])
    assert calls.count == 2
    demo.predict(image, 'interactive', clicks=[(300, 200)])
    assert calls.count == 2
    # cache_size=2: a third image pushes out the least recently used
    third = np.ascontiguousarray(image[::-1])
    demo.set_image(third)
    demo.predict(other, 'interactive', clicks=[(300, 200)])
    assert calls.count == 4


def test_result_is_json_ready(demo, image):
    result = demo.predict(image, 'interactive', clicks=[(300, 200)])
    prediction = json.loads(json.dumps(result.prediction))
    assert prediction['task'] == 'interactive'
    assert prediction['prompt'] == dict(points=[[300.0, 200.0]],
                                        task='interactive')
    assert len(prediction['masks']) == 1
    assert prediction['masks'][0]['size'] == [360, 640]
    assert result.summary['masks'][0]['label'] == 'point 0'
    assert result.status.startswith('interactive: 1 mask in ')
    painted = np.zeros((360, 640), bool)
    painted[100:150, 200:260] = True
    result = demo.predict(image, 'interactive', visual='mask', mask=painted)
    assert json.loads(json.dumps(result.prediction))['prompt']['mask'][
        'size'] == [360, 640]


# ----------------------------------------------------------------------
# drawing and the page
# ----------------------------------------------------------------------
def test_draw_clicks_and_painted_mask():
    image = np.zeros((40, 60, 3), np.uint8)
    dots = draw_clicks(image, [(10, 10), (50, 30)], 'point')
    assert dots[10, 10].tolist() == [255, 255, 255]
    assert dots[30, 50].tolist() == [255, 255, 255]
    assert not image.any()  # the input is not modified
    box = draw_clicks(image, [(10, 10), (50, 30)], 'box')
    assert box[10, 30].any() and box[30, 30].any() and not box[20, 30].any()
    line = draw_clicks(image, [(10, 20), (50, 20)], 'scribble')
    assert line[20, 30].any()
    assert painted_mask(None, (40, 60)) is None
    layer = np.zeros((40, 60, 4), np.uint8)
    assert painted_mask(dict(layers=[layer]), (40, 60)) is None
    layer[5:10, 20:30, 3] = 255
    mask = painted_mask(dict(layers=[layer]), (40, 60))
    assert mask.sum() == 50 and mask[5:10, 20:30].all()
    # an editor canvas of twice the size is brought to the image size
    big = np.zeros((80, 120, 4), np.uint8)
    big[10:20, 40:60, 3] = 255
    assert painted_mask(dict(layers=[big]), (40, 60)).sum() == 50


def test_build_app_wires_the_page(demo, data_root):
    pytest.importorskip('gradio', reason='the web demo needs Gradio '
                        '(pip install -r requirements/demo.txt)')
    from projects.psalm.apis.web_demo import DemoExample, build_app
    example = DemoExample(osp.join(data_root, IMAGE), 'referring',
                          'the horse', 'the horse')
    app = build_app(demo, [example])
    config = app.get_config_file()
    ids = {c['props'].get('elem_id') for c in config['components']}
    assert {'psalm-canvas', 'psalm-result', 'psalm-status', 'psalm-text',
            'psalm-task', 'psalm-run', 'psalm-file'} <= ids
    task = [c for c in config['components']
            if c['props'].get('elem_id') == 'psalm-task'][0]
    assert ('vqa (not trained)', 'vqa') in map(tuple, task['props']['choices'])
    assert task['props']['value'] == 'referring'


def test_tool_arguments_and_errors(repo_root, tmp_path):
    tool = load_tool('tools/web_demo.py')
    args = tool.parse_args([])
    assert args.config == DEFAULT_CONFIG
    assert args.checkpoint is None and args.port == 7860
    args = tool.parse_args(['--checkpoint', 'a.pth', '--port', '7861',
                            '--any-task'])
    assert args.checkpoint == 'a.pth' and args.port == 7861
    assert args.any_task
    # a missing checkpoint: one clear line, no traceback
    missing = str(tmp_path / 'missing.pth')
    with pytest.raises(SystemExit, match='missing.pth.* does not exist'):
        tool.main(['--checkpoint', missing])
