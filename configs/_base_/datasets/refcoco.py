# RefCOCO, RefCOCO+ and RefCOCOg train splits, concatenated, for PSALM's
# referring segmentation task ('referring'; paper Sec. 4.1, reference Sec.
# 6.3: the official training concatenates the three train lists), one of the
# four tasks of the joint training (`psalm_joint.py`).
# Layout (mmdet's, shared with `eval/refcoco.py`): data/coco/{train2014,
# refcoco/{instances.json, refs(unc).p}, refcoco+/{instances.json,
# refs(unc).p}, refcocog/{instances.json, refs(umd).p}} (refer toolkit
# files); see "Prepare datasets" in the README.
# The variables carry the task's name because `psalm_joint.py` inherits all
# four task files and text configs refuse a key defined in two bases. Paths
# are relative to `data_root` inside each dataset dict.
refcoco_data_root = 'data/coco/'

refcoco_train_pipeline = [
    dict(type='LoadImageFromFile'),
    # the referent's mask (labels are all 0: one sentence per sample)
    dict(type='LoadAnnotations', with_bbox=False, with_mask=True),
    # long side to 1024, aspect kept; the preprocessor pads to 1024x1024
    dict(type='Resize', scale=(1024, 1024), keep_ratio=True),
    dict(type='PackPSALMInputs')
]
# one sample per referent; protocol='random' draws one of its expressions at
# every fetch (the input schema of the paper model takes one sentence); the
# three train splits differ only in their folder and refs file
refcoco_train_dataset = dict(
    type='ConcatDataset',
    datasets=[
        dict(
            type='PSALMRefCocoDataset',
            data_root=refcoco_data_root,
            ann_file=f'{name}/instances.json',
            split_file=f'{name}/refs({split_by}).p',
            split='train',
            data_prefix=dict(img_path='train2014/'),
            protocol='random',
            pipeline=refcoco_train_pipeline)
        for name, split_by in (('refcoco', 'unc'), ('refcoco+', 'unc'),
                               ('refcocog', 'umd'))
    ])
