# DAVIS-2017 val semi-supervised video object segmentation (paper Tab. 13:
# J&F, J, F) with the official protocol (reference Sec. 5): frame by frame
# (batch size 1, videos in order, one process); the visual prompts of a
# frame are the previous frame's fused predictions pooled from the
# previous frame's image (`prompt_inputs` of the model), starting from the
# first-frame ground truth; one query per object (top-10 unique
# assignment). Objects that appear after frame 0 get their first GT mask
# as reference on that frame. VOSTestLoop runs it; VOSMetric scores J / F
# the DAVIS-toolkit way and writes the DAVIS-palette PNGs to
# `<output_dir>/<video>/<frame>.png` (the toolkit's results layout).
# Layout (DAVIS): data/DAVIS/{JPEGImages,Annotations}/480p/<video>/,
# data/DAVIS/ImageSets/2017/val.txt.
dataset_type = 'PSALMDAVISDataset'
data_root = 'data/DAVIS/'
backend_args = None
img_scale = (1024, 1024)

test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    # after Resize: GT at the original size, references at the image size
    dict(type='LoadDAVISAnnotations'),
    dict(
        type='PackPSALMInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor', 'prompt', 'frame_id', 'ori_video_length',
                   'object_ids', 'ref_frame_ids'))
]
test_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='ImageSets/2017/val.txt',
        data_prefix=dict(
            img_path='JPEGImages/480p', seg_map_path='Annotations/480p'),
        mask_format='palette',
        test_mode=True,
        pipeline=test_pipeline))
test_evaluator = dict(
    type='VOSMetric', output_dir='work_dirs/davis2017_val/Annotations')
test_cfg = dict(type='VOSTestLoop', topk=10, consistency_iou_thr=0.4)
