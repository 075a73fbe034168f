# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Answer normalisation, exact match and VQA accuracy.

The normalisation reproduces the official VQA evaluation
(``GT-Vision-Lab/VQA``, ``vqaEval.py``: ``processPunctuation`` then
``processDigitArticle``), the same processing LLaVA's ``EvalAIAnswerProcessor``
applies. The official script normalises only when the human answers
disagree; here answers are always normalised (as EvalAI / LLaVA do), so an
answer never fails on case or punctuation alone.

VQA accuracy of a prediction against the 10 human answers is
``min(#matching humans / 3, 1)`` averaged over the 10 leave-one-out subsets
of 9 humans.
"""
import re
from typing import Sequence, Union

_CONTRACTIONS = {
    'aint': "ain't", 'arent': "aren't", 'cant': "can't",
    'couldve': "could've", 'couldnt': "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've",
    'didnt': "didn't", 'doesnt': "doesn't", 'dont': "don't",
    'hadnt': "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've",
    'hasnt': "hasn't", 'havent': "haven't", 'hed': "he'd",
    "hed've": "he'd've", "he'dve": "he'd've", 'hes': "he's",
    'howd': "how'd", 'howll': "how'll", 'hows': "how's",
    "Id've": "I'd've", "I'dve": "I'd've", 'Im': "I'm", 'Ive': "I've",
    'isnt': "isn't", 'itd': "it'd", "itd've": "it'd've",
    "it'dve": "it'd've", 'itll': "it'll", "let's": "let's",
    'maam': "ma'am", 'mightnt': "mightn't", "mightnt've": "mightn't've",
    "mightn'tve": "mightn't've", 'mightve': "might've",
    'mustnt': "mustn't", 'mustve': "must've", 'neednt': "needn't",
    'notve': "not've", 'oclock': "o'clock", 'oughtnt': "oughtn't",
    "ow's'at": "'ow's'at", "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at",
    'shant': "shan't", "shed've": "she'd've", "she'dve": "she'd've",
    "she's": "she's", 'shouldve': "should've", 'shouldnt': "shouldn't",
    "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've",
    "somebody'd": 'somebodyd', "somebodyd've": "somebody'd've",
    "somebody'dve": "somebody'd've", 'somebodyll': "somebody'll",
    'somebodys': "somebody's", 'someoned': "someone'd",
    "someoned've": "someone'd've", "someone'dve": "someone'd've",
    'someonell': "someone'll", 'someones': "someone's",
    'somethingd': "something'd", "somethingd've": "something'd've",
    "something'dve": "something'd've", 'somethingll': "something'll",
    'thats': "that's", 'thered': "there'd", "thered've": "there'd've",
    "there'dve": "there'd've", 'therere': "there're", 'theres': "there's",
    'theyd': "they'd", "theyd've": "they'd've", "they'dve": "they'd've",
    'theyll': "they'll", 'theyre': "they're", 'theyve': "they've",
    'twas': "'twas", 'wasnt': "wasn't", "wed've": "we'd've",
    "we'dve": "we'd've", 'weve': "we've", 'werent': "weren't",
    'whatll': "what'll", 'whatre': "what're", 'whats': "what's",
    'whatve': "what've", 'whens': "when's", 'whered': "where'd",
    'wheres': "where's", 'whereve': "where've", 'whod': "who'd",
    "whod've": "who'd've", "who'dve": "who'd've", 'wholl': "who'll",
    'whos': "who's", 'whove': "who've", 'whyll': "why'll",
    'whyre': "why're", 'whys': "why's", 'wont': "won't",
    'wouldve': "would've", 'wouldnt': "wouldn't",
    "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've",
    'yall': "y'all", "yall'll": "y'all'll", "y'allll": "y'all'll",
    "yall'd've": "y'all'd've", "y'alld've": "y'all'd've",
    "y'all'dve": "y'all'd've", 'youd': "you'd", "youd've": "you'd've",
    "you'dve": "you'd've", 'youll': "you'll", 'youre': "you're",
    'youve': "you've"
}
_NUMBERS = {
    'none': '0', 'zero': '0', 'one': '1', 'two': '2', 'three': '3',
    'four': '4', 'five': '5', 'six': '6', 'seven': '7', 'eight': '8',
    'nine': '9', 'ten': '10'
}
_ARTICLES = ('a', 'an', 'the')
_PUNCTUATION = (';', '/', '[', ']', '"', '{', '}', '(', ')', '=', '+', '\\',
                '_', '-', '>', '<', '@', '`', ',', '?', '!')
# Both patterns are verbatim from vqaEval.py (the first one's "(?!<=\d)" is
# a look-ahead, not a look-behind, in the original too).
_PERIOD_STRIP = re.compile(r'(?!<=\d)(\.)(?!\d)')
_COMMA_STRIP = re.compile(r'(\d)(,)(\d)')


def _process_punctuation(text: str) -> str:
    out = text
    for p in _PUNCTUATION:
        if (p + ' ' in text or ' ' + p in text) or \
                _COMMA_STRIP.search(text) is not None:
            out = out.replace(p, '')
        else:
            out = out.replace(p, ' ')
    return _PERIOD_STRIP.sub('', out)


def _process_digit_article(text: str) -> str:
    words = []
    for word in text.lower().split():
        word = _NUMBERS.get(word, word)
        if word not in _ARTICLES:
            words.append(_CONTRACTIONS.get(word, word))
    return ' '.join(words)


def normalize_answer(answer: str) -> str:
    """Normalise an answer as the VQA evaluation does.

    Newlines and tabs become spaces, punctuation is stripped (commas between
    digits and periods not followed by a digit are removed), the text is
    lower-cased, number words become digits (``'two'`` -> ``'2'``), articles
    are dropped and missing apostrophes are restored (``'dont'`` ->
    ``"don't"``).

    Args:
        answer (str): A predicted or human answer.

    Returns:
        str: The normalised answer.
    """
    answer = answer.replace('\n', ' ').replace('\t', ' ').strip()
    return _process_digit_article(_process_punctuation(answer))


def exact_match(prediction: str, answers: Union[str, Sequence[str]]) -> float:
    """Whether the normalised prediction equals a normalised answer.

    Args:
        prediction (str): The predicted answer.
        answers (str | Sequence[str]): One reference answer or several
            (a match with any of them counts).

    Returns:
        float: 1.0 on a match, else 0.0.
    """
    if isinstance(answers, str):
        answers = [answers]
    prediction = normalize_answer(prediction)
    return float(any(prediction == normalize_answer(a) for a in answers))


def vqa_accuracy(prediction: str, human_answers: Sequence[str]) -> float:
    """VQA accuracy against the human answers of one question.

    Args:
        prediction (str): The predicted answer.
        human_answers (Sequence[str]): The human answers (10 in VQA v2).

    Returns:
        float: ``mean_i min(#{j != i : answer_j == prediction} / 3, 1)`` over
        the leave-one-out subsets, after normalisation.

    Raises:
        ValueError: If ``human_answers`` is empty.
    """
    if len(human_answers) == 0:
        raise ValueError('VQA accuracy needs at least one human answer.')
    prediction = normalize_answer(prediction)
    matches = [normalize_answer(a) == prediction for a in human_answers]
    total = sum(matches)
    return sum(min((total - m) / 3, 1.0)
               for m in matches) / len(human_answers)
