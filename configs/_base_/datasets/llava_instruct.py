# LLaVA-1.5 instruction data (mix665k, image records) for PSALM's
# vision-language instruction task ('vqa': next-token loss on the answers;
# paper Sec. 4.1), one of the four tasks of the joint training
# (`psalm_joint.py`).
# Layout (LLaVA's `playground/data`): data/llava/{
# llava_v1_5_mix665k_onlyMM_filtered.json, coco/train2017, gqa/images,
# ocr_vqa/images, textvqa/train_images, vg/VG_100K, vg/VG_100K_2}; the json's
# image paths (e.g. `coco/train2017/000000033471.jpg`) are relative to
# data/llava/ (`coco` can be a link to ../coco). The filtered json is the
# official PSALM's (image records whose image loads); the raw
# llava_v1_5_mix665k.json also works (text-only records are skipped and
# counted). See "Prepare datasets" in the README.
# The variables carry the task's name because `psalm_joint.py` inherits all
# four task files and text configs refuse a key defined in two bases. Paths
# are relative to `data_root` inside the dataset dict.
llava_data_root = 'data/llava/'

llava_train_pipeline = [
    dict(type='LoadImageFromFile'),
    # long side to 1024, aspect kept; the preprocessor pads to 1024x1024
    dict(type='Resize', scale=(1024, 1024), keep_ratio=True),
    dict(type='PackPSALMInputs')
]
llava_train_dataset = dict(
    type='LLaVAInstructDataset',
    data_root=llava_data_root,
    ann_file='llava_v1_5_mix665k_onlyMM_filtered.json',
    data_prefix=dict(img_path=''),
    pipeline=llava_train_pipeline)
