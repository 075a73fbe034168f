# PSALM (Swin-B + Phi-1.5) zero-shot semi-supervised video object
# segmentation on DAVIS-2017 val (paper Tab. 13: J&F, J, F); the
# DAVIS-palette PNGs go to work_dirs/davis2017_val/Annotations/<video>/.
_base_ = [
    '../_base_/models/psalm_swin-b_phi-1.5.py',
    '../_base_/datasets/eval/davis2017.py', '../_base_/default_runtime.py'
]

