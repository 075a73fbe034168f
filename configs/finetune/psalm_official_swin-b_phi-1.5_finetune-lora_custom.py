# The LoRA recipe (psalm_swin-b_phi-1.5_finetune-lora_custom.py) for the
# RELEASED PSALM weights (EnmingZhang/PSALM, converted by
# tools/model_converters/psalm_official_to_mmpsalm.py, README "Released
# weights"): the model of configs/_base_/models/psalm_official.py (ResNetSwin
# projector, [PAD]/[SEG] vocabulary, official prompts and poolings) with the
# LoRA adapters. Memory: as the LoRA recipe (the official projector has 13 M
# more parameters, trained).
# The block below restates psalm_official.py's switches (a config cannot
# inherit two models); tests/test_finetune checks they stay equal.
# Evaluate the merged checkpoint with configs/psalm_official/ or the custom
# test configs plus the same model switches.
_base_ = ['./psalm_swin-b_phi-1.5_finetune-lora_custom.py']

load_from = 'checkpoints/psalm_official.pth'

model = dict(
    projector=dict(
        _delete_=True,
        type='ResNetSwinProjector',
        in_channels=1024,  # Swin-B res5
        hidden_channels=2048,
        out_channels=2048,  # Phi-1.5 width
        stride=2),
    language_model=dict(
        pretrained=None,
        config={{_base_.phi_1_5_config}},
        added_tokens=('[PAD]', '[SEG]')),
    input_schema=dict(
        prompt_style='official',
        category_terminator='[SEG]',
        sentence_terminator='[SEG]'),
    condition_encoder=dict(
        sentence_pooling='mean',
        visual_pooling='sampled_points'),
    mask_generator=dict(pixel_decoder=dict(conv_bias=True)),
    test_cfg=dict(gres_fallback_top1=True))
