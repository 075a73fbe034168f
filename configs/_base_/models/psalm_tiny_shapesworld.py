# The tiny PSALM of the ShapesWorld quickstart (configs/shapesworld/):
# configs/_base_/models/psalm_tiny.py (real Phi-1.5 tokenizer, 2-layer Phi,
# small Swin, 256x256) with what a randomly initialised model needs to learn
# ShapesWorld on a CPU in minutes:
# * the Swin is TRAINED: the paper freezes a Mask2Former-pretrained Swin-B;
#   a frozen random Swin gives features nothing can be learnt from
#   (measured: things PQ 0 and RefCOCO cIoU 12.6 after 2000 iterations);
# * psalm_tiny's Swin (embed 16, 1 block per stage): a Swin twice as wide and
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
    projector=dict(stride=1),
    condition_encoder=dict(sentence_pooling='mean'),
    input_schema=dict(num_mask_tokens=num_mask_tokens),
    mask_generator=dict(num_queries=num_mask_tokens))
