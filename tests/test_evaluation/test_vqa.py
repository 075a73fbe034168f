# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""VQA answer normalisation, exact match and VQA accuracy."""
import pytest

from projects.psalm.evaluation.functional.vqa import (exact_match,
                                                      normalize_answer,
                                                      vqa_accuracy)


@pytest.mark.parametrize('answer,expected', [
    ('Two dogs.', '2 dogs'),
    ('The cat', 'cat'),
    ('  Yes!\n', 'yes'),
    ('dont know', "don't know"),
    ('red/blue', 'red blue'),
    ('1,000', '1000'),
    ('3.5', '3.5'),
    ('an apple, a pear', 'apple pear'),
])
def test_normalize_answer(answer, expected):
    assert normalize_answer(answer) == expected


def test_exact_match():
    assert exact_match('Two', '2') == 1.0
    assert exact_match('the Dog.', 'dog') == 1.0
    assert exact_match('dogs', 'dog') == 0.0
    assert exact_match('cat', ['dog', 'Cat']) == 1.0


@pytest.mark.parametrize('num_matches,expected', [
    # leave-one-out over 10 humans, min(#matching others / 3, 1):
    (0, 0.0),
    (1, (1 * 0 + 9 * 1 / 3) / 10),  # 0.3
    (2, (2 * 1 / 3 + 8 * 2 / 3) / 10),  # 0.6
    (3, (3 * 2 / 3 + 7 * 1) / 10),  # 0.9
    (4, 1.0),
    (10, 1.0),
])
def test_vqa_accuracy_leave_one_out(num_matches, expected):
    answers = ['yes'] * num_matches + ['no'] * (10 - num_matches)
    assert vqa_accuracy('Yes', answers) == pytest.approx(expected)


def test_vqa_accuracy_normalises_human_answers():
    answers = ['2', 'two', 'Two.', 'three'] + ['3'] * 6
    assert vqa_accuracy('2', answers) == pytest.approx(0.9)
    with pytest.raises(ValueError):
        vqa_accuracy('yes', [])
