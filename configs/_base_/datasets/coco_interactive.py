# COCO-Interactive train for PSALM's interactive segmentation task
# ('interactive': segment the objects given by point / scribble / box / mask
# prompts; paper Sec. 4.1 and appendix 8), one of the four tasks of the joint
# training (`psalm_joint.py`).
# Layout (shared with `eval/coco_interactive.py`): data/coco/{train2017,
# annotations/coco_interactive_train_psalm.json}, the json released by PSALM
# or built from annotations/instances_train2017.json by
# tools/dataset_converters/build_coco_interactive.py; see "Prepare datasets"
# in the README.
# The variables carry the task's name because `psalm_joint.py` inherits all
# four task files and text configs refuse a key defined in two bases. Paths
# are relative to `data_root` inside the dataset dict.
interactive_data_root = 'data/coco/'

interactive_train_pipeline = [
    dict(type='LoadImageFromFile'),
    # the GT mask of every region (non-crowd instance)
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    # each region's prompt at the original size; points dilated (r=10) and
    # scribbles (r=5) as the official loader
    dict(type='LoadVisualPrompts'),
    # long side to 1024, aspect kept; the preprocessor pads to 1024x1024
    dict(type='Resize', scale=(1024, 1024), keep_ratio=True),
    # the prompts follow the image and the GT masks (nearest)
    dict(type='ResizeVisualPrompts'),
    dict(type='PackPSALMInputs')
]
# prompt_type=None: every region gets a prompt type drawn at every fetch
interactive_train_dataset = dict(
    type='COCOInteractiveDataset',
    data_root=interactive_data_root,
    ann_file='annotations/coco_interactive_train_psalm.json',
    data_prefix=dict(img='train2017/'),
    prompt_type=None,
    pipeline=interactive_train_pipeline)
