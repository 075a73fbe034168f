# Copyright (c) PSALM-OpenMMLab authors. All rights reserved.
"""Lay out the real fixture data of ``tests/data`` as the README's ``data/``.

The real training and benchmark configs read fixed file names below a
``data_root`` (README "Prepare datasets"). This script makes that tree out of
the small real fixtures (two COCO val2017 images with their panoptic and
instance annotations, a refer-toolkit RefCOCO sample, LLaVA records, CC3M
style captions), so that the real configs run on them unchanged but for
their ``data_root``s::

    OUT_DIR/
    ├── coco/
    │   ├── train2017/ val2017/ train2014/      -> the 2 COCO images
    │   ├── annotations/
    │   │   ├── panoptic_{train,val}2017.json   -> the panoptic sample json
    │   │   ├── panoptic_{train,val}2017/       -> its PNGs
    │   │   ├── instances_{train,val}2017.json  # the 43 thing segments
    │   │   └── coco_interactive_{train,val}_psalm.json  # built, seed 0
    │   ├── refcoco/  instances.json  refs(unc).p   -> the refer sample
    │   ├── refcoco+/ instances.json  refs(unc).p   -> the same files
    │   └── refcocog/ instances.json  refs(umd).p   -> the same files
    ├── llava/
    │   ├── llava_v1_5_mix665k_onlyMM_filtered.json -> 5 LLaVA records
    │   └── <image of every record>                 -> one of the 2 images
    └── cc3m/
        ├── chat.json                               -> 8 caption records
        └── images/<image of every record>          -> one of the 2 images

Train and val are the same two images. Files are symbolic links to
``tests/data`` (absolute paths) except three kinds of generated files:

* ``instances_{train,val}2017.json``: the RefCOCO sample's ``instances.json``
  (the COCO instance annotations of the two images, 80 thing classes) with
  every annotation id + 1, because pycocotools counts a detection matched to
  the annotation of id 0 as a false positive (real COCO ids start at 1);
* ``coco_interactive_{train,val}_psalm.json``: built by
  ``tools/dataset_converters/build_coco_interactive.py`` (seed 0) from the
  panoptic sample in COCO instance format (``panoptic_coco_detection_format
  .json``: all 50 segments, things and stuff; 47 non-crowd regions).

Running it again over an existing ``OUT_DIR`` replaces what it made.

Example (tools/quickstart.sh; the configs/fixtures/ configs read this
tree, other configs are moved to it by ``--cfg-options``, see
:func:`joint_data_roots`)::

    python tools/misc/prepare_fixture_data.py work_dirs/fixtures/data
"""
import argparse
import importlib.util
import io
import json
import os
import os.path as osp
from contextlib import redirect_stderr, redirect_stdout
from typing import Dict, Optional

REPO_ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
FIXTURES = osp.join(REPO_ROOT, 'tests', 'data')
BUILDER = osp.join(REPO_ROOT, 'tools', 'dataset_converters',
                   'build_coco_interactive.py')

PANOPTIC = 'coco_panoptic_sample'
REFCOCO = 'refcoco_sample'
# the two real COCO val2017 images; records of other images get them in turn
COCO_IMAGES = ('000000142238.jpg', '000000439180.jpg')
# folder -> the refs file name the configs expect (the fixture is UNC's)
REFCOCO_FOLDERS = (('refcoco', 'refs(unc).p'), ('refcoco+', 'refs(unc).p'),
                   ('refcocog', 'refs(umd).p'))
LLAVA_JSON = 'llava_v1_5_mix665k_onlyMM_filtered.json'


def _replace(dst: str) -> None:
    """Remove a previous link or file at ``dst``; make its folder."""
    if osp.islink(dst) or osp.isfile(dst):
        os.remove(dst)
    elif osp.isdir(dst):
        raise FileExistsError(f'{dst} is a folder; remove it first')
    os.makedirs(osp.dirname(dst), exist_ok=True)


def link(src: str, dst: str) -> None:
    """Symbolic link ``dst`` -> ``src`` (absolute), replacing an old one."""
    if not osp.exists(src):
        raise FileNotFoundError(f'fixture {src} does not exist')
    _replace(dst)
    os.symlink(osp.abspath(src), dst)


def link_record_images(records: list, folder: str, image_dir: str) -> int:
    """Give every record's ``image`` (relative to ``folder``) one of the two
    real COCO images, in turn. Returns the number of records."""
    for i, record in enumerate(records):
        link(osp.join(image_dir, COCO_IMAGES[i % 2]),
             osp.join(folder, record['image']))
    return len(records)


def _load_builder():
    spec = importlib.util.spec_from_file_location('build_coco_interactive',
                                                  BUILDER)
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    return builder


def build_interactive(instances_json: str, out_json: str, image_root: str,
                      seed: int = 0, quiet: bool = True) -> Dict[str, int]:
    """Run the COCO-Interactive builder; returns its counts."""
    _replace(out_json)
    argv = [instances_json, out_json, '--seed', str(seed), '--image-root',
            image_root]
    builder = _load_builder()
    if not quiet:
        return builder.main(argv)
    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        return builder.main(argv)


