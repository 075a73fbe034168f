# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""ShapesWorld text: referring / gRef expressions, QA pairs and captions.

Every sentence is rendered from a structured predicate
(:mod:`.predicates`) that is checked with :func:`evaluate_predicate`
against all objects of the image before it is emitted:

* referring expressions (RefCOCO style) name exactly their target; they
  are the shortest distinguishing descriptions among shape, colour + shape,
  size + shape, size + colour + shape, superlatives ("the largest
  triangle", "the leftmost circle") and relations to a unique landmark
  ("the circle left of the blue star"); ``style='refcoco+'`` leaves out
  locations (positional superlatives and relations), ``style='refcocog'``
  renders longer sentences that always give the target's three attributes;
* gRef expressions name several objects ("all green shapes", "the two
  squares"), none ("the purple star" when there is none) or one;
* QA pairs ask for counts, existence (yes / no, balanced), the colour /
  shape / size of a uniquely described object and the background, with
  single-word answers;
* captions list the objects by colour and shape and the ground bands.

Objects are dicts with ``id`` and the attributes of
:func:`~.scene.object_attributes`. Randomness (choices among valid
descriptions, surface forms) comes from the ``np.random.Generator`` passed
in.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .predicates import (FILTER_KEYS, LOCATION_SUPERLATIVES, RELATIONS,
                         SUPERLATIVES, evaluate_predicate, in_relation,
                         make_predicate)
from .scene import COLOURS, SIZE_CLASSES, STUFF_CLASSES, THING_CLASSES

__all__ = [
    'AREA_MARGIN', 'position_margin', 'noun_phrase', 'tokenize',
    'referring_predicates', 'referring_expressions', 'gref_expressions',
    'qa_pairs', 'caption', 'REFER_STYLES'
]

#: "largest" / "smallest" need the runner-up's shape area this many times
#: smaller / larger.
AREA_MARGIN = 1.25
#: Sentence styles of :func:`referring_expressions`.
REFER_STYLES = ('refcoco', 'refcoco+', 'refcocog')
_NUMBERS = ('zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven',
            'eight', 'nine', 'ten')
_SUPERLATIVE_FORMS = {
    'largest': ('the largest {np}', 'the biggest {np}'),
    'smallest': ('the smallest {np}', 'the tiniest {np}'),
    'leftmost': ('the leftmost {np}', 'the {np} on the far left'),
    'rightmost': ('the rightmost {np}', 'the {np} on the far right'),
    'topmost': ('the topmost {np}', 'the highest {np}'),
    'bottommost': ('the bottommost {np}', 'the lowest {np}'),
}
_SUPERLATIVE_CLAUSES = {
    'largest': 'that is the biggest of them',
    'smallest': 'that is the smallest of them',
    'leftmost': 'furthest to the left',
    'rightmost': 'furthest to the right',
    'topmost': 'highest up in the picture',
    'bottommost': 'lowest down in the picture',
}
_RELATION_FORMS = {
    'left of': ('left of', 'to the left of'),
    'right of': ('right of', 'to the right of'),
    'above': ('above', ),
    'below': ('below', ),
}
_GROUND_PHRASES = {'grass': 'on grass', 'sand': 'on sand',
                   'water': 'over water'}


def position_margin(image_size: int) -> float:
    """Margin (px) of the positional superlatives: 6% of the image side."""
    return 0.06 * image_size


def _choice(rng: np.random.Generator, items: Sequence):
    """One item, drawn uniformly."""
    return items[int(rng.integers(len(items)))]


def tokenize(text: str) -> List[str]:
    """Refer-toolkit tokens: lower case, punctuation dropped."""
    cleaned = ''.join(ch if ch.isalnum() or ch.isspace() else ' '
                      for ch in text.lower())
    return cleaned.split()


def noun_phrase(attributes: dict,
                plural: bool = False,
                noun: str = 'shape') -> str:
    """``[size] [colour] shape`` of a filter, e.g. ``'small red circle'``.

    Args:
        attributes (dict): ``size`` / ``colour`` / ``shape`` (None: left
            out; no shape gives ``noun``).
        plural (bool): Plural noun.
        noun (str): Noun of a filter without shape.

    Returns:
        str: The phrase.
    """
    head = attributes.get('shape') or noun
    if plural:
        head += 's'
    words = [attributes.get('size'), attributes.get('colour'), head]
    return ' '.join(word for word in words if word)


def _filter(obj: dict, keys: Sequence[str]) -> dict:
    """The attribute filter of an object on ``keys``."""
    return {key: (obj[key] if key in keys else None) for key in FILTER_KEYS}


_ATTRIBUTE_KEYS = (('shape', ), ('colour', 'shape'), ('size', 'shape'),
                   ('size', 'colour', 'shape'))


def _unique_filter(obj: dict, objects: Sequence[dict]) -> Optional[dict]:
    """The shortest attribute filter naming only ``obj`` (None if none)."""
    for keys in _ATTRIBUTE_KEYS:
        predicate = make_predicate(**_filter(obj, keys))
        if evaluate_predicate(predicate, objects) == [obj['id']]:
            return _filter(obj, keys)
    return None


def referring_predicates(target: dict,
                         objects: Sequence[dict],
                         image_size: int,
                         allow_location: bool = True
                         ) -> List[Tuple[str, int, dict]]:
    """Every candidate predicate that names exactly ``target``.

    Candidates (level = description length): shape (1); colour + shape,
    size + shape (2); size + colour + shape, a superlative of the shapes of
    the target's shape or of all shapes (3); a superlative among the
    target's colour and shape, a relation of the target's shape (or colour
    + shape) to another object named by its shortest unique attribute
    filter (4). Superlatives are only used among two or more objects.

    Args:
        target (dict): The target object.
        objects (Sequence[dict]): All objects of the image (target
            included).
        image_size (int): Image side (superlative margin).
        allow_location (bool): Allow positional superlatives and relations.

    Returns:
        list[tuple[str, int, dict]]: ``(kind, level, predicate)`` with kind
        ``'attribute'``, ``'superlative'`` or ``'relation'``, in
        increasing level.
    """
    margins = {
        name: (AREA_MARGIN if key == 'shape_area' else
               position_margin(image_size))
        for name, (key, _) in SUPERLATIVES.items()
    }
    superlatives = [
        name for name in SUPERLATIVES
        if allow_location or name not in LOCATION_SUPERLATIVES
    ]
    candidates = []
    for level, keys in zip((1, 2, 2, 3), _ATTRIBUTE_KEYS):
        candidates.append(('attribute', level,
                           make_predicate(**_filter(target, keys))))
    for level, keys in ((3, ('shape', )), (3, ()), (4, ('colour', 'shape'))):
        # a superlative compares: at least two objects pass the filter
        if len(evaluate_predicate(make_predicate(**_filter(target, keys)),
                                  objects)) < 2:
            continue
        for name in superlatives:
            candidates.append(('superlative', level,
                               make_predicate(
                                   **_filter(target, keys),
                                   superlative=name,
                                   margin=margins[name])))
    if allow_location:
        for landmark in objects:
            if landmark['id'] == target['id']:
                continue
            landmark_filter = _unique_filter(landmark, objects)
            if landmark_filter is None:
                continue
            for relation in RELATIONS:
                if not in_relation(target, landmark, relation):
                    continue
                for keys in (('shape', ), ('colour', 'shape')):
                    candidates.append(('relation', 4,
                                       make_predicate(
                                           **_filter(target, keys),
                                           relation=relation,
                                           landmark=landmark_filter)))
    return [(kind, level, predicate)
            for kind, level, predicate in candidates
            if evaluate_predicate(predicate, objects) == [target['id']]]


def _render_refcoco(predicate: dict, rng: np.random.Generator) -> str:
    """A short definite description of a predicate."""
    phrase = noun_phrase(predicate)
    if predicate['superlative'] is not None:
        return _choice(rng, _SUPERLATIVE_FORMS[predicate['superlative']]
                       ).format(np=phrase)
    if predicate['relation'] is not None:
        relation = _choice(rng, _RELATION_FORMS[predicate['relation']])
        return (f'the {phrase} {relation} the '
                f'{noun_phrase(predicate["landmark"])}')
    return phrase if rng.random() < 0.3 else f'the {phrase}'


def _render_refcocog(predicate: dict, rng: np.random.Generator) -> str:
    """A longer description that gives all three target attributes."""
    article = _choice(rng, ('a', 'the'))
    phrase = f'{article} {noun_phrase(predicate)}'
    if predicate['superlative'] is not None:
        return f'{phrase} {_SUPERLATIVE_CLAUSES[predicate["superlative"]]}'
    if predicate['relation'] is not None:
        relation = _RELATION_FORMS[predicate['relation']][-1]
        return (f'{phrase} that is {relation} the '
                f'{noun_phrase(predicate["landmark"])}')
    return f'{phrase} in the picture'


def referring_expressions(target: dict,
                          objects: Sequence[dict],
                          rng: np.random.Generator,
                          image_size: int,
                          style: str = 'refcoco',
                          max_sentences: int = 3
                          ) -> List[Tuple[str, dict]]:
    """Up to ``max_sentences`` distinguishing expressions of ``target``.

    The first is one of the shortest valid descriptions; the others are
    drawn from the remaining ones, preferring kinds (attribute,
    superlative, relation) not used yet. For ``'refcocog'`` every chosen
    predicate gets the target's three attributes (still unique: the filter
    only narrows the candidates, which keep the target) and a long form.

    Args:
        target (dict): The target object.
        objects (Sequence[dict]): All objects of the image.
        rng (np.random.Generator): Random generator.
        image_size (int): Image side.
        style (str): One of :data:`REFER_STYLES`.
        max_sentences (int): Most expressions.

    Returns:
        list[tuple[str, dict]]: ``(raw text, predicate)``; empty when no
        description names the target alone.

    Raises:
        ValueError: For an unknown style, or (internal check) a chosen
            predicate that does not name exactly the target.
    """
    if style not in REFER_STYLES:
        raise ValueError(f'unknown style {style!r}; expected one of '
                         f'{REFER_STYLES}')
    valid = referring_predicates(target, objects, image_size,
                                 allow_location=style != 'refcoco+')
    if not valid:
        return []
    shortest = min(level for _, level, _ in valid)
    first = [i for i, (_, level, _) in enumerate(valid) if level == shortest]
    chosen = [_choice(rng, first)]
    kinds = ['attribute', 'superlative', 'relation']
    for k in rng.permutation(len(kinds)):
        if len(chosen) >= max_sentences:
            break
        pool = [
            i for i, (kind, _, _) in enumerate(valid)
            if kind == kinds[int(k)] and i not in chosen
        ]
        if pool and kinds[int(k)] != valid[chosen[0]][0]:
            chosen.append(_choice(rng, pool))
    rest = [i for i in range(len(valid)) if i not in chosen]
    while len(chosen) < max_sentences and rest:
        chosen.append(rest.pop(int(rng.integers(len(rest)))))
    sentences = []
    for i in chosen:
        predicate = dict(valid[i][2])
        if style == 'refcocog':
            predicate.update(_filter(target, FILTER_KEYS))
            text = _render_refcocog(predicate, rng)
        else:
            text = _render_refcoco(predicate, rng)
        if evaluate_predicate(predicate, objects) != [target['id']]:
            raise ValueError(f'internal error: {text!r} ({predicate}) does '
                             f'not name object {target["id"]} alone')
        sentences.append((text, predicate))
    return sentences


def _plural_forms(predicate: dict, count: int) -> List[str]:
    """Surface forms of a multi-target predicate."""
    phrase = noun_phrase(predicate, plural=True)
    if predicate['relation'] is not None:
        relation = _RELATION_FORMS[predicate['relation']][0]
        phrase += f' {relation} the {noun_phrase(predicate["landmark"])}'
    if predicate['count'] is not None:
        forms = [f'the {_NUMBERS[count]} {phrase}']
        if count == 2:
            forms.append(f'both {phrase}')
        return forms
    if predicate['relation'] is not None:
        return [f'all {phrase}', f'the {phrase}', f'all the {phrase}']
    singular = noun_phrase(predicate)
    return [f'all {phrase}', f'the {phrase}', f'every {singular}']


def gref_expressions(objects: Sequence[dict],
                     rng: np.random.Generator,
                     image_size: int,
                     max_single: int = 2,
                     max_multi: int = 2,
                     max_none: int = 1) -> List[dict]:
    """gRefCOCO-style expressions of one image.

    Args:
        objects (Sequence[dict]): All objects of the image.
        rng (np.random.Generator): Random generator.
        image_size (int): Image side.
        max_single (int): Most single-target refs.
        max_multi (int): Most multi-target refs (distinct target sets).
        max_none (int): Most no-target refs.

    Returns:
        list[dict]: ``kind`` (``'single'``, ``'multi'`` or ``'none'``),
        ``ann_ids`` (sorted target ids, empty for none) and ``sentences``
        (``(raw text, predicate)`` pairs, 1-2 per ref).

    Raises:
        ValueError: (internal check) for a predicate whose matches differ
            from its targets.
    """
    refs = []
    order = rng.permutation(len(objects))
    for k in order:
        if sum(ref['kind'] == 'single' for ref in refs) >= max_single:
            break
        target = objects[int(k)]
        sentences = referring_expressions(target, objects, rng, image_size,
                                          max_sentences=2)
        if sentences:
            refs.append(dict(kind='single', ann_ids=[int(target['id'])],
                             sentences=sentences))

    # multi-target: attribute groups, counted groups, relation groups
    candidates: List[dict] = []
    seen = set()
    for keys in (('colour', ), ('shape', ), ('colour', 'shape'), ('size', )):
        for obj in objects:
            attribute_filter = _filter(obj, keys)
            key = tuple(sorted((k, v) for k, v in attribute_filter.items()
                               if v))
            if key in seen:
                continue
            seen.add(key)
            ids = evaluate_predicate(make_predicate(**attribute_filter),
                                     objects)
            # "all small shapes" only when some shape is not small
            if len(ids) >= 2 and (keys != ('size', )
                                  or len(ids) < len(objects)):
                candidates.append(make_predicate(**attribute_filter))
                if len(ids) <= 3:
                    candidates.append(
                        make_predicate(**attribute_filter, count=len(ids)))
    for landmark in objects:
        landmark_filter = _unique_filter(landmark, objects)
        if landmark_filter is None:
            continue
        for relation in RELATIONS:
            predicate = make_predicate(relation=relation,
                                       landmark=landmark_filter)
            if len(evaluate_predicate(predicate, objects)) >= 2:
                candidates.append(predicate)
    taken = set()
    for k in rng.permutation(len(candidates)):
        if sum(ref['kind'] == 'multi' for ref in refs) >= max_multi:
            break
        predicate = candidates[int(k)]
        ids = evaluate_predicate(predicate, objects)
        if len(ids) < 2 or tuple(ids) in taken:
            continue
        taken.add(tuple(ids))
        forms = _plural_forms(predicate, len(ids))
        picks = rng.permutation(len(forms))[:2]
        refs.append(dict(kind='multi', ann_ids=ids,
                         sentences=[(forms[int(p)], predicate)
                                    for p in picks]))

    # no target: a colour / size that exists, with a shape that exists,
    # never together (a distractor), else any absent combination
    present_colours = {obj['colour'] for obj in objects}
    present_shapes = {obj['shape'] for obj in objects}
    absent, distractors = [], []
    for shape in THING_CLASSES:
        for key, values in (('colour', tuple(COLOURS)),
                            ('size', tuple(SIZE_CLASSES))):
            for value in values:
                predicate = make_predicate(shape=shape, **{key: value})
                if evaluate_predicate(predicate, objects):
                    continue
                absent.append(predicate)
                if shape in present_shapes and (key == 'size' or
                                                value in present_colours):
                    distractors.append(predicate)
    pool = distractors or absent
    for k in rng.permutation(len(pool))[:max_none]:
        predicate = pool[int(k)]
        phrase = noun_phrase(predicate)
        forms = [f'the {phrase}', phrase]
        refs.append(dict(kind='none', ann_ids=[], sentences=[
            (forms[int(p)], predicate)
            for p in rng.permutation(2)[:1 + int(rng.integers(2))]
        ]))
    for ref in refs:
        for text, predicate in ref['sentences']:
            if evaluate_predicate(predicate, objects) != ref['ann_ids']:
                raise ValueError(f'internal error: {text!r} ({predicate}) '
                                 f'does not name exactly {ref["ann_ids"]}')
    return refs


def _article(phrase: str) -> str:
    return ('an ' if phrase[0] in 'aeiou' else 'a ') + phrase


def qa_pairs(objects: Sequence[dict],
             stuff: Sequence[str],
             rng: np.random.Generator,
             image_size: int,
             num: int = 4) -> List[dict]:
    """Short-answer questions about a scene, of ``num`` different kinds.

    Kinds: ``count`` ("How many red squares are there?", digits, zero
    included), ``exist`` ("Is there a blue circle?", yes / no with equal
    probability), ``colour`` ("What colour is the star?", only for a
    uniquely described object), ``shape`` ("What shape is the largest
    object?"), ``size`` ("What size is the red circle?": small / medium /
    large), ``stuff`` (the bottom band, or whether a band is present).

    Args:
        objects (Sequence[dict]): All objects of the image.
        stuff (Sequence[str]): Band names, top to bottom.
        rng (np.random.Generator): Random generator.
        image_size (int): Image side.
        num (int): Number of questions (fewer if kinds run out).

    Returns:
        list[dict]: ``question``, ``answer``, ``kind``, ``predicate`` (None
        for ``stuff``) and, for ``stuff``, ``stuff``.
    """
    generators = dict(count=_qa_count, exist=_qa_exist, colour=_qa_colour,
                      shape=_qa_shape, size=_qa_size, stuff=_qa_stuff)
    kinds = list(generators)
    pairs = []
    for k in rng.permutation(len(kinds)):
        if len(pairs) >= num:
            break
        pair = generators[kinds[int(k)]](objects, stuff, rng, image_size)
        if pair is not None:
            pairs.append(dict(pair, kind=kinds[int(k)]))
    return pairs


def _qa_count(objects, stuff, rng, image_size) -> dict:
    obj = objects[int(rng.integers(len(objects)))]
    draw = rng.random()
    if draw < 0.3:
        attribute_filter = _filter(obj, ('shape', ))
    elif draw < 0.5:
        attribute_filter = _filter(obj, ('colour', ))
    elif draw < 0.7:
        attribute_filter = _filter(obj, ('colour', 'shape'))
    elif draw < 0.85:  # any colour and shape, possibly absent
        attribute_filter = dict(
            size=None,
            colour=_choice(rng, tuple(COLOURS)),
            shape=_choice(rng, THING_CLASSES))
    else:
        attribute_filter = _filter(obj, ())
    predicate = make_predicate(**attribute_filter)
    count = len(evaluate_predicate(predicate, objects))
    return dict(
        question=f'How many {noun_phrase(predicate, plural=True)} are '
        'there?',
        answer=str(count),
        predicate=predicate)


def _qa_exist(objects, stuff, rng, image_size) -> Optional[dict]:
    keys = ('colour', 'shape') if rng.random() < 0.7 else ('size', 'shape')
    if rng.random() < 0.5:
        obj = objects[int(rng.integers(len(objects)))]
        predicate = make_predicate(**_filter(obj, keys))
    else:
        values = tuple(COLOURS) if keys[0] == 'colour' else tuple(
            SIZE_CLASSES)
        absent = [
            make_predicate(shape=shape, **{keys[0]: value})
            for shape in THING_CLASSES for value in values
        ]
        absent = [p for p in absent if not evaluate_predicate(p, objects)]
        if not absent:
            return None
        predicate = _choice(rng, absent)
    answer = 'yes' if evaluate_predicate(predicate, objects) else 'no'
    return dict(question=f'Is there {_article(noun_phrase(predicate))}?',
                answer=answer, predicate=predicate)


def _unique_questions(objects, image_size, keys_options, superlative_keys,
                      noun) -> List[Tuple[str, dict, dict]]:
    """(phrase, predicate, object) for the unique descriptions built from
    ``keys_options`` filters and the superlatives over
    ``superlative_keys``."""
    found = []
    for obj in objects:
        for keys in keys_options:
            predicate = make_predicate(**_filter(obj, keys))
            if evaluate_predicate(predicate, objects) == [obj['id']]:
                found.append((f'the {noun_phrase(predicate, noun=noun)}',
                              predicate, obj))
        for keys in superlative_keys:
            if len(evaluate_predicate(make_predicate(**_filter(obj, keys)),
                                      objects)) < 2:
                continue
            for name in ('largest', 'smallest', 'leftmost', 'topmost'):
                margin = (AREA_MARGIN if name in ('largest', 'smallest') else
                          position_margin(image_size))
                predicate = make_predicate(**_filter(obj, keys),
                                           superlative=name, margin=margin)
                if evaluate_predicate(predicate, objects) == [obj['id']]:
                    phrase = f'the {name} {noun_phrase(predicate, noun=noun)}'
                    found.append((phrase, predicate, obj))
    return found


def _qa_colour(objects, stuff, rng, image_size) -> Optional[dict]:
    found = _unique_questions(objects, image_size,
                              (('shape', ), ('size', 'shape')),
                              (('shape', ), ()), 'object')
    if not found:
        return None
    phrase, predicate, obj = _choice(rng, found)
    return dict(question=f'What colour is {phrase}?', answer=obj['colour'],
                predicate=predicate)


def _qa_shape(objects, stuff, rng, image_size) -> Optional[dict]:
    found = _unique_questions(objects, image_size,
                              (('colour', ), ('size', 'colour')), ((), ),
                              'object')
    if not found:
        return None
    phrase, predicate, obj = _choice(rng, found)
    return dict(question=f'What shape is {phrase}?', answer=obj['shape'],
                predicate=predicate)


def _qa_size(objects, stuff, rng, image_size) -> Optional[dict]:
    found = _unique_questions(objects, image_size, (('colour', 'shape'), ),
                              (), 'object')
    if not found:
        return None
    phrase, predicate, obj = _choice(rng, found)
    return dict(question=f'What size is {phrase}?', answer=obj['size'],
                predicate=predicate)


def _qa_stuff(objects, stuff, rng, image_size) -> dict:
    if rng.random() < 0.5:
        return dict(question='What is at the bottom of the image?',
                    answer=stuff[-1], predicate=None, stuff=list(stuff))
    present = rng.random() < 0.5
    pool = [name for name in STUFF_CLASSES[1:] if (name in stuff) == present]
    if not pool:
        pool, present = list(stuff[1:]), True
    name = _choice(rng, pool)
    return dict(question=f'Is there {name} in the image?',
                answer='yes' if present else 'no', predicate=None,
                stuff=list(stuff))


def caption(objects: Sequence[dict], stuff: Sequence[str],
            rng: np.random.Generator) -> Tuple[str, List[list]]:
    """A one-sentence caption, e.g. ``'Two red circles and a blue star on
    grass under the sky.'``.

    Objects are grouped by colour and shape; groups are listed by
    decreasing count, then first appearance (z order).

    Args:
        objects (Sequence[dict]): All objects of the image.
        stuff (Sequence[str]): Band names, top to bottom (sky first).
        rng (np.random.Generator): Random generator (template).

    Returns:
        tuple[str, list[list]]: The caption and its groups ``[colour,
        shape, count]``.
    """
    counts: Dict[Tuple[str, str], int] = {}
    for obj in objects:
        key = (obj['colour'], obj['shape'])
        counts[key] = counts.get(key, 0) + 1
    order = sorted(counts, key=lambda key: -counts[key])  # stable
    phrases = []
    for colour, shape in order:
        count = counts[(colour, shape)]
        if count == 1:
            phrases.append(_article(f'{colour} {shape}'))
        else:
            phrases.append(f'{_NUMBERS[count]} {colour} {shape}s')
    listed = phrases[0] if len(phrases) == 1 else (
        ', '.join(phrases[:-1]) + ' and ' + phrases[-1])
    grounds = list(stuff[1:])
    if len(grounds) == 1:
        ground = _GROUND_PHRASES[grounds[0]]
    else:
        ground = f'over {grounds[0]} and {grounds[1]}'
    template = _choice(rng, ('{objects} {ground} under the sky.',
                             '{objects} {ground}, below a blue sky.'))
    text = template.format(objects=listed, ground=ground)
    groups = [[colour, shape, counts[(colour, shape)]]
              for colour, shape in order]
    return text[0].upper() + text[1:], groups
