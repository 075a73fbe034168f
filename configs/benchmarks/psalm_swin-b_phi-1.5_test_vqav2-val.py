# PSALM (Swin-B + Phi-1.5) visual question answering on VQAv2 val (exact
# match, VQA accuracy; see the base config for the annotation format).
_base_ = [
    '../_base_/models/psalm_swin-b_phi-1.5.py',
    '../_base_/datasets/eval/vqa.py', '../_base_/default_runtime.py'
]
