# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Write a ShapesWorld tree in the formats of the real datasets.

Layout under ``out_dir`` (the README's ``data/``; the real configs read it
with their ``data_root`` moved there)::

    coco/
      train2017/ val2017/                  scenes, <image_id:012d>.jpg
      train2014/                           every scene again (hard links),
                                           COCO_train2014_<image_id>.jpg
      val2014/                             the val scenes (hard links),
                                           COCO_val2014_<image_id>.jpg
      annotations/
        panoptic_{train,val}2017.json      COCO panoptic (things + stuff)
        panoptic_{train,val}2017/*.png     id = R + 256 G + 256^2 B
        instances_{train,val}2017.json     the things, RLE masks
        coco_interactive_{train,val}_psalm.json   build_coco_interactive.py
      refcoco/  instances.json refs(unc).p     refer toolkit, splits
      refcoco+/ instances.json refs(unc).p     train / val
      refcocog/ instances.json refs(umd).p
      grefcoco/ instances.json grefs(unc).json
    llava/
      llava_v1_5_mix665k_onlyMM_filtered.json  QA + caption conversations
      coco/train2017/                      the train scenes (hard links)
    vqa/vqav2_val.json                     val questions with answers
    cc3m/chat.json  cc3m/images/           captions of the train scenes
    DAVIS/
      JPEGImages/480p/<video>/00000.jpg ...
      Annotations/480p/<video>/00000.png ...   palette PNGs, ids 1..n
      ImageSets/2017/{train,val}.txt

Ids: image ``i`` of split ``train`` / ``val`` has ``image_id = offset + i
+ 1`` (offset 0 / 500000); its things (z order ``k``) and stuff bands
(top to bottom ``j``) have the segment ids ``(image_id - 1) * 16 + k + 1``
and ``(image_id - 1) * 16 + 9 + j``, unique over both splits and below
``256^3``; a thing's instance annotation id is its panoptic segment id.
Category ids: things 1-6 (:data:`~.scene.THING_CLASSES`), stuff 7-10
(:data:`~.scene.STUFF_CLASSES`), the same in every json; the panoptic json
lists the things first.

Randomness: every scene, text stream and video has its own generator,
``np.random.default_rng([seed, split, index, stream])``, so the val data do
not change with ``num_train`` (and vice versa), and the same arguments give
byte-identical files.
"""
import importlib.util
import io
import os
import os.path as osp
import shutil
import tempfile
from contextlib import redirect_stderr, redirect_stdout
from typing import Dict, List

import numpy as np
import pycocotools.mask as mask_utils

from .expressions import (caption, gref_expressions, qa_pairs,
                          referring_expressions, tokenize)
from .scene import (STUFF_CLASSES, THING_CLASSES, Scene, object_attributes,
                    sample_scene, scene_id_map)
from .video import sample_video
from .writers import (davis_palette, link_or_copy, write_jpeg, write_json,
                      write_palette_png, write_panoptic_png, write_pickle)

__all__ = [
    'generate_shapesworld', 'CATEGORIES', 'QUESTION_SUFFIX', 'LLAVA_JSON',
    'MAX_IMAGES_PER_SPLIT', 'OUTPUT_FOLDERS'
]

REPO_ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..', '..',
                                 '..'))
BUILDER = osp.join(REPO_ROOT, 'tools', 'dataset_converters',
                   'build_coco_interactive.py')
#: LLaVA-1.5's short-answer instruction (configs/_base_/datasets/eval/vqa.py).
QUESTION_SUFFIX = '\nAnswer the question using a single word or phrase.'
#: File name of the instruction json (configs/_base_/datasets/
#: llava_instruct.py).
LLAVA_JSON = 'llava_v1_5_mix665k_onlyMM_filtered.json'
#: Top-level folders the generator owns below ``out_dir``.
OUTPUT_FOLDERS = ('coco', 'llava', 'vqa', 'cc3m', 'DAVIS')
MAX_IMAGES_PER_SPLIT = 500_000
MAX_OBJECTS = 8
_SPLIT_OFFSET = {'train': 0, 'val': MAX_IMAGES_PER_SPLIT}
_SPLIT_CODE = {'train': 0, 'val': 1, 'video': 2}
_STREAMS = ('scene', 'refcoco', 'refcoco+', 'refcocog', 'grefcoco', 'qa',
            'caption')
_CATEGORY_COLOURS = {
    'circle': [220, 20, 60], 'square': [0, 130, 200],
    'triangle': [60, 180, 75], 'star': [255, 225, 25],
    'hexagon': [145, 30, 180], 'ring': [245, 130, 48],
    'sky': [135, 206, 235], 'grass': [34, 139, 34], 'water': [0, 105, 148],
    'sand': [194, 178, 128]
}
#: Panoptic categories: things first, then stuff.
CATEGORIES: List[dict] = [
    dict(id=i + 1, name=name, supercategory='shape' if i < len(
        THING_CLASSES) else 'background', isthing=int(i < len(THING_CLASSES)),
         color=_CATEGORY_COLOURS[name])
    for i, name in enumerate(THING_CLASSES + STUFF_CLASSES)
]
_CAT_ID = {cat['name']: cat['id'] for cat in CATEGORIES}
_INFO = dict(description='ShapesWorld: synthetic scenes in the COCO, '
             'RefCOCO, LLaVA and DAVIS formats (PSALM-OpenMMLab)',
             version='1.0')
_CAPTION_INSTRUCTIONS = (
    'Describe the image concisely.',
    'Provide a brief description of the given image.',
    'Give a short description of the picture.',
    'Summarize the visual content of the image.',
    'Write a one-sentence caption for the image.',
)
_REFER = (('refcoco', 'refs(unc).p'), ('refcoco+', 'refs(unc).p'),
          ('refcocog', 'refs(umd).p'))


def _rng(seed: int, split: str, index: int,
         stream: str) -> np.random.Generator:
    """The generator of one (split, index, stream)."""
    return np.random.default_rng(
        [seed, _SPLIT_CODE[split], index, _STREAMS.index(stream)])


def _segment_id(image_id: int, local: int) -> int:
    return (image_id - 1) * 16 + local + 1


def _rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    return dict(size=[int(s) for s in rle['size']],
                counts=rle['counts'].decode('ascii'))


def _coco_box(mask: np.ndarray) -> List[int]:
    rows, cols = np.nonzero(mask)
    x0, y0 = int(cols.min()), int(rows.min())
    return [x0, y0, int(cols.max()) + 1 - x0, int(rows.max()) + 1 - y0]


class _SplitData:
    """Everything written for one split, accumulated image by image."""

    def __init__(self) -> None:
        self.images: List[dict] = []
        self.refer_images: List[dict] = []
        self.panoptic: List[dict] = []
        self.things: List[dict] = []
        self.stuff: List[dict] = []
        self.refs: Dict[str, List[dict]] = {name: [] for name, _ in _REFER}
        self.grefs: List[dict] = []
        self.llava: List[dict] = []
        self.vqa: List[dict] = []
        self.captions: List[dict] = []


def _image_annotations(scene: Scene, image_id: int, file_name: str,
                       data: _SplitData, seg_dir: str) -> List[dict]:
    """Panoptic PNG + segments, thing and stuff annotations of a scene.

    Returns:
        list[dict]: The objects (``id`` + attributes) of the image.
    """
    thing_ids = [_segment_id(image_id, k) for k in range(len(scene.objects))]
    stuff_ids = [
        _segment_id(image_id, 8 + j) if region.visible.any() else 0
        for j, region in enumerate(scene.stuff)
    ]
    write_panoptic_png(
        osp.join(seg_dir, file_name.replace('.jpg', '.png')),
        scene_id_map(scene, thing_ids, stuff_ids))
    segments, objects = [], []
    for k, (obj, seg_id) in enumerate(zip(scene.objects, thing_ids)):
        attributes = object_attributes(obj, k)
        objects.append(dict(id=seg_id, **attributes))
        segments.append(
            dict(id=seg_id, category_id=_CAT_ID[obj.shape], iscrowd=0,
                 bbox=attributes['bbox'], area=attributes['area']))
        data.things.append(
            dict(id=seg_id, image_id=image_id,
                 category_id=_CAT_ID[obj.shape],
                 segmentation=_rle(obj.visible), area=attributes['area'],
                 bbox=attributes['bbox'], iscrowd=0,
                 shapesworld=attributes))
    for region, seg_id in zip(scene.stuff, stuff_ids):
        if not seg_id:
            continue
        box, area = _coco_box(region.visible), int(region.visible.sum())
        segments.append(
            dict(id=seg_id, category_id=_CAT_ID[region.name], iscrowd=0,
                 bbox=box, area=area))
        data.stuff.append(
            dict(id=seg_id, image_id=image_id,
                 category_id=_CAT_ID[region.name],
                 segmentation=_rle(region.visible), area=area, bbox=box,
                 iscrowd=0))
    data.panoptic.append(
        dict(image_id=image_id, file_name=file_name.replace('.jpg', '.png'),
             segments_info=segments))
    return objects


def _sentence(text: str, sent_id: int, **extra) -> dict:
    tokens = tokenize(text)
    return dict(tokens=tokens, raw=text, sent_id=sent_id,
                sent=' '.join(tokens), **extra)


class _Counter:
    """Running ref / sentence ids of one refs file."""

    def __init__(self) -> None:
        self.ref_id = 0
        self.sent_id = 0


def _image_text(objects: List[dict], stuff: List[str], split: str,
                index: int, image_id: int, seed: int, image_size: int,
                data: _SplitData, counters: Dict[str, _Counter]) -> None:
    """Referring, gRef, QA and caption records of one image."""
    refer_name = f'COCO_train2014_{image_id:012d}.jpg'
    for name, _ in _REFER:
        rng = _rng(seed, split, index, name)
        counter = counters[name]
        for target in objects:
            sentences = referring_expressions(target, objects, rng,
                                              image_size, style=name)
            if not sentences:
                continue
            sents = []
            for text, _ in sentences:
                sents.append(_sentence(text, counter.sent_id))
                counter.sent_id += 1
            data.refs[name].append(
                dict(sent_ids=[s['sent_id'] for s in sents],
                     file_name=refer_name.replace(
                         '.jpg', f'_{target["id"]}.jpg'),
                     ann_id=target['id'], ref_id=counter.ref_id,
                     image_id=image_id, split=split, sentences=sents,
                     category_id=_CAT_ID[target['shape']],
                     shapesworld=[p for _, p in sentences]))
            counter.ref_id += 1

    rng = _rng(seed, split, index, 'grefcoco')
    counter = counters['grefcoco']
    by_id = {obj['id']: obj for obj in objects}
    for ref in gref_expressions(objects, rng, image_size):
        sents = []
        for text, _ in ref['sentences']:
            sents.append(
                _sentence(text, counter.sent_id, ref_id=counter.ref_id))
            counter.sent_id += 1
        ann_ids = ref['ann_ids'] or [-1]
        data.grefs.append(
            dict(sent_ids=[s['sent_id'] for s in sents],
                 file_name=refer_name.replace('.jpg', f'_{ann_ids[0]}.jpg'),
                 ann_id=ann_ids, ref_id=counter.ref_id, image_id=image_id,
                 split=split, sentences=sents,
                 category_id=[_CAT_ID[by_id[i]['shape']]
                              for i in ref['ann_ids']],
                 no_target=not ref['ann_ids'],
                 shapesworld=[p for _, p in ref['sentences']]))
        counter.ref_id += 1

    rng = _rng(seed, split, index, 'qa')
    file_name = f'{image_id:012d}.jpg'
    if split == 'train':
        pairs = qa_pairs(objects, stuff, rng, image_size, num=4)
        turns = []
        for k, pair in enumerate(pairs):
            question = pair['question'] + QUESTION_SUFFIX
            if k == 0:
                question = '<image>\n' + question
            turns += [dict(value=question), dict(value=pair['answer'])]
        for k, turn in enumerate(turns):
            turns[k] = {'from': 'gpt' if k % 2 else 'human', **turn}
        data.llava.append(
            dict(id=f'{image_id:012d}', image=f'coco/train2017/{file_name}',
                 conversations=turns, shapesworld=pairs))
    else:
        for k, pair in enumerate(qa_pairs(objects, stuff, rng, image_size,
                                          num=3)):
            data.vqa.append(
                dict(question_id=image_id * 10 + k, image_id=image_id,
                     image=f'COCO_val2014_{image_id:012d}.jpg',
                     question=pair['question'], answer=pair['answer'],
                     shapesworld=pair))

    if split == 'train':
        rng = _rng(seed, split, index, 'caption')
        text, groups = caption(objects, stuff, rng)
        instruction = _CAPTION_INSTRUCTIONS[int(
            rng.integers(len(_CAPTION_INSTRUCTIONS)))]
        human = (f'<image>\n{instruction}' if rng.random() < 0.5 else
                 f'{instruction}\n<image>')
        conversations = [{'from': 'human', 'value': human},
                         {'from': 'gpt', 'value': text}]
        extra = dict(shapesworld=dict(groups=groups, stuff=stuff))
        data.llava.append(
            dict(id=f'{image_id:012d}_caption',
                 image=f'coco/train2017/{file_name}',
                 conversations=conversations, **extra))
        data.captions.append(
            dict(id=f'GCC_train_{image_id:012d}',
                 image=f'GCC_train_{image_id:012d}.jpg',
                 conversations=conversations, **extra))


def _coco_json(images: List[dict], annotations: List[dict],
               categories: List[dict]) -> dict:
    return dict(info=_INFO, licenses=[], images=images,
                annotations=annotations, categories=categories)


def _load_builder():
    """The COCO-Interactive builder module (tools/dataset_converters)."""
    if not osp.isfile(BUILDER):
        raise FileNotFoundError(
            f'the COCO-Interactive builder {BUILDER} does not exist; run the '
            'generator from a checkout of the repository')
    spec = importlib.util.spec_from_file_location('build_coco_interactive',
                                                  BUILDER)
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    return builder


def _build_interactive(detection: dict, out_json: str, image_root: str,
                       seed: int) -> Dict[str, int]:
    """Run the real COCO-Interactive builder (quietly) on a detection-format
    json of all panoptic segments."""
    builder = _load_builder()
    with tempfile.TemporaryDirectory() as tmp:
        src = osp.join(tmp, 'panoptic_detection_format.json')
        write_json(src, detection)
        argv = [src, out_json, '--seed', str(seed), '--image-root',
                image_root]
        with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
            return builder.main(argv)


def _write_video(video, name: str, root: str, palette: List[int]) -> int:
    for t, (frame, ids) in enumerate(zip(video.frames, video.masks)):
        write_jpeg(osp.join(root, 'JPEGImages', '480p', name,
                            f'{t:05d}.jpg'), frame)
        write_palette_png(
            osp.join(root, 'Annotations', '480p', name, f'{t:05d}.png'), ids,
            palette)
    return len(video.frames)


def _prepare_out_dir(root: str, overwrite: bool) -> None:
    existing = [
        name for name in OUTPUT_FOLDERS if osp.lexists(osp.join(root, name))
    ]
    if existing and not overwrite:
        raise FileExistsError(
            f'{root} already has {existing}; pass overwrite=True '
            '(--overwrite) to replace them')
    for name in existing:
        path = osp.join(root, name)
        if osp.isdir(path) and not osp.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
    os.makedirs(root, exist_ok=True)


def generate_shapesworld(out_dir: str,
                         num_train: int = 400,
                         num_val: int = 60,
                         num_videos: int = 8,
                         seed: int = 0,
                         image_size: int = 256,
                         num_frames: tuple = (10, 16),
                         overwrite: bool = False,
                         progress: bool = False) -> Dict[str, object]:
    """Generate the ShapesWorld tree (module docstring) under ``out_dir``.

    Args:
        out_dir (str): Root of the tree (the README's ``data/``).
        num_train (int): Train scenes (>= 1).
        num_val (int): Val scenes (>= 1).
        num_videos (int): DAVIS videos (>= 0); video ``i`` goes to ``val``
            for even ``i``, ``train`` for odd ``i``.
        seed (int): Seed (>= 0).
        image_size (int): Side of the square images and frames (>= 64).
        num_frames (tuple): Range of the frames per video (inclusive).
        overwrite (bool): Replace the generator's folders (``coco``,
            ``llava``, ``vqa``, ``cc3m``, ``DAVIS``) if they exist; without
            it an existing one raises.
        progress (bool): Show a progress bar.

    Returns:
        dict: ``root`` and the dataset roots (``coco``, ``llava``, ``vqa``
        (the root of the VQA config, i.e. ``root``), ``cc3m``, ``davis``),
        and ``counts`` (images, objects, refs, sentences, records, videos,
        frames per split and dataset).

    Raises:
        ValueError: For out-of-range arguments.
        FileExistsError: For existing output folders without
            ``overwrite``.
    """
    for name, value, low in (('num_train', num_train, 1),
                             ('num_val', num_val, 1),
                             ('num_videos', num_videos, 0), ('seed', seed, 0),
                             ('image_size', image_size, 64)):
        if not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f'{name} must be an int >= {low}, got {value!r}')
    for name, value in (('num_train', num_train), ('num_val', num_val)):
        if value > MAX_IMAGES_PER_SPLIT:
            raise ValueError(f'{name} must be <= {MAX_IMAGES_PER_SPLIT} '
                             f'(segment ids), got {value}')
    root = osp.abspath(out_dir)
    _prepare_out_dir(root, overwrite)
    coco = osp.join(root, 'coco')
    ann_dir = osp.join(coco, 'annotations')
    bar = None
    if progress:
        from mmengine.utils import ProgressBar
        # scenes, the COCO-Interactive json of each split, videos
        bar = ProgressBar(num_train + num_val + 2 + num_videos)

    counters = {name: _Counter() for name in ('refcoco', 'refcoco+',
                                              'refcocog', 'grefcoco')}
    splits: Dict[str, _SplitData] = {}
    for split, num in (('train', num_train), ('val', num_val)):
        data = splits[split] = _SplitData()
        seg_dir = osp.join(ann_dir, f'panoptic_{split}2017')
        for index in range(num):
            image_id = _SPLIT_OFFSET[split] + index + 1
            file_name = f'{image_id:012d}.jpg'
            scene = sample_scene(_rng(seed, split, index, 'scene'),
                                 image_size, num_objects=(3, MAX_OBJECTS))
            image_path = osp.join(coco, f'{split}2017', file_name)
            write_jpeg(image_path, scene.image)
            refer_name = f'COCO_train2014_{image_id:012d}.jpg'
            link_or_copy(image_path, osp.join(coco, 'train2014', refer_name))
            if split == 'val':
                link_or_copy(
                    image_path,
                    osp.join(coco, 'val2014',
                             f'COCO_val2014_{image_id:012d}.jpg'))
            else:
                link_or_copy(image_path,
                             osp.join(root, 'llava', 'coco', 'train2017',
                                      file_name))
                link_or_copy(
                    image_path,
                    osp.join(root, 'cc3m', 'images',
                             f'GCC_train_{image_id:012d}.jpg'))
            stuff = [region.name for region in scene.stuff]
            image = dict(id=image_id, file_name=file_name,
                         height=image_size, width=image_size,
                         shapesworld=dict(split=split, stuff=stuff))
            data.images.append(image)
            data.refer_images.append(dict(image, file_name=refer_name))
            objects = _image_annotations(scene, image_id, file_name, data,
                                         seg_dir)
            _image_text(objects, stuff, split, index, image_id, seed,
                        image_size, data, counters)
            if bar is not None:
                bar.update()

    counts: Dict[str, object] = {}
    thing_categories = [
        {k: cat[k] for k in ('id', 'name', 'supercategory')}
        for cat in CATEGORIES if cat['isthing']
    ]
    for split, data in splits.items():
        write_json(
            osp.join(ann_dir, f'panoptic_{split}2017.json'),
            _coco_json(data.images, data.panoptic, CATEGORIES))
        instances_json = osp.join(ann_dir, f'instances_{split}2017.json')
        write_json(instances_json,
                   _coco_json(data.images, data.things, thing_categories))
        interactive = _build_interactive(
            _coco_json(data.images, data.things + data.stuff, [
                {k: cat[k] for k in ('id', 'name', 'supercategory')}
                for cat in CATEGORIES
            ]),
            osp.join(ann_dir, f'coco_interactive_{split}_psalm.json'),
            osp.join(coco, f'{split}2017'), seed)
        if bar is not None:
            bar.update()
        counts[split] = dict(
            images=len(data.images), objects=len(data.things),
            stuff_segments=len(data.stuff),
            interactive_regions=interactive['annotations'],
            **{name: len(data.refs[name]) for name, _ in _REFER},
            grefcoco=len(data.grefs))
    counts['train'].update(llava_records=len(splits['train'].llava),
                           cc3m_records=len(splits['train'].captions))
    counts['val'].update(vqa_questions=len(splits['val'].vqa))

    # refer-toolkit folders: one instances.json (train + val things)
    refer_instances = _coco_json(
        splits['train'].refer_images + splits['val'].refer_images,
        splits['train'].things + splits['val'].things, thing_categories)
    first = osp.join(coco, 'refcoco', 'instances.json')
    write_json(first, refer_instances)
    for name, refs_file in _REFER:
        if name != 'refcoco':
            link_or_copy(first, osp.join(coco, name, 'instances.json'))
        write_pickle(
            osp.join(coco, name, refs_file),
            splits['train'].refs[name] + splits['val'].refs[name])
    link_or_copy(first, osp.join(coco, 'grefcoco', 'instances.json'))
    write_json(
        osp.join(coco, 'grefcoco', 'grefs(unc).json'),
        splits['train'].grefs + splits['val'].grefs)

    write_json(osp.join(root, 'llava', LLAVA_JSON), splits['train'].llava)
    write_json(osp.join(root, 'vqa', 'vqav2_val.json'), splits['val'].vqa)
    write_json(osp.join(root, 'cc3m', 'chat.json'), splits['train'].captions)

    davis = osp.join(root, 'DAVIS')
    palette = davis_palette()
    video_lists = dict(train=[], val=[])
    frames = 0
    for index in range(num_videos):
        name = f'shapes{index:03d}'
        video = sample_video(_rng(seed, 'video', index, 'scene'), image_size,
                             num_frames=num_frames)
        frames += _write_video(video, name, davis, palette)
        video_lists['val' if index % 2 == 0 else 'train'].append(name)
        if bar is not None:
            bar.update()
    if num_videos:
        for split, names in video_lists.items():
            path = osp.join(davis, 'ImageSets', '2017', f'{split}.txt')
            os.makedirs(osp.dirname(path), exist_ok=True)
            with open(path, 'w') as f:
                f.write(''.join(f'{name}\n' for name in names))
    counts['davis'] = dict(videos=num_videos, frames=frames,
                           train=len(video_lists['train']),
                           val=len(video_lists['val']))
    if bar is not None:
        print()
    return dict(root=root, coco=coco, llava=osp.join(root, 'llava'),
                vqa=root, cc3m=osp.join(root, 'cc3m'), davis=davis,
                counts=counts)
