# Short name of PSALM stage 2 (joint training, paper Tab. 16):
#   tools/dist_train.sh configs/psalm_joint.py 16
_base_ = [
    './psalm_swin-b_phi-1.5_16xb4-56k_coco-panoptic-refcoco-interactive-llava.py'  # noqa: E501
]
