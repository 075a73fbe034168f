# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""RefCOCO / RefCOCO+ / RefCOCOg for PSALM's referring segmentation."""
import random
from typing import Any, Callable, Dict, List, Optional

import mmengine

from mmdet.datasets import RefCocoDataset
from mmdet.registry import DATASETS

PROTOCOLS = ('random', 'per_expression', 'merged')


def is_unicode_text(text: str) -> bool:
    """Whether ``text`` can be encoded as UTF-8 (has no lone surrogate)."""
    return not any(0xD800 <= ord(char) <= 0xDFFF for char in text)


def load_annotation_file(path: str, file_format: str) -> Any:
    """``mmengine.load`` naming the file when it is not UTF-8 text."""
    try:
        return mmengine.load(path, file_format=file_format)
    except UnicodeDecodeError as err:
        raise ValueError(
            f'{path}: not UTF-8 text (byte {err.object[err.start:err.end]!r} '
            f'at offset {err.start}); re-encode the file as UTF-8') from err


@DATASETS.register_module()
class PSALMRefCocoDataset(RefCocoDataset):
    """Referring-expression segmentation samples, one per referent or
    expression, from either source format:

    * the refer toolkit (``split_file``: ``refs(unc).p`` / ``refs(umd).p`` /
      ``refs(google).p`` pickle, ``ann_file``: COCO ``instances.json``);
      the refs whose ``split`` equals ``split`` are used;
    * the official PSALM json (``split_file=None``, ``ann_file``: a list of
      ``{image, image_info, instruction, anns, ...}``, one entry per
      referent, one file per split).

    ``protocol`` selects the samples and their prompt sentences:

    * ``'random'`` (training default): one sample per referent; a new
      expression is drawn uniformly at **every fetch**;
    * ``'per_expression'`` (evaluation default, the standard protocol):
      one sample per expression;
    * ``'merged'`` (official PSALM, training and evaluation): one sample per
      referent whose prompt holds all its expressions (the input schema
      needs ``merge_sentences=True``).

    Data info of a sample: ``img_path``, ``img_id``, ``height``, ``width``,
    ``ref_id``, ``ann_ids``, ``sent_ids``, ``texts`` (the candidate
    expressions), ``instances`` (one per target ann: ``mask`` (polygons or
    RLE), ``bbox`` (x1, y1, x2, y2), ``bbox_label=0``, ``ignore_flag=0``;
    load them with mmdet ``LoadAnnotations(with_bbox=False, with_mask=True)``)
    and, added at every fetch, ``prompt = dict(task, sentences)``.

    Args:
        ann_file (str): COCO ``instances.json`` (refer toolkit) or the
            official PSALM json.
        split_file (str, optional): The refer-toolkit refs file; None reads
            ``ann_file`` as an official PSALM json.
        data_prefix (dict): ``img_path``: folder of the images.
        split (str): Refer-toolkit split (``train``, ``val``, ``testA``,
            ``testB``, ``test``). Ignored for the PSALM json.
        protocol (str, optional): ``'random'``, ``'per_expression'`` or
            ``'merged'``. Defaults to ``'random'`` in training and
            ``'per_expression'`` in test mode.
        text_key (str): Key of the sentence dicts used as text: ``'sent'``
            (refer toolkit's cleaned, lower-case text) or ``'raw'``.
        data_root (str): Root of ``ann_file``, ``split_file`` and
            ``data_prefix``.
        **kwargs: Other :class:`mmengine.dataset.BaseDataset` arguments.
    """
    TASK = 'referring'
    SPLIT_FILE_FORMAT = 'pkl'
    ALLOW_NO_TARGET = False

    def __init__(self,
                 ann_file: str,
                 split_file: Optional[str] = None,
                 data_prefix: Dict[str, str] = dict(img_path=''),
                 split: str = 'train',
                 protocol: Optional[str] = None,
                 text_key: str = 'sent',
                 data_root: str = '',
                 **kwargs) -> None:
        if protocol is None:
            protocol = ('per_expression'
                        if kwargs.get('test_mode') else 'random')
        if protocol not in PROTOCOLS:
            raise ValueError(f'protocol must be one of {PROTOCOLS}, got '
                             f'{protocol!r}')
        if protocol == 'random' and kwargs.get('test_mode'):
            raise ValueError("protocol 'random' draws a new expression per "
                             'fetch; use per_expression or merged in test '
                             'mode')
        self.protocol = protocol
        self.text_key = text_key
        # mmdet's text_mode (drawn once at load time) is replaced by protocol
        super().__init__(
            data_root=data_root,
            ann_file=ann_file,
            split_file=split_file or '',
            data_prefix=data_prefix,
            split=split,
            text_mode='original',
            **kwargs)

    # ------------------------------------------------------------------
    # loading
    # ------------------------------------------------------------------
    def load_data_list(self) -> List[dict]:
        """Read the referents and expand them according to ``protocol``.

        Returns:
            list[dict]: The data infos.
        """
        if self.split_file:
            referents = self._load_refer_toolkit()
        else:
            referents = self._load_psalm_json()
        join_path = mmengine.fileio.get_file_backend(
            self.data_prefix['img_path']).join_path
        data_list = []
        for referent in referents:
            data_list += self._samples(referent, join_path)
        if not data_list:
            source = self.split_file or self.ann_file
            raise ValueError(f'{source}: no referent in split '
                             f'{self.split!r}')
        return data_list

    def _load_refer_toolkit(self) -> List[dict]:
        """Referents of ``split`` from the refs file and instances.json."""
        refs = load_annotation_file(self.split_file, self.SPLIT_FILE_FORMAT)
        instances = load_annotation_file(self.ann_file, 'json')
        for key in ('images', 'annotations'):
            if key not in instances:
                raise KeyError(f'{self.ann_file}: the COCO instances json '
                               f'lacks {key!r}')
        images = {img['id']: img for img in instances['images']}
        anns = {ann['id']: ann for ann in instances['annotations']}
        referents = []
        for index, ref in enumerate(refs):
            missing = [
                key for key in ('ref_id', 'image_id', 'ann_id', 'split',
                                'sentences')
                if key not in ref
            ]
            if missing:
                raise KeyError(f'{self.split_file}: ref {index} (ref_id '
                               f'{ref.get("ref_id")}) lacks {missing}')
            if ref['split'] != self.split:
                continue
            source = f'{self.split_file} ref {ref["ref_id"]}'
            image = images.get(ref['image_id'])
            if image is None:
                raise ValueError(f'{source}: image {ref["image_id"]} is not '
                                 f'in {self.ann_file}')
            referents.append(
                dict(
                    source=source,
                    ref_id=ref['ref_id'],
                    image=image,
                    file_name=image['file_name'],
                    anns=self._ref_anns(ref, anns, source),
                    sentences=ref['sentences']))
        return referents

    def _ref_anns(self, ref: Dict[str, Any], anns: Dict[int, dict],
                  source: str) -> List[dict]:
        """The target anns of a refer-toolkit ref (exactly one)."""
        ann = anns.get(ref['ann_id'])
        if ann is None:
            raise ValueError(f'{source}: ann {ref["ann_id"]} is not in '
                             f'{self.ann_file}')
        return [ann]

    def _load_psalm_json(self) -> List[dict]:
        """Referents of an official PSALM json (one entry per referent)."""
        records = load_annotation_file(self.ann_file, 'json')
        referents = []
        for i, record in enumerate(records):
            source = f'{self.ann_file} entry {i}'
            for key in ('image', 'image_info', 'instruction', 'anns'):
                if key not in record:
                    raise ValueError(f'{source}: missing {key!r}')
            referents.append(
                dict(
                    source=source,
                    ref_id=record.get('ref_id', i),
                    image=record['image_info'],
                    file_name=record['image'],
                    anns=record['anns'],
                    sentences=record['instruction']))
        return referents

    def _samples(self, referent: Dict[str, Any],
                 join_path: Callable[..., str]) -> List[dict]:
        """The data infos of one referent under ``protocol``."""
        source = referent['source']
        if not referent['anns'] and not self.ALLOW_NO_TARGET:
            raise ValueError(f'{source}: a {self.TASK} expression needs a '
                             'target ann')
        for ann in referent['anns']:
            if not ann.get('segmentation') or ann.get('area', 1) <= 0:
                raise ValueError(
                    f'{source}: target ann {ann.get("id")} has an empty '
                    f'mask (area {ann.get("area")}, segmentation '
                    f'{str(ann.get("segmentation"))[:40]}); fix or drop '
                    'this referent')
        sentences = referent['sentences']
        if not sentences:
            raise ValueError(f'{source}: no expression')
        texts = []
        for sentence in sentences:
            text = sentence.get(self.text_key)
            if isinstance(text, bytes):
                raise ValueError(
                    f'{source}: sentence {sentence!r} holds bytes, not '
                    'text; re-save the refs with str (UTF-8 decoded) '
                    'sentences')
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f'{source}: sentence {sentence!r} has no '
                                 f'{self.text_key!r} text (empty '
                                 'expression)')
            if not is_unicode_text(text):
                raise ValueError(
                    f'{source}: sentence {text!r} is not valid Unicode '
                    '(lone surrogates, e.g. from non-UTF-8 bytes escaped '
                    'into the json); fix its encoding')
            texts.append(text.strip())
        image = referent['image']
        base = dict(
            img_path=join_path(self.data_prefix['img_path'],
                               referent['file_name']),
            img_id=image['id'],
            height=image['height'],
            width=image['width'],
            ref_id=referent['ref_id'],
            ann_ids=[ann['id'] for ann in referent['anns']],
            instances=[self._instance(ann) for ann in referent['anns']])
        sent_ids = [sentence.get('sent_id') for sentence in sentences]
        if self.protocol == 'per_expression':
            return [
                dict(base, texts=[text], sent_ids=[sent_id])
                for text, sent_id in zip(texts, sent_ids)
            ]
        return [dict(base, texts=texts, sent_ids=sent_ids)]

    @staticmethod
    def _instance(ann: Dict[str, Any]) -> dict:
        """An mmdet instance (for ``LoadAnnotations``) from a COCO ann."""
        x, y, w, h = ann['bbox']
        return dict(
            mask=ann['segmentation'],
            bbox=[x, y, x + w, y + h],
            bbox_label=0,
            ignore_flag=0)

    # ------------------------------------------------------------------
    # fetching
    # ------------------------------------------------------------------
    def get_data_info(self, idx: int) -> dict:
        """The data info with its prompt; ``'random'`` draws an expression.

        Args:
            idx (int): Sample index.

        Returns:
            dict: The data info plus ``prompt = dict(task, sentences)``.
        """
        data_info = super().get_data_info(idx)
        texts = data_info['texts']
        if self.protocol == 'random':
            texts = [random.choice(texts)]
        data_info['prompt'] = dict(task=self.TASK, sentences=list(texts))
        return data_info
