# Short name of PSALM stage 1 (vision-language alignment, paper Tab. 15):
#   tools/dist_train.sh configs/psalm_align.py 16
_base_ = ['./psalm_swin-b_phi-1.5_16xb8-4650it_cc3m-align.py']
