# COCO panoptic train2017 for PSALM's generic segmentation task ('panoptic':
# the 133 class names of the json, things and stuff; paper Sec. 4.1), one of
# the four tasks of the joint training (`psalm_joint.py`).
# Layout (mmdet's, shared with `eval/coco_panoptic.py`): data/coco/{train2017,
# annotations/panoptic_train2017.json, annotations/panoptic_train2017/*.png};
# see "Prepare datasets" in the README.
# The variables carry the task's name because `psalm_joint.py` inherits all
# four task files and text configs refuse a key defined in two bases. Paths
# are relative to `data_root` INSIDE the dataset dict, so moving the data
# takes one override (`...datasets.0.data_root=/path/to/coco/`).
panoptic_data_root = 'data/coco/'

panoptic_train_pipeline = [
    dict(type='LoadImageFromFile'),
    # one binary target per non-crowd segment (things and stuff) of the PNG
    dict(type='LoadPanopticSegments'),
    # long side to 1024, aspect kept (no other augmentation, as the official
    # code); the data preprocessor pads to 1024x1024 with 128
    dict(type='Resize', scale=(1024, 1024), keep_ratio=True),
    dict(type='PackPSALMInputs')
]
# every image is used (no filter_cfg): stuff-only images are valid panoptic
# samples, as in the official training
panoptic_train_dataset = dict(
    type='PSALMCocoPanopticDataset',
    task='panoptic',
    data_root=panoptic_data_root,
    ann_file='annotations/panoptic_train2017.json',
    data_prefix=dict(img='train2017/', seg='annotations/panoptic_train2017/'),
    pipeline=panoptic_train_pipeline)
