#!/usr/bin/env bash
# The README's main command: set up the environment, then run the main job.
#
# For now the main job is a real small end-to-end run of PSALM: the TINY,
# randomly initialised PSALM (configs/_base_/models/psalm_tiny.py) is trained
# jointly on the four stage-2 tasks (panoptic, referring, interactive, vqa;
# configs/psalm_joint.py's data and sampler) on the real fixture data of
# tests/data (2 COCO val2017 images with their annotations, RefCOCO-format
# refs, COCO-Interactive prompts, 5 LLaVA records), then evaluated through
# tools/test.py on tiny versions of three in-domain benchmarks (COCO panoptic
# PQ / mask AP / mIoU, RefCOCO val cIoU / mIoU, COCO-Interactive point mIoU /
# cIoU) on the same 2 images. The numbers are plumbing numbers, not PSALM's.
#
#   bash tools/quickstart.sh
#   PSALM_VENV=/path/to/venv bash tools/quickstart.sh   # another environment
#   PSALM_SKIP_INSTALL=1 bash tools/quickstart.sh       # use it as it is
#
# Everything goes to work_dirs/quickstart/ (data/, the training log and
# checkpoint, test_*/ with the metrics).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
if [ "${PSALM_SKIP_INSTALL:-0}" != 1 ]; then bash tools/install.sh; fi
VENV="${PSALM_VENV:-$ROOT/.venv}"
# shellcheck disable=SC1091
if [ "$VENV" != none ]; then source "$VENV/bin/activate"; fi
# tiny tensors: one intra-op thread per process (measured on 2 cores: 4x
# faster than two threads competing)
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"

WORK_DIR=work_dirs/quickstart
DATA="$WORK_DIR/data"  # the data_root of the quickstart configs
CONFIG=configs/quickstart/psalm_tiny_1xb2-1000it_fixtures.py
TESTS=(coco-panoptic refcoco-val coco-interactive-point)
t0=$(date +%s)

echo "[quickstart] 1/3 laying out the fixture data of tests/data in $DATA/"
python tools/misc/prepare_fixture_data.py "$DATA"

echo "[quickstart] 2/3 training the tiny PSALM on panoptic + referring +" \
  "interactive + vqa batches: $CONFIG"
python tools/train.py "$CONFIG" --work-dir "$WORK_DIR"
CKPT="$(cat "$WORK_DIR/last_checkpoint")"
t1=$(date +%s)

echo "[quickstart] 3/3 evaluating $CKPT on the tiny benchmarks"
for name in "${TESTS[@]}"; do
  echo "[quickstart] --- $name"
  python tools/test.py "configs/quickstart/psalm_tiny_test_$name.py" "$CKPT" \
    --work-dir "$WORK_DIR/test_$name" 2>&1 | tee "$WORK_DIR/test_$name.log"
done
t2=$(date +%s)

python - "$WORK_DIR" "${TESTS[@]}" <<'EOF'
import glob
import json
import os
import os.path as osp
import re
import sys

work_dir, tests = sys.argv[1], sys.argv[2:]


def newest(pattern):
    paths = glob.glob(pattern)
    return max(paths, key=osp.getmtime) if paths else None


print('\n' + '=' * 78)
print('[quickstart] SUMMARY')
scalars = newest(osp.join(work_dir, '[0-9]*_[0-9]*', 'vis_data',
                          'scalars.json'))
if scalars:
    with open(scalars) as f:
        logs = [json.loads(line) for line in f if '"loss' in line]
    rows = [('all four tasks', 'loss'),
            ('vqa (LLaVA answers)', 'loss_lm'),
            ('panoptic + referring + interactive', 'loss_cls'),
            ('  (their shared mask losses)', 'loss_mask'),
            ('', 'loss_dice')]
    print('training loss, first -> last log (each the mean of up to the '
          'last 20 values):')
    for label, key in rows:
        vals = [(r['iter'], r[key]) for r in logs if key in r]
        if vals:
            (i0, v0), (i1, v1) = vals[0], vals[-1]
            print(f'  {label:36s} {key:10s} {v0:8.3f} (iter {i0:4d}) -> '
                  f'{v1:7.3f} (iter {i1})')
print('metrics (tools/test.py):')
for name in tests:
    with open(osp.join(work_dir, f'test_{name}.log')) as f:
        lines = [ln for ln in f if 'Iter(test)' in ln]
    metrics = re.findall(r'(\S+/\S+): (\S+)', lines[-1]) if lines else []
    print(f'  {name}:')
    print('    ' + '  '.join(f'{k}: {v}' for k, v in metrics))
print('where:')
print(f'  fixture data      {work_dir}/data/')
log = newest(osp.join(work_dir, '[0-9]*_[0-9]*', '[0-9]*_[0-9]*.log'))
print(f'  training log      {log}')
with open(osp.join(work_dir, 'last_checkpoint')) as f:
    print(f'  checkpoint        {f.read().strip()}')
for name in tests:
    js = newest(osp.join(work_dir, f'test_{name}', '[0-9]*_[0-9]*',
                         '[0-9]*_[0-9]*.json'))
    print(f'  metrics {name:24s} {js}')
iters = logs[-1]['iter'] if scalars and logs else '?'
print(
    'NOTE: these are plumbing numbers. A TINY, randomly initialised PSALM '
    '(1-block Swin, 2-layer\n64-wide Phi, 10 mask tokens) was trained for '
    f'{iters} iterations on 2 images and is evaluated on\nthe same 2 images '
    '(RefCOCO val asks for objects that no training sentence names, so it\n'
    'stays at or near 0). They show that data, training, checkpoint and '
    'evaluation run end to end;\nthey say nothing about the accuracy of '
    'PSALM.')
EOF
echo "[quickstart] done in $(( t2 - t0 )) s (data + training" \
  "$(( t1 - t0 )) s, evaluation $(( t2 - t1 )) s)"
