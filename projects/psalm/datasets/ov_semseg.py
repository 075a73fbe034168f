# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Open-vocabulary segmentation benchmarks (paper Sec. 4.5, Tab. 11).

The image lists and label maps are mmseg's datasets (``ADE20KDataset``,
``CityscapesDataset``, ``PascalContextDataset59``, ``PascalVOCDataset``) or,
for PASCAL-Context-459 which mmseg lacks, its :class:`BaseSegDataset`; this
module adds what PSALM needs on top:

* the prompt of every sample, ``dict(task, class_names)``, whose class names
  come from a data file in ``class_names/`` (one class per line, synonyms
  separated by commas, ``#`` comment lines). As in the official evaluation
  (reference Sec. 2.3) all synonyms of a class form ONE name string
  (``"wall, walls"``), except for vocabularies of more than 200 classes
  (PC-459), which keep the first synonym only (``synonyms='auto'``);
* a check that the file lists the dataset's classes in the dataset's order
  (:func:`check_class_names`): a shifted line would silently mislabel every
  prediction;
* a uint16-safe label loader (:class:`LoadSemSegAnnotations`; mmseg's
  ``LoadAnnotations`` casts to uint8, which destroys PC-459's labels
  256..458 and its ignore value 65535);
* Cityscapes instances from ``*_gtFine_instanceIds.png``
  (:class:`LoadCityscapesInstances`) for COCO-style mask AP;
* COCO-format panoptic sets (Mask2Former's ADE20K-150 panoptic
  annotations) with the file's prompt (:class:`PSALMOVPanopticDataset`),
  their thing segments as instances (:class:`LoadPanopticInstances`);
* :class:`OVSemSegMetric`, the detectron2 ``SemSegEvaluator`` protocol of the
  official evaluation on the ``gt_sem_seg`` maps, with any ignore value.
"""
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import mmcv
import numpy as np
import pycocotools.mask as mask_utils
from mmcv.transforms import BaseTransform
from mmengine.fileio import get
from mmseg.datasets import (ADE20KDataset, BaseSegDataset, CityscapesDataset,
                            PascalContextDataset59, PascalVOCDataset)

from mmdet.registry import DATASETS, TRANSFORMS
from ..evaluation.functional.panoptic_quality import rgb2id
from .coco_panoptic import PSALMCocoPanopticDataset

#: Folder of the class-name files shipped with the package.
CLASS_NAMES_DIR = osp.join(osp.dirname(__file__), 'class_names')
#: Vocabularies larger than this keep only the first synonym (official).
MAX_CLASSES_WITH_SYNONYMS = 200
SYNONYM_MODES = ('auto', 'all', 'first')
OV_TASKS = ('semantic', 'panoptic')

__all__ = [
    'CLASS_NAMES_DIR', 'class_names_path', 'load_class_names',
    'prompt_class_names', 'OVPromptMixin', 'PSALMADE20KDataset',
    'PSALMPascalContext59Dataset', 'PSALMPascalVOC20Dataset',
    'PSALMPascalContext459Dataset', 'PSALMCityscapesDataset',
    'PSALMOVPanopticDataset', 'LoadSemSegAnnotations',
    'LoadCityscapesInstances', 'LoadPanopticInstances',
    'check_class_names'
]


def class_names_path(name: str) -> str:
    """Resolve a class-name file: a path, or a file name of ``class_names/``.

    Args:
        name (str): ``'ade150'`` (-> ``class_names/ade150.txt``) or a path to
            a ``.txt`` file.

    Returns:
        str: The path of the file.
    """
    if name.endswith('.txt'):
        return name
    return osp.join(CLASS_NAMES_DIR, f'{name}.txt')


def load_class_names(name: str) -> List[Tuple[str, ...]]:
    """Read a class-name file: one class per line, synonyms comma-separated.

    Lines starting with ``#`` are comments; blank lines and empty synonyms
    are errors (they would shift or blank the classes).

    Args:
        name (str): See :func:`class_names_path`.

    Returns:
        list[tuple[str, ...]]: The synonyms of every class, in file order.
    """
    path = class_names_path(name)
    if not osp.isfile(path):
        raise FileNotFoundError(f'class-name file {path} does not exist')
    classes = []
    with open(path, encoding='utf-8') as f:
        for line_no, line in enumerate(f, 1):
            line = line.strip()
            if line.startswith('#'):
                continue
            synonyms = tuple(s.strip() for s in line.split(','))
            if not all(synonyms):
                raise ValueError(f'{path} line {line_no}: empty class name '
                                 f'in {line!r}')
            classes.append(synonyms)
    if not classes:
        raise ValueError(f'{path}: no class name')
    return classes


def prompt_class_names(classes: Sequence[Sequence[str]],
                       synonyms: str = 'auto') -> List[str]:
    """The prompt string of every class.

    Args:
        classes (Sequence[Sequence[str]]): Synonyms of every class.
        synonyms (str): ``'all'``: the synonyms joined by ``', '`` (one name
            string per class, official); ``'first'``: the first synonym;
            ``'auto'``: ``'all'`` up to 200 classes, else ``'first'``
            (official). Defaults to ``'auto'``.

    Returns:
        list[str]: One prompt name per class.
    """
    if synonyms not in SYNONYM_MODES:
        raise ValueError(f'synonyms must be one of {SYNONYM_MODES}, got '
                         f'{synonyms!r}')
    if synonyms == 'auto':
        synonyms = 'all' if len(classes) <= MAX_CLASSES_WITH_SYNONYMS \
            else 'first'
    if synonyms == 'all':
        return [', '.join(names) for names in classes]
    return [names[0] for names in classes]


def _normalise(name: str) -> str:
    """Compare class names without case and spaces (``'potted plant'`` is
    mmseg's ``'pottedplant'``)."""
    return ''.join(name.lower().split())


def check_class_names(classes: Sequence[str],
                      synonyms: Sequence[Sequence[str]], source: str,
                      owner: str) -> None:
    """Raise unless a class-name file lists a dataset's classes in order.

    Class ``i`` matches when the first name of the dataset's class ``i``
    (its text up to a comma) is one of the synonyms of line ``i``, ignoring
    case and spaces.

    Args:
        classes (Sequence[str]): The dataset's class names.
        synonyms (Sequence[Sequence[str]]): The file's classes.
        source (str): The file, for the error message.
        owner (str): The dataset, for the error message.
    """
    if len(classes) != len(synonyms):
        raise ValueError(f'{source} lists {len(synonyms)} classes but '
                         f'{owner} has {len(classes)}')
    for i, (cls_name, names) in enumerate(zip(classes, synonyms)):
        if _normalise(cls_name.split(',')[0]) not in {
                _normalise(n) for n in names}:
            raise ValueError(
                f'{source}: class {i} is {names!r}, without the class {i} '
                f'{cls_name!r} of {owner}; the file must list the dataset '
                'classes in label order')


class OVPromptMixin:
    """Adds the open-vocabulary prompt to an mmseg dataset.

    Must precede the mmseg dataset class in the bases; the keyword arguments
    it does not take go to that dataset.

    Args:
        class_names (str): Class-name file (see :func:`class_names_path`),
            one line per dataset class in dataset order.
        synonyms (str): See :func:`prompt_class_names`. Defaults to
            ``'auto'``.
        task (str): ``'semantic'``, or ``'panoptic'`` (needs
            ``thing_classes``; its predictions also hold the thing instances
            and the semantic map). Defaults to ``'semantic'``.
        thing_classes (str, optional): File of the thing classes (their first
            names); gives ``is_thing``.
        **kwargs: Arguments of the mmseg dataset.
    """

    def __init__(self,
                 class_names: str,
                 synonyms: str = 'auto',
                 task: str = 'semantic',
                 thing_classes: Optional[str] = None,
                 **kwargs) -> None:
        if task not in OV_TASKS:
            raise ValueError(f'task must be one of {OV_TASKS}, got {task!r}')
        if task == 'panoptic' and thing_classes is None:
            raise ValueError('the panoptic task needs thing_classes')
        self.task = task
        self.class_names_file = class_names_path(class_names)
        self._synonyms = load_class_names(class_names)
        self.prompt_names = prompt_class_names(self._synonyms, synonyms)
        self.thing_classes_file = thing_classes
        super().__init__(**kwargs)
        check_class_names(self.metainfo['classes'], self._synonyms,
                          self.class_names_file, type(self).__name__)
        self.is_thing = None
        if thing_classes is not None:
            self.is_thing = self._thing_flags(thing_classes)

    def _thing_flags(self, thing_classes: str) -> List[bool]:
        """``is_thing`` of every class from the file of thing names."""
        things = {_normalise(names[0])
                  for names in load_class_names(thing_classes)}
        firsts = [_normalise(names[0]) for names in self._synonyms]
        unknown = things - set(firsts)
        if unknown:
            raise ValueError(f'{class_names_path(thing_classes)}: thing '
                             f'classes {sorted(unknown)} are not in '
                             f'{self.class_names_file}')
        return [name in things for name in firsts]

    def get_data_info(self, idx: int) -> dict:
        """The data info plus ``img_id``, ``prompt`` and ``is_thing``.

        Args:
            idx (int): Sample index.

        Returns:
            dict: mmseg's data info (``img_path``, ``seg_map_path``,
            ``label_map``, ``reduce_zero_label``, ``seg_fields``) with
            ``img_id`` (the index), ``prompt = dict(task, class_names)``
            and, with thing classes, ``is_thing``.
        """
        data_info = super().get_data_info(idx)
        data_info['img_id'] = idx
        data_info['prompt'] = dict(
            task=self.task, class_names=list(self.prompt_names))
        if self.is_thing is not None:
            data_info['is_thing'] = list(self.is_thing)
        return data_info


@DATASETS.register_module()
class PSALMADE20KDataset(OVPromptMixin, ADE20KDataset):
    """ADE20K-150 (``ADEChallengeData2016``, mmseg layout and labels:
    ``reduce_zero_label=True``) with open-vocabulary prompts.

    Args:
        class_names (str): Defaults to ``'ade150'``.
        **kwargs: :class:`OVPromptMixin` and ``mmseg.ADE20KDataset``
            arguments.
    """

    def __init__(self, class_names: str = 'ade150', **kwargs) -> None:
        super().__init__(class_names=class_names, **kwargs)


@DATASETS.register_module()
class PSALMPascalContext59Dataset(OVPromptMixin, PascalContextDataset59):
    """PASCAL-Context-59 (mmseg layout: ``JPEGImages``,
    ``SegmentationClassContext``, ``ImageSets/SegmentationContext/val.txt``;
    ``reduce_zero_label=True``) with open-vocabulary prompts.

    Args:
        class_names (str): Defaults to ``'pascal_context59'``.
        **kwargs: :class:`OVPromptMixin` and
            ``mmseg.PascalContextDataset59`` arguments.
    """

    def __init__(self, class_names: str = 'pascal_context59',
                 **kwargs) -> None:
        super().__init__(class_names=class_names, **kwargs)


@DATASETS.register_module()
class PSALMPascalVOC20Dataset(OVPromptMixin, PascalVOCDataset):
    """PASCAL VOC 2012 without background (PAS-20): mmseg's
    ``PascalVOCDataset`` (``JPEGImages``, ``SegmentationClass``,
    ``ImageSets/Segmentation/val.txt``) whose 20 object classes are kept
    through mmseg's label map (background 0 -> 255, k -> k - 1).

    Args:
        class_names (str): Defaults to ``'voc20'``.
        **kwargs: :class:`OVPromptMixin` and ``mmseg.PascalVOCDataset``
            arguments (``metainfo`` must not change the classes).
    """

    def __init__(self, class_names: str = 'voc20', **kwargs) -> None:
        if 'metainfo' in kwargs:
            raise ValueError('PSALMPascalVOC20Dataset sets its classes (the '
                             '20 VOC object classes); drop metainfo')
        super().__init__(
            class_names=class_names,
            metainfo=dict(classes=PascalVOCDataset.METAINFO['classes'][1:]),
            **kwargs)


@DATASETS.register_module()
class PSALMPascalContext459Dataset(OVPromptMixin, BaseSegDataset):
    """PASCAL-Context-459 in the detectron2 layout (reference Sec. 5): JPEG
    images and uint16 label maps (``.tif``, classes 0..458, ignore 65535),
    e.g. ``pascal_ctx_d2/images/validation`` and
    ``pascal_ctx_d2/annotations_ctx459/validation``.

    The classes are those of the class-name file (no mmseg definition
    exists). Load the labels with :class:`LoadSemSegAnnotations`.

    Args:
        class_names (str): Defaults to ``'pascal_context459'``.
        img_suffix (str): Defaults to ``'.jpg'``.
        seg_map_suffix (str): Defaults to ``'.tif'``.
        ignore_index (int): Defaults to 65535.
        **kwargs: :class:`OVPromptMixin` and ``mmseg.BaseSegDataset``
            arguments.
    """

    def __init__(self,
                 class_names: str = 'pascal_context459',
                 img_suffix: str = '.jpg',
                 seg_map_suffix: str = '.tif',
                 ignore_index: int = 65535,
                 **kwargs) -> None:
        if 'metainfo' in kwargs:
            raise ValueError('PSALMPascalContext459Dataset takes its classes '
                             'from class_names; drop metainfo')
        synonyms = load_class_names(class_names)
        super().__init__(
            class_names=class_names,
            metainfo=dict(classes=tuple(names[0] for names in synonyms)),
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            ignore_index=ignore_index,
            **kwargs)


@DATASETS.register_module()
class PSALMCityscapesDataset(OVPromptMixin, CityscapesDataset):
    """Cityscapes (mmseg layout: ``leftImg8bit/val``, ``gtFine/val``, labels
    ``*_gtFine_labelTrainIds.png``) with open-vocabulary prompts.

    Every data info also names the frame's ``*_gtFine_instanceIds.png``
    (``instance_map_path``) for :class:`LoadCityscapesInstances`.

    Args:
        class_names (str): Defaults to ``'cityscapes19'``.
        thing_classes (str, optional): Defaults to ``'cityscapes_thing8'``.
        instance_map_suffix (str): Defaults to
            ``'_gtFine_instanceIds.png'``.
        **kwargs: :class:`OVPromptMixin` and ``mmseg.CityscapesDataset``
            arguments.
    """

    def __init__(self,
                 class_names: str = 'cityscapes19',
                 thing_classes: Optional[str] = 'cityscapes_thing8',
                 instance_map_suffix: str = '_gtFine_instanceIds.png',
                 **kwargs) -> None:
        self.instance_map_suffix = instance_map_suffix
        super().__init__(
            class_names=class_names, thing_classes=thing_classes, **kwargs)

    def load_data_list(self) -> List[dict]:
        """mmseg's data infos plus ``instance_map_path``.

        Returns:
            list[dict]: One data info per frame.
        """
        data_list = super().load_data_list()
        for data_info in data_list:
            seg_map = data_info['seg_map_path']
            if not seg_map.endswith(self.seg_map_suffix):
                raise ValueError(f'{seg_map} does not end with '
                                 f'{self.seg_map_suffix!r}')
            data_info['instance_map_path'] = (
                seg_map[:-len(self.seg_map_suffix)] +
                self.instance_map_suffix)
        return data_list


@DATASETS.register_module()
class PSALMOVPanopticDataset(PSALMCocoPanopticDataset):
    """A COCO-format panoptic dataset (e.g. Mask2Former's ADE20K-150
    ``ade20k_panoptic_val.json``) prompted with the names of a class-name
    file, task ``'panoptic'``.

    The json gives the classes, their order and ``is_thing``
    (:class:`PSALMCocoPanopticDataset`); the file gives the prompt strings
    and must list the json's classes in the same order.

    Args:
        class_names (str): Class-name file (see :func:`class_names_path`).
        synonyms (str): See :func:`prompt_class_names`. Defaults to
            ``'auto'``.
        **kwargs: :class:`PSALMCocoPanopticDataset` arguments (``task`` must
            stay ``'panoptic'``: the prompt lists every class).
    """

    def __init__(self,
                 class_names: str,
                 synonyms: str = 'auto',
                 **kwargs) -> None:
        if kwargs.get('task', 'panoptic') != 'panoptic':
            raise ValueError('PSALMOVPanopticDataset prompts every class: '
                             f'task must be panoptic, got {kwargs["task"]!r}')
        self.class_names_file = class_names_path(class_names)
        self._synonyms = load_class_names(class_names)
        self.prompt_names = prompt_class_names(self._synonyms, synonyms)
        super().__init__(**kwargs)
        check_class_names(self.metainfo['classes'], self._synonyms,
                          self.class_names_file, self.ann_file)

    def get_data_info(self, idx: int) -> dict:
        """The data info with the class-name file's prompt.

        Args:
            idx (int): Sample index.

        Returns:
            dict: See :class:`PSALMCocoPanopticDataset`.
        """
        data_info = super().get_data_info(idx)
        data_info['prompt']['class_names'] = list(self.prompt_names)
        return data_info


def read_id_map(path: str,
                backend_args: Optional[dict] = None,
                backend: str = 'cv2') -> np.ndarray:
    """Read a single-channel label / instance-id map without casting it.

    mmseg's ``LoadAnnotations`` casts to uint8, which destroys PASCAL-Context
    459 labels (and the 65535 ignore value) and Cityscapes instance ids.

    Args:
        path (str): The PNG/TIF file.
        backend_args (dict, optional): File backend arguments.
        backend (str): Image decoding backend.

    Returns:
        np.ndarray: ``(H, W)`` int64 map.

    Raises:
        ValueError: The file is not a single-channel integer map.
    """
    ids = mmcv.imfrombytes(
        get(path, backend_args=backend_args), flag='unchanged',
        backend=backend)
    if ids is None or ids.ndim != 2:
        raise ValueError(f'{path}: expected a single-channel label map, got '
                         f'{None if ids is None else ids.shape}')
    if ids.dtype not in (np.uint8, np.uint16, np.int32):
        raise ValueError(f'{path}: unsupported label dtype {ids.dtype}')
    return ids.astype(np.int64)


@TRANSFORMS.register_module()
class LoadSemSegAnnotations(BaseTransform):
    """Load a label map without changing its values (uint16-safe).

    Unlike mmseg's ``LoadAnnotations`` (which casts to uint8) every value is
    kept: PC-459's classes 256..458 and its ignore value 65535 survive. The
    map is read with ``flag='unchanged'`` (16-bit PNG / TIFF) and stored as
    int64. Place it after ``Resize`` so that the map keeps the original size
    for the metric.

    Required keys: ``seg_map_path``, ``seg_fields``. Added keys:
    ``gt_seg_map`` ((H, W) int64).

    Args:
        imdecode_backend (str): Backend of :func:`mmcv.imfrombytes`.
            Defaults to ``'cv2'``.
        backend_args (dict, optional): File backend arguments.
    """

    def __init__(self,
                 imdecode_backend: str = 'cv2',
                 backend_args: Optional[dict] = None) -> None:
        self.imdecode_backend = imdecode_backend
        self.backend_args = backend_args

    def transform(self, results: dict) -> dict:
        """Add ``gt_seg_map``.

        Args:
            results (dict): The pipeline results.

        Returns:
            dict: The results with the label map.
        """
        results['gt_seg_map'] = read_id_map(results['seg_map_path'],
                                            self.backend_args,
                                            self.imdecode_backend)
        results['seg_fields'].append('gt_seg_map')
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}('
                f'imdecode_backend={self.imdecode_backend!r})')


@TRANSFORMS.register_module()
class LoadCityscapesInstances(BaseTransform):
    """Cityscapes instances from ``*_gtFine_instanceIds.png`` as COCO-style
    annotations for mmdet's ``CocoMetric`` (without an ``ann_file``).

    A pixel value ``v >= 1000`` is instance ``v % 1000`` of label id
    ``v // 1000``; a thing label id ``v < 1000`` is a group region
    ("cars"), which becomes a crowd (ignored) annotation, as in mmdet's
    Cityscapes-to-COCO converter. Label ids are mapped to train ids (the
    19-class labels); label ids without a thing train id (e.g. caravan,
    trailer: ignored in the Cityscapes evaluation) are left out.

    Required keys: ``instance_map_path``. Added keys: ``instances`` (list of
    dict with ``mask`` (RLE, original size), ``bbox`` (x1, y1, x2, y2),
    ``bbox_label`` (train id) and ``ignore_flag``), packed as a meta key.

    Args:
        thing_label_ids (dict[int, int]): Cityscapes label id -> train id of
            the thing classes. Defaults to the 8 Cityscapes thing classes.
        backend_args (dict, optional): File backend arguments.
    """
    #: person, rider, car, truck, bus, train, motorcycle, bicycle
    THING_LABEL_IDS = {24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16,
                       32: 17, 33: 18}

    def __init__(self,
                 thing_label_ids: Optional[Dict[int, int]] = None,
                 backend_args: Optional[dict] = None) -> None:
        self.thing_label_ids = dict(self.THING_LABEL_IDS
                                    if thing_label_ids is None else
                                    thing_label_ids)
        self.backend_args = backend_args

    def transform(self, results: dict) -> dict:
        """Add ``instances``.

        Args:
            results (dict): The pipeline results.

        Returns:
            dict: The results with the instance annotations.
        """
        ids = read_id_map(results['instance_map_path'], self.backend_args)
        instances = []
        for value in np.unique(ids).tolist():
            label_id = value // 1000 if value >= 1000 else value
            train_id = self.thing_label_ids.get(label_id)
            if train_id is None:
                continue
            instances.append(
                _coco_instance(ids == value, train_id, value < 1000))
        results['instances'] = instances
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}('
                f'thing_label_ids={self.thing_label_ids})')


