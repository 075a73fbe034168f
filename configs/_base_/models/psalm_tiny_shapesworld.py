# The tiny PSALM of the ShapesWorld quickstart (configs/shapesworld/):
# configs/_base_/models/psalm_tiny.py (real Phi-1.5 tokenizer, 2-layer Phi,
# small Swin, 256x256) with what a randomly initialised model needs to learn
# ShapesWorld on a CPU in minutes (each measured):
# * a PRE-TRAINED Swin, as in the paper (a Mask2Former-pretrained, frozen
#   Swin-B). PSALM's matching loss alone does not teach a random Swin the
#   six shapes: after 2400 panoptic-only iterations things PQ is 2.8, and
#   the six shape-name embeddings have collapsed onto one direction (cosine
#   1.00), so no gradient tells the shapes apart any more. The training
#   config therefore loads the Swin of
#   configs/shapesworld/swin-tiny-convstem_objcls_1xb4-1k_shapesworld.py
#   (ObjectClassifier on the training split's segments, 77 s) and freezes it
#   (the model here leaves it trainable for the test configs and fixtures);
# * a convolutional stem as its patch embedding (ConvStemSwinTransformer:
#   3x3 convs 16-32-32-32 at strides 2-2-1-1, then mmdet's Swin stages): a
#   linear probe on mask-pooled stride-8 features, trained 1000 steps with
#   the Swin from random weights, tells the 6 shapes apart at 25% with
#   mmdet's linear 4x4 patch embedding (chance 16.7%), at 36% with a 2-conv
#   stem and at 83-89% with this one;
# * psalm_tiny's Swin (embed 16, 1 block per stage): trained from random
#   weights with mmdet's patch embedding, a Swin twice as wide and
#   deep learnt slower in the same 3000 iterations (held-out PQ 27.5 vs 39.3,
#   interactive point mIoU 26.3 vs 48.9);
# * 20 mask tokens: a scene has up to 8 objects and 3 stuff regions;
# * image tokens at stride 32 (projector stride 1: 8x8 tokens at 256x256;
#   the paper's stride 2 gives 16x16 tokens at 1024x1024, but 4x4 here, each
#   wider than most shapes);
# * the sentence condition is the mean of the sentence's LLM outputs (the
#   official 'mean'): the paper's [REF] output must first learn to gather
#   the sentence through attention, which a random 2-layer LLM did not do
#   in 400 iterations (identical logits for every sentence).
_base_ = ['./psalm_tiny.py']

num_mask_tokens = 20
model = dict(
    frozen_modules=(),
    backbone=dict(
        type='ConvStemSwinTransformer',
        stem_channels=(16, 32, 32, 32),
        stem_strides=(2, 2, 1, 1)),
    projector=dict(stride=1),
    condition_encoder=dict(sentence_pooling='mean'),
    input_schema=dict(num_mask_tokens=num_mask_tokens),
    mask_generator=dict(num_queries=num_mask_tokens))
