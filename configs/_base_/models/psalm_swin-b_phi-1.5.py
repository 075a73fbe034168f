# PSALM at paper size (Sec. 4.2): Swin-B (frozen) + 3x3-conv/linear projector
# + Phi-1.5 + 100 mask tokens + Mask2Former mask generator (9 decoder layers).
# The paper's design choices are the defaults; configs/psalm_official/ switches
# to the released model's structure.
phi_path = 'checkpoints/phi-1_5'                # local HF Phi-1.5 folder
tokenizer_path = 'resources/tokenizers/phi-1_5'  # GPT-2 BPE + 38 whitespace tokens
swin_channels = [128, 256, 512, 1024]
llm_dims = 2048
embed_dims = 256
num_mask_tokens = 100
image_size = 1024
# Phi-1.5's architecture (HF PhiConfig), for building without local weights
# (e.g. shape and parameter checks on the meta device):
# language_model=dict(pretrained=None, config=phi_1_5_config)
phi_1_5_config = dict(
    vocab_size=51200,
    hidden_size=llm_dims,
    intermediate_size=8192,
    num_hidden_layers=24,
    num_attention_heads=32,
    hidden_act='gelu_new',
    max_position_embeddings=2048,
    layer_norm_eps=1e-5,
    rope_theta=10000.0,
    partial_rotary_factor=0.5,
    qk_layernorm=False,
    resid_pdrop=0.0,
    embd_pdrop=0.0,
    attention_dropout=0.0,
    tie_word_embeddings=False)

model = dict(
    type='PSALM',
    data_preprocessor=dict(
        type='PSALMDataPreprocessor',
        fixed_size=(image_size, image_size),
        img_pad_value=128,
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True),
    backbone=dict(
        type='SwinTransformer',
        pretrain_img_size=384,
        embed_dims=128,
        depths=[2, 2, 18, 2],
        num_heads=[4, 8, 16, 32],
        window_size=12,
        mlp_ratio=4,
        qkv_bias=True,
        qk_scale=None,
        drop_rate=0.0,
        attn_drop_rate=0.0,
        drop_path_rate=0.3,  # inactive: the frozen encoder runs in eval mode
        patch_norm=True,
        out_indices=(0, 1, 2, 3),
        with_cp=False,
        convert_weights=True,
        init_cfg=None),
    projector=dict(
        type='ConvLinearProjector',
        in_channels=swin_channels[-1],
        out_channels=llm_dims,
        stride=2),
    language_model=dict(
        type='PhiLanguageModel',
        tokenizer=tokenizer_path,
        pretrained=phi_path,
        added_tokens=('[PAD]', '[SEG]', '[REF]'),
        lm_head_bias=False,
        attn_implementation='sdpa',
        gradient_checkpointing=True,
        max_length=2048),
    input_schema=dict(
        type='InputSchema',
        num_mask_tokens=num_mask_tokens,
        prompt_style='paper',
        category_terminator=None,
        sentence_terminator='[REF]',
        mask_token_position='suffix',
        max_length=2048,
        append_background=True,
        merge_sentences=False),
    condition_encoder=dict(
        type='ConditionEncoder',
        embed_dims=embed_dims,
        sentence_pooling='ref_token',
        visual_pooling='mask_avg'),
    mask_generator=dict(
        type='MaskGenerator',
        in_channels=swin_channels,
        feat_channels=embed_dims,
        out_channels=embed_dims,
        num_queries=num_mask_tokens,
        num_transformer_feat_level=3,
        pixel_decoder=dict(
            type='PSALMPixelDecoder',
            num_outs=3,
            conv_bias=False,
            norm_cfg=dict(type='GN', num_groups=32),
            act_cfg=dict(type='ReLU'),
            encoder=dict(
                num_layers=6,
                layer_cfg=dict(
                    self_attn_cfg=dict(
                        embed_dims=embed_dims, num_heads=8, num_levels=3,
                        num_points=4, im2col_step=64, dropout=0.0,
                        batch_first=True, norm_cfg=None, init_cfg=None),
                    ffn_cfg=dict(
                        embed_dims=embed_dims, feedforward_channels=1024,
                        num_fcs=2, ffn_drop=0.0,
                        act_cfg=dict(type='ReLU', inplace=True))),
                init_cfg=None),
            positional_encoding=dict(num_feats=embed_dims // 2, normalize=True),
            init_cfg=None),
        positional_encoding=dict(num_feats=embed_dims // 2, normalize=True),
        transformer_decoder=dict(
            return_intermediate=True,
            num_layers=9,
            layer_cfg=dict(
                self_attn_cfg=dict(
                    embed_dims=embed_dims, num_heads=8, dropout=0.0,
                    batch_first=True),
                cross_attn_cfg=dict(
                    embed_dims=embed_dims, num_heads=8, dropout=0.0,
                    batch_first=True),
                ffn_cfg=dict(
                    embed_dims=embed_dims, feedforward_channels=2048,
                    num_fcs=2, ffn_drop=0.0,
                    act_cfg=dict(type='ReLU', inplace=True))),
            init_cfg=None)),
    criterion=dict(
        type='PSALMCriterion',
        num_points=12544,
        oversample_ratio=3.0,
        importance_sample_ratio=0.75,
        loss_cls_weight=2.0,
        background_weight=0.1),
    frozen_modules=('backbone', ),  # paper: only the vision encoder is frozen
    shuffle_categories=True,
    lm_loss_weight=1.0,
    test_cfg=dict(
        object_mask_thr=0.8, iou_thr=0.8, max_per_image=100,
        gres_threshold=0.6, gres_fallback_top1=False, max_new_tokens=64))
