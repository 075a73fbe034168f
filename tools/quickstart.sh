#!/usr/bin/env bash
# The README's main command: set up the environment, then run the main job.
#
# For now the main job is a real small end-to-end run of what exists: a tiny
# Mask2Former with PSALM's mixed-precision-safe deformable pixel decoder is
# trained on the two real COCO val2017 images in tests/data and evaluated with
# COCO mask AP through tools/test.py.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
bash tools/install.sh
VENV="${PSALM_VENV:-$ROOT/.venv}"
if [ "$VENV" != none ]; then source "$VENV/bin/activate"; fi

CONFIG=configs/smoke/mask2former_swin-tiny_1xb2-60it_coco-sample.py
WORK_DIR=work_dirs/quickstart
python tools/train.py "$CONFIG" --work-dir "$WORK_DIR"
python tools/test.py "$CONFIG" "$WORK_DIR/iter_60.pth" --work-dir "$WORK_DIR"
echo "[quickstart] done: logs and checkpoint in $WORK_DIR"
