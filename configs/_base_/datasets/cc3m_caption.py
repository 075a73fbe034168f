# Stage-1 vision-language alignment data (paper Sec. 4.1 and Tab. 15):
# CC3M-595K image-caption pairs in LLaVA's `chat.json` format, task
# 'caption' (next-token loss on the caption).
# Layout: data/cc3m/{chat.json, images/GCC_train_*.jpg} (LLaVA-CC3M-Pretrain-
# 595K: chat.json and images.zip unpacked into images/). LLaVA-Pretrain-558K
# (blip_laion_cc_sbu_558k.json + images/) has the same format:
# --cfg-options train_dataloader.dataset.data_root=data/llava_pretrain/
# train_dataloader.dataset.ann_file=blip_laion_cc_sbu_558k.json
# See "Prepare datasets" in the README.
data_root = 'data/cc3m/'

train_pipeline = [
    dict(type='LoadImageFromFile'),
    # long side to 1024, aspect kept; the preprocessor pads to 1024x1024
    dict(type='Resize', scale=(1024, 1024), keep_ratio=True),
    dict(type='PackPSALMInputs')
]
train_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type='LLaVACaptionDataset',
        data_root=data_root,
        ann_file='chat.json',
        data_prefix=dict(img_path='images/'),
        pipeline=train_pipeline))