def write_instances(src: str, dst: str) -> int:
    """Copy a COCO instance json with every annotation id + 1."""
    with open(src) as f:
        coco = json.load(f)
    for ann in coco['annotations']:
        ann['id'] += 1
    _replace(dst)
    with open(dst, 'w') as f:
        json.dump(coco, f)
    return len(coco['annotations'])


def prepare(out_dir: str,
            fixtures: str = FIXTURES,
            seed: int = 0,
            quiet: bool = True) -> Dict[str, str]:
    """Lay out the fixtures of ``fixtures`` under ``out_dir``.

    Args:
        out_dir (str): Root of the tree (the README's ``data/``).
        fixtures (str): The ``tests/data`` folder.
        seed (int): Seed of the COCO-Interactive prompts.
        quiet (bool): Hide the builder's progress and counts.

    Returns:
        dict[str, str]: Absolute paths: ``root``, ``coco``, ``llava``,
        ``cc3m`` (the dataset roots, without trailing ``/``),
        ``instances_val`` and ``interactive_val`` (the generated val jsons).
    """
    root = osp.abspath(out_dir)
    pan = osp.join(fixtures, PANOPTIC)
    ref = osp.join(fixtures, REFCOCO)
    images = osp.join(pan, 'input_images')
    coco = osp.join(root, 'coco')
    ann_dir = osp.join(coco, 'annotations')

    # COCO 2017 (panoptic, instances, COCO-Interactive) and 2014 images
    for folder in ('train2017', 'val2017', 'train2014'):
        link(images, osp.join(coco, folder))
    for split in ('train', 'val'):
        link(osp.join(pan, 'panoptic_examples.json'),
             osp.join(ann_dir, f'panoptic_{split}2017.json'))
        link(osp.join(pan, 'panoptic_examples'),
             osp.join(ann_dir, f'panoptic_{split}2017'))
        write_instances(
            osp.join(ref, 'instances.json'),
            osp.join(ann_dir, f'instances_{split}2017.json'))
        build_interactive(
            osp.join(pan, 'panoptic_coco_detection_format.json'),
            osp.join(ann_dir, f'coco_interactive_{split}_psalm.json'),
            osp.join(coco, f'{split}2017'), seed=seed, quiet=quiet)

    # RefCOCO / RefCOCO+ / RefCOCOg: the one refer-toolkit sample
    for name, refs in REFCOCO_FOLDERS:
        link(osp.join(ref, 'instances.json'),
             osp.join(coco, name, 'instances.json'))
        link(osp.join(ref, 'refs(unc).p'), osp.join(coco, name, refs))

    # LLaVA-1.5 instruction records and CC3M-style captions
    llava_json = osp.join(fixtures, 'llava', 'llava_instruct_5.json')
    llava = osp.join(root, 'llava')
    link(llava_json, osp.join(llava, LLAVA_JSON))
    with open(llava_json) as f:
        link_record_images(json.load(f), llava, images)
    chat_json = osp.join(fixtures, 'llava', 'caption_chat_8.json')
    cc3m = osp.join(root, 'cc3m')
    link(chat_json, osp.join(cc3m, 'chat.json'))
    with open(chat_json) as f:
        link_record_images(json.load(f), osp.join(cc3m, 'images'), images)

    return dict(
        root=root,
        coco=coco,
        llava=llava,
        cc3m=cc3m,
        instances_val=osp.join(ann_dir, 'instances_val2017.json'),
        interactive_val=osp.join(ann_dir, 'coco_interactive_val_psalm.json'))


def joint_data_roots(root: str) -> Dict[str, str]:
    """The ``--cfg-options`` of ``configs/_base_/datasets/psalm_joint.py``
    (its header) that move the joint training data to the tree ``root``."""
    coco = osp.join(root, 'coco') + '/'
    llava = osp.join(root, 'llava') + '/'
    key = 'train_dataloader.dataset.datasets'
    return {
        f'{key}.0.data_root': coco,
        f'{key}.1.datasets.0.data_root': coco,
        f'{key}.1.datasets.1.data_root': coco,
        f'{key}.1.datasets.2.data_root': coco,
        f'{key}.2.data_root': coco,
        f'{key}.3.data_root': llava,
    }


def parse_args(argv: Optional[list] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Lay out the fixture data of tests/data as the README\'s '
        'data/ tree (symbolic links + the COCO-Interactive jsons).')
    parser.add_argument('out_dir', help='root of the tree (README: data/)')
    parser.add_argument('--fixtures', default=FIXTURES,
                        help='the fixture folder (default: tests/data)')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the COCO-Interactive prompts')
    return parser.parse_args(argv)


def main(argv: Optional[list] = None) -> Dict[str, str]:
    args = parse_args(argv)
    paths = prepare(args.out_dir, args.fixtures, args.seed)
    print(f'fixture data laid out in {paths["root"]}/: coco/ (2 images, '
          'panoptic, instances, RefCOCO/+/g refs, COCO-Interactive), '
          'llava/ (5 records), cc3m/ (8 captions)')
    return paths


if __name__ == '__main__':
    main()
