# PSALM stage 2: joint training of the final model (paper Sec. 4.2,
# appendix 7, Tab. 16): COCO panoptic, RefCOCO/+/g, COCO-Interactive and
# LLaVA-1.5, 25% of the iterations each (one task per batch); Swin-B frozen,
# everything else trained; AdamW lr 4e-5 without weight decay, 56k
# iterations, 1680 warm-up iterations, cosine decay; 16 GPUs x 4 images =
# batch 64. (The official code: lr 6e-5, warm-up ratio 0.03, tasks in
# round robin, see reference Sec. 6.2; `batch_sampler.mode='round_robin'`
# switches the task order.)
_base_ = [
    './_base_/models/psalm_swin-b_phi-1.5.py',
    './_base_/datasets/psalm_joint.py',
    './_base_/schedules/adamw-cosine_56k.py', './_base_/default_runtime.py'
]

# Initialisation: the stage-1 checkpoint (configs/psalm_align.py), i.e.
# Swin-B and the mask generator of Mask2Former, Phi-1.5 and the aligned
# projector (README "Training"). Another path: --cfg-options load_from=...
load_from = 'work_dirs/psalm_align/iter_4650.pth'

# each task uses other parts (no mask generator for 'vqa', no visual-prompt
# branch for 'panoptic', ...)
find_unused_parameters = True

# SamplerResumeHook: --resume continues the task schedule and the index
# streams of MultiTaskBatchSampler exactly, without loading the skipped
# batches. Checkpoints every 5000 iterations (default_runtime).
custom_hooks = [
    dict(type='SamplerResumeHook'),
    dict(type='SafeCheckpointHook')
]
