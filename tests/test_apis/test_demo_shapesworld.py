# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""tools/demo.py with a TRAINED tiny PSALM on a ShapesWorld image: for every
prompt kind the saved json mask and the saved picture mark the intended
object (the model is the session's ``shapesworld_model``; its image is a
training image, so this checks the demo, not generalisation)."""
import json

import mmcv
import numpy as np
import pycocotools.mask as mask_utils
import pytest
from psalm_testing import load_tool

DEMO = 'tools/demo.py'


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(int((a | b).sum()), 1))


def _run(repo_root, model, tmp_path, prompt):
    picture, json_path = load_tool(DEMO).main(
        [model['image'], '--config', model['config'], '--checkpoint',
         model['checkpoint'], '--out-dir', str(tmp_path), '--device', 'cpu'] +
        prompt)
    with open(json_path) as f:
        result = json.load(f)
    masks = [mask_utils.decode(rle).astype(bool)
             for rle in result.get('masks', [])]
    return mmcv.imread(picture, channel_order='rgb'), result, masks


def _marked(picture: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Pixels the visualization changed (blended masks, outlines, text)."""
    return np.abs(picture.astype(int) - image.astype(int)).sum(-1) > 30


def _xy(point) -> str:
    return f'{point[0]},{point[1]}'


@pytest.fixture(scope='module')
def model(shapesworld_model):
    return shapesworld_model


@pytest.fixture(scope='module')
def obj(model):
    """The object the visual prompts are put on: the smallest object with
    a referring expression (the last target)."""
    return model['targets'][-1]


def _prompts(model, obj, tmp_path):
    """prompt kind -> demo arguments (visual prompts on ``obj``)."""
    examples = model['examples']
    target = [o for o in examples.objects if o.point == obj['point']][0]
    mask_png = str(tmp_path / 'prompt_mask.png')
    mmcv.imwrite(target.mask.astype(np.uint8) * 255, mask_png)
    return {
        'point': ['--points', _xy(target.point)],
        'box': ['--box', ','.join(map(str, target.box))],
        'scribble': ['--scribble'] + [_xy(p) for p in target.scribble],
        'mask': ['--mask', mask_png],
    }


@pytest.mark.parametrize('kind', ['point', 'box', 'scribble', 'mask'])
def test_visual_prompts_mark_their_object(repo_root, model, obj, tmp_path,
                                          kind):
    prompt = _prompts(model, obj, tmp_path)[kind]
    picture, result, masks = _run(repo_root, model, tmp_path, prompt)
    assert result['task'] == 'interactive' and len(masks) == 1
    assert _iou(masks[0], obj['mask']) > 0.5, kind
    # the picture: the blended mask is drawn where the object is
    image = mmcv.imread(model['image'], channel_order='rgb')
    marked = _marked(picture, image)
    assert marked[obj['mask']].mean() > 0.5
    assert (marked & obj['mask']).sum() > 0.5 * (marked & masks[0]).sum()


def test_referring_marks_each_target(repo_root, model, tmp_path):
    image = mmcv.imread(model['image'], channel_order='rgb')
    for target in model['targets']:
        picture, result, masks = _run(repo_root, model, tmp_path,
                                      ['--text', target['text']])
        assert result['task'] == 'referring'
        assert result['label_names'] == [target['text']]
        assert _iou(masks[0], target['mask']) > 0.5, target['text']
        assert _marked(picture, image)[target['mask']].mean() > 0.5


def test_categories_find_the_object(repo_root, model, obj, tmp_path):
    examples = model['examples']
    _, result, masks = _run(
        repo_root, model, tmp_path,
        ['--categories', ','.join(examples.class_names), '--task',
         'instance'])
    assert result['task'] == 'instance'
    assert set(result['label_names']) <= set(examples.class_names)
    best = max(_iou(m, obj['mask']) for m in masks)
    assert best > 0.5


def test_question_gives_a_text_answer(repo_root, model, tmp_path):
    question = 'How many circles are there?'
    picture, result, _ = _run(repo_root, model, tmp_path,
                              ['--question', question])
    assert result['task'] == 'vqa' and isinstance(result['answer'], str)
    # the model's own answer (greedy decoding), not any string
    from projects.psalm.apis import PSALMInferencer
    direct = PSALMInferencer(model['config'], model['checkpoint'],
                             device='cpu')(model['image'], question=question)
    assert result['answer'] == direct['predictions'][0]['answer']
    image = mmcv.imread(model['image'], channel_order='rgb')
    assert _marked(picture, image).any()  # the answer is written on it