@TRANSFORMS.register_module()
class LoadPanopticInstances(BaseTransform):
    """The thing segments of a panoptic PNG as COCO-style instances for
    mmdet's ``CocoMetric`` (without an ``ann_file``).

    Every segment of ``segments_info`` whose class is a thing becomes an
    instance; crowd segments become crowd (ignored) annotations.

    Required keys: ``seg_map_path`` (PNG, ``id = R + 256 G + 256^2 B``),
    ``segments_info`` (``id``, contiguous ``category``, ``iscrowd``),
    ``is_thing`` (per class), from :class:`PSALMOVPanopticDataset`. Added
    keys: ``instances`` (as :class:`LoadCityscapesInstances`), replacing
    the mask-less boxes of the data info; pack it as a meta key.

    Args:
        backend_args (dict, optional): File backend arguments.
    """

    def __init__(self, backend_args: Optional[dict] = None) -> None:
        self.backend_args = backend_args

    def transform(self, results: dict) -> dict:
        """Add ``instances``.

        Args:
            results (dict): The pipeline results.

        Returns:
            dict: The results with the instance annotations.
        """
        png = mmcv.imfrombytes(
            get(results['seg_map_path'], backend_args=self.backend_args),
            flag='color',
            channel_order='rgb')
        pan_ids = rgb2id(png)
        is_thing = results['is_thing']
        instances = []
        for segment in results['segments_info']:
            if not is_thing[segment['category']]:
                continue
            instances.append(
                _coco_instance(pan_ids == segment['id'], segment['category'],
                               segment['iscrowd']))
        results['instances'] = instances
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}()'


def _coco_instance(mask: np.ndarray, label: int, crowd: bool) -> dict:
    """A COCO-style instance (RLE mask, x1y1x2y2 box) of a binary mask."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle['counts'] = rle['counts'].decode()
    x, y, w, h = mask_utils.toBbox(rle).tolist()
    return dict(
        mask=rle,
        bbox=[x, y, x + w, y + h],
        bbox_label=int(label),
        ignore_flag=int(crowd))
