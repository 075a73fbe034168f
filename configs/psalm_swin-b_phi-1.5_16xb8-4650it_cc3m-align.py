# PSALM stage 1: vision-language alignment (paper Sec. 4.1, appendix 7,
# Tab. 15). Only the projector is trained, on CC3M-595K captions (next-token
# loss), with Swin-B and Phi-1.5 frozen; 16 GPUs x 8 images = batch 128,
# 4650 iterations. The checkpoint it writes (work_dirs/psalm_align/
# iter_4650.pth when run as configs/psalm_align.py) initialises stage 2
# (configs/psalm_joint.py).
# Weights (README "Prepare datasets"): Phi-1.5 in checkpoints/phi-1_5 (model
# base); Swin-B and the mask generator from mmdet's Mask2Former Swin-B
# (IN-21k, 384) COCO-panoptic checkpoint, as in the paper. The mask
# generator is not trained here; it is initialised now so that the stage-1
# checkpoint carries it into stage 2.
_base_ = [
    './_base_/models/psalm_swin-b_phi-1.5.py',
    './_base_/datasets/cc3m_caption.py',
    './_base_/schedules/adamw-cosine_4650it_stage1.py',
    './_base_/default_runtime.py'
]

mask2former_checkpoint = 'checkpoints/mask2former_swin-b-p4-w12-384-in21k_8xb2-lsj-50e_coco-panoptic_20220329_230021-05ec7315.pth'  # noqa: E501

model = dict(
    backbone=dict(
        # the checkpoint has mmdet's Swin names (`backbone.stages...`)
        convert_weights=False,
        init_cfg=dict(
            _delete_=True,  # the base has init_cfg=None
            type='Pretrained',
            checkpoint=mask2former_checkpoint)),
    mask_generator=dict(
        # all `panoptic_head.*` weights but cls_embed / query_feat
        init_cfg=dict(
            type='Pretrained',
            checkpoint=mask2former_checkpoint,
            prefix='panoptic_head.')),
    # everything but the projector is frozen (and kept in eval mode)
    frozen_modules=('backbone', 'language_model', 'condition_encoder',
                    'mask_generator', 'mask_tokens'))
