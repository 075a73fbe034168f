# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Structured ShapesWorld predicates and their evaluation.

Every ShapesWorld sentence (referring expression, gRef expression, QA
question) is rendered from a *predicate*, a json-ready dict with all of the
keys below, which is stored next to the text so that its meaning can be
re-checked against the object attributes of the annotations:

* ``shape`` / ``colour`` / ``size`` (str or None): attribute filter; None
  matches anything;
* ``relation`` (str or None): one of :data:`RELATIONS`; keeps the filtered
  objects that stand in that relation to the landmark;
* ``landmark`` (dict or None): attribute filter (``shape``, ``colour``,
  ``size``) of the landmark; it must match exactly one object, otherwise
  the predicate matches nothing;
* ``superlative`` (str or None): one of :data:`SUPERLATIVES`; keeps the
  objects (after the filter and the relation) whose value is within
  ``margin`` of the extreme (``largest``/``smallest`` compare ``shape_area``
  and ``margin`` is a ratio >= 1; the positional ones compare the centroid
  and ``margin`` is in px), so the predicate names one object only when
  the runner-up is clearly behind;
* ``margin`` (float or None): see ``superlative``;
* ``count`` (int or None): the predicate matches its objects only if there
  are exactly ``count`` of them ("the two squares"), otherwise nothing.

The objects are dicts with ``id`` and the attributes of
:func:`~.scene.object_attributes` (``shape``, ``colour``, ``size``,
``shape_area``, ``centroid``, ``bbox``).

