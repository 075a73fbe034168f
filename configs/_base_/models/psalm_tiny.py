# A tiny, randomly initialised PSALM for CPU tests and the ShapesWorld
# quickstart: the real Phi-1.5 tokenizer, a 2-layer Phi built from a config,
# a 1-block-per-stage Swin, 32-wide mask generator, 256x256 inputs.
_base_ = ['./psalm_swin-b_phi-1.5.py']

swin_channels = [16, 32, 64, 128]
llm_dims = 64
embed_dims = 32
num_mask_tokens = 10
image_size = 256

model = dict(
    data_preprocessor=dict(fixed_size=(image_size, image_size)),
    backbone=dict(
        pretrain_img_size=224,
        embed_dims=16,
        depths=[1, 1, 1, 1],
        num_heads=[1, 2, 4, 8],
        window_size=4,
        mlp_ratio=2,
        drop_path_rate=0.0,
        convert_weights=False),
    projector=dict(in_channels=swin_channels[-1], out_channels=llm_dims),
    language_model=dict(
        pretrained=None,
        config=dict(
            vocab_size=51200,
            hidden_size=llm_dims,
            intermediate_size=4 * llm_dims,
            num_hidden_layers=2,
            num_attention_heads=4,
            partial_rotary_factor=0.5,
            max_position_embeddings=2048),
        gradient_checkpointing=False),
    input_schema=dict(num_mask_tokens=num_mask_tokens),
    condition_encoder=dict(embed_dims=embed_dims),
    mask_generator=dict(
        in_channels=swin_channels,
        feat_channels=embed_dims,
        out_channels=embed_dims,
        num_queries=num_mask_tokens,
        pixel_decoder=dict(
            norm_cfg=dict(type='GN', num_groups=8),
            encoder=dict(
                num_layers=1,
                layer_cfg=dict(
                    self_attn_cfg=dict(embed_dims=embed_dims, num_heads=4,
                                       num_points=2),
                    ffn_cfg=dict(embed_dims=embed_dims,
                                 feedforward_channels=64))),
            positional_encoding=dict(num_feats=embed_dims // 2)),
        positional_encoding=dict(num_feats=embed_dims // 2),
        transformer_decoder=dict(
            num_layers=3,
            layer_cfg=dict(
                self_attn_cfg=dict(embed_dims=embed_dims, num_heads=4),
                cross_attn_cfg=dict(embed_dims=embed_dims, num_heads=4),
                ffn_cfg=dict(embed_dims=embed_dims, feedforward_channels=64)))),
    criterion=dict(num_points=1024))
