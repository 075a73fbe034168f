# PSALM with the structure of the released checkpoint (EnmingZhang/PSALM),
# see docs/architecture.md "paper vs official": ResNetSwin projector,
# vocabulary + [PAD] + [SEG] (50297 rows), the official prompt templates with
# [SEG] after every class name and after the referring sentence, mean-pooled
# sentence condition, sampled-point visual prompts, biased pixel-decoder
# convs. The weights come from the converted released checkpoint
# (tools/model_converters/psalm_official_to_mmpsalm.py) through `load_from`,
# so the LLM is built from its config, without local Phi weights.
# GRES: the official evaluation keeps the 0.6 threshold but answers the top-1
# mask when nothing passes it (it never predicts "no target").
_base_ = ['./psalm_swin-b_phi-1.5.py']

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