Relations compare the target's centroid with the landmark's box: ``left of``
means ``centroid_x < bbox_x0`` of the landmark, ``right of`` ``centroid_x >
bbox_x1``, ``above`` ``centroid_y < bbox_y0``, ``below`` ``centroid_y >
bbox_y1`` (pixel edges).
"""
from typing import Dict, List, Optional, Sequence

__all__ = [
    'FILTER_KEYS', 'SUPERLATIVES', 'RELATIONS', 'make_predicate',
    'matches_filter', 'in_relation', 'evaluate_predicate'
]

#: Attribute keys of a filter.
FILTER_KEYS = ('size', 'colour', 'shape')
#: Superlative -> (compared value, ``'max'`` or ``'min'``).
SUPERLATIVES: Dict[str, tuple] = {
    'largest': ('shape_area', 'max'),
    'smallest': ('shape_area', 'min'),
    'leftmost': ('x', 'min'),
    'rightmost': ('x', 'max'),
    'topmost': ('y', 'min'),
    'bottommost': ('y', 'max'),
}
#: Superlatives that use a location (not allowed in RefCOCO+).
LOCATION_SUPERLATIVES = ('leftmost', 'rightmost', 'topmost', 'bottommost')
#: Spatial relations to a landmark.
RELATIONS = ('left of', 'right of', 'above', 'below')
_PREDICATE_KEYS = ('shape', 'colour', 'size', 'relation', 'landmark',
                   'superlative', 'margin', 'count')


def make_predicate(shape: Optional[str] = None,
                   colour: Optional[str] = None,
                   size: Optional[str] = None,
                   relation: Optional[str] = None,
                   landmark: Optional[dict] = None,
                   superlative: Optional[str] = None,
                   margin: Optional[float] = None,
                   count: Optional[int] = None) -> dict:
    """A predicate dict with every key (see the module docstring).

    Args:
        shape (str, optional): Shape filter.
        colour (str, optional): Colour filter.
        size (str, optional): Size-class filter.
        relation (str, optional): One of :data:`RELATIONS`.
        landmark (dict, optional): The landmark's attribute filter (needed
            with ``relation``).
        superlative (str, optional): One of :data:`SUPERLATIVES`.
        margin (float, optional): Margin of the superlative (needed with
            it).
        count (int, optional): Exact number of matches.

    Returns:
        dict: The predicate.

    Raises:
        ValueError: For an unknown relation / superlative or a missing
            landmark / margin.
    """
    if relation is not None:
        if relation not in RELATIONS:
            raise ValueError(f'unknown relation {relation!r}; expected one '
                             f'of {RELATIONS}')
        if landmark is None:
            raise ValueError(f'relation {relation!r} needs a landmark')
        landmark = {key: landmark.get(key) for key in FILTER_KEYS}
    if superlative is not None:
        if superlative not in SUPERLATIVES:
            raise ValueError(f'unknown superlative {superlative!r}; expected'
                             f' one of {tuple(SUPERLATIVES)}')
        if margin is None:
            raise ValueError(f'superlative {superlative!r} needs a margin')
        margin = float(margin)
    return dict(
        shape=shape,
        colour=colour,
        size=size,
        relation=relation,
        landmark=landmark if relation is not None else None,
        superlative=superlative,
        margin=margin if superlative is not None else None,
        count=None if count is None else int(count))


def matches_filter(obj: dict, attribute_filter: dict) -> bool:
    """Whether an object matches every non-None attribute of a filter.

    Args:
        obj (dict): Object attributes.
        attribute_filter (dict): ``shape`` / ``colour`` / ``size`` (None or
            missing: any).

    Returns:
        bool: The match.
    """
    return all(
        attribute_filter.get(key) is None or obj[key] == attribute_filter[key]
        for key in FILTER_KEYS)


def in_relation(obj: dict, landmark: dict, relation: str) -> bool:
    """Whether ``obj`` is ``relation`` the landmark (module docstring).

    Args:
        obj (dict): Object attributes (``centroid``).
        landmark (dict): Landmark attributes (``bbox``).
        relation (str): One of :data:`RELATIONS`.

    Returns:
        bool: The relation holds.
    """
    x, y = obj['centroid']
    x0, y0, w, h = landmark['bbox']
    if relation == 'left of':
        return x < x0
    if relation == 'right of':
        return x > x0 + w
    if relation == 'above':
        return y < y0
    if relation == 'below':
        return y > y0 + h
    raise ValueError(f'unknown relation {relation!r}; expected one of '
                     f'{RELATIONS}')


def _value(obj: dict, key: str) -> float:
    if key == 'x':
        return float(obj['centroid'][0])
    if key == 'y':
        return float(obj['centroid'][1])
    return float(obj[key])


def evaluate_predicate(predicate: dict, objects: Sequence[dict]) -> List[int]:
    """The ids of the objects a predicate names.

    Args:
        predicate (dict): See the module docstring.
        objects (Sequence[dict]): All objects of the image (``id`` plus
            attributes).

    Returns:
        list[int]: Sorted ids (empty: no object).

    Raises:
        ValueError: For a predicate with missing keys.
    """
    missing = [key for key in _PREDICATE_KEYS if key not in predicate]
    if missing:
        raise ValueError(f'predicate {predicate!r} lacks {missing}')
    candidates = [obj for obj in objects if matches_filter(obj, predicate)]
    if predicate['relation'] is not None:
        landmarks = [
            obj for obj in objects
            if matches_filter(obj, predicate['landmark'])
        ]
        if len(landmarks) != 1:
            return []
        landmark = landmarks[0]
        candidates = [
            obj for obj in candidates if obj['id'] != landmark['id']
            and in_relation(obj, landmark, predicate['relation'])
        ]
    if predicate['superlative'] is not None and candidates:
        key, mode = SUPERLATIVES[predicate['superlative']]
        margin = predicate['margin']
        values = [_value(obj, key) for obj in candidates]
        best = max(values) if mode == 'max' else min(values)
        if key == 'shape_area':
            keep = [(v * margin >= best) if mode == 'max' else
                    (v <= best * margin) for v in values]
        else:
            keep = [abs(v - best) <= margin for v in values]
        candidates = [obj for obj, k in zip(candidates, keep) if k]
    ids = sorted(int(obj['id']) for obj in candidates)
    if predicate['count'] is not None and len(ids) != predicate['count']:
        return []
    return ids
