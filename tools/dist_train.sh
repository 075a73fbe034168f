#!/usr/bin/env bash
# Distributed training: tools/dist_train.sh CONFIG GPUS_PER_NODE [train.py args]
# Multi-node: NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 PORT=29500 tools/dist_train.sh CONFIG 8
# Without CUDA the processes use the gloo backend (CPU DDP).
exec "$(dirname "$0")/dist_launch.sh" "$2" train.py "$1" "${@:3}"
