#!/usr/bin/env bash
# The README's main command: set up the environment, then run the main job.
#
# The main job shows PSALM doing its whole job on a CPU: a TINY, randomly
# initialised PSALM (configs/_base_/models/psalm_tiny_shapesworld.py: real
# Phi-1.5 tokenizer, small Swin and Phi) gets its Swin pre-trained on the
# training split's segments (the stand-in for the paper's pre-trained,
# frozen Swin-B), and is then trained jointly on the four stage-2
# tasks (panoptic, referring, interactive, vqa; configs/psalm_joint.py's data
# and task sampler) on ShapesWorld, a seeded synthetic world of shapes
# written in the real datasets' formats, then every task is evaluated on
# ShapesWorld's held-out split through tools/test.py (panoptic PQ / mask AP /
# mIoU, RefCOCO-style cIoU, zero-shot gRefCOCO-style, interactive point /
# scribble / box / mask, zero-shot DAVIS-style video, VQA), next to trivial
# baselines scored by the same configs and metrics, and
# work_dirs/quickstart/report.md is written with the table, a loss curve and
# pictures of each task made with the demo's inferencer.
#
#   bash tools/quickstart.sh
#   PSALM_VENV=/path/to/venv bash tools/quickstart.sh   # another environment
#   PSALM_SKIP_INSTALL=1 bash tools/quickstart.sh       # use it as it is
#   PSALM_QUICKSTART_PROCS=1 bash tools/quickstart.sh   # training processes
#
# Everything goes to work_dirs/quickstart/ (swin_pretrain/, the training log
# and checkpoint, test_*/ and baseline_*/ with the metrics, vis/, report.md);
# the data to
# data/shapesworld/.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
if [ "${PSALM_SKIP_INSTALL:-0}" != 1 ]; then bash tools/install.sh; fi
VENV="${PSALM_VENV:-$ROOT/.venv}"
# shellcheck disable=SC1091
if [ "$VENV" != none ]; then source "$VENV/bin/activate"; fi
# tiny tensors: one intra-op thread per process (measured on 2 cores: 4x
# faster than two threads competing); one training process per core, at
# most 2 (the config's 2 x batch 2; nproc --all: nproc obeys OMP_NUM_THREADS)
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
NPROC="${PSALM_QUICKSTART_PROCS:-$(( $(nproc --all) >= 2 ? 2 : 1 ))}"

WORK_DIR=work_dirs/quickstart
DATA=data/shapesworld  # the data_root of configs/shapesworld/
PRETRAIN_CONFIG=configs/shapesworld/swin-tiny-convstem_objcls_1xb4-1k_shapesworld.py
CONFIG=configs/shapesworld/psalm_tiny_2xb2-5k_shapesworld.py
BENCHMARKS=(panoptic refcoco grefcoco interactive-point interactive-scribble
            interactive-box interactive-mask davis vqa)
t0=$(date +%s)

echo "[quickstart] 1/6 generating ShapesWorld in $DATA/"
python tools/dataset_converters/generate_shapesworld.py "$DATA" \
  --num-train 400 --num-val 60 --num-videos 8 --seed 0 --overwrite
t1=$(date +%s)

echo "[quickstart] 2/6 pre-training the tiny Swin on the training split's" \
  "segments: $PRETRAIN_CONFIG"
mkdir -p "$WORK_DIR"
if ! OMP_NUM_THREADS="$NPROC" python tools/train.py "$PRETRAIN_CONFIG" \
    --work-dir "$WORK_DIR/swin_pretrain" > "$WORK_DIR/swin_pretrain.log" 2>&1
then
  tail -n 30 "$WORK_DIR/swin_pretrain.log"
  echo "[quickstart] Swin pre-training failed: $WORK_DIR/swin_pretrain.log" >&2
  exit 1
fi
grep "Iter(train)" "$WORK_DIR/swin_pretrain.log" | tail -n 1 | cut -c1-160

# (the training config loads the Swin from $WORK_DIR/swin_pretrain/)
echo "[quickstart] 3/6 training the tiny PSALM (frozen pre-trained Swin)" \
  "jointly on panoptic, referring, interactive and vqa batches" \
  "($NPROC process(es)): $CONFIG"
if [ "$NPROC" -gt 1 ]; then
  # the config's total batch (2 x 2) is kept with any process count
  PORT="${PORT:-29533}" bash tools/dist_train.sh "$CONFIG" "$NPROC" \
    --work-dir "$WORK_DIR" \
    --cfg-options train_dataloader.batch_size=$(( 4 / NPROC ))
else
  python tools/train.py "$CONFIG" --work-dir "$WORK_DIR" \
    --cfg-options train_dataloader.batch_size=4
fi
CKPT="$(cat "$WORK_DIR/last_checkpoint")"
t2=$(date +%s)

echo "[quickstart] 4/6 evaluating $CKPT on the held-out split"
for name in "${BENCHMARKS[@]}"; do
  echo "[quickstart] --- $name"
  python tools/test.py "configs/shapesworld/psalm_tiny_test_shapesworld-$name.py" \
    "$CKPT" --work-dir "$WORK_DIR/test_$name" 2>&1 \
    | tee "$WORK_DIR/test_$name.log" | grep -E "Iter\(test\).*/[A-Za-z]|Error" || true
done
t3=$(date +%s)

echo "[quickstart] 5/6 the trivial baselines, same configs and metrics"
for config in configs/shapesworld/baselines/trivial_*.py; do
  name="$(basename "$config" .py)"          # trivial_<rule>_shapesworld-<b>
  rule="${name#trivial_}"; rule="${rule%%_shapesworld-*}"
  bench="${name##*_shapesworld-}"
  python tools/test.py "$config" --work-dir "$WORK_DIR/baseline_${rule}_$bench" \
    > "$WORK_DIR/baseline_${rule}_$bench.log" 2>&1
  grep -E "Iter\(test\).*/[A-Za-z]" "$WORK_DIR/baseline_${rule}_$bench.log" \
    | sed "s/^/[quickstart] baseline $rule $bench: /" | cut -c1-200 || true
done

echo "[quickstart] 6/6 pictures of every task and the report"
python tools/analysis_tools/shapesworld_report.py "$WORK_DIR" \
  --config "$CONFIG" --checkpoint "$CKPT" --data-root "$DATA" \
  --data-seconds $(( t1 - t0 )) --train-seconds $(( t2 - t1 )) \
  --eval-seconds $(( t3 - t2 ))
t4=$(date +%s)
echo "[quickstart] done in $(( t4 - t0 )) s (data $(( t1 - t0 )) s," \
  "training $(( t2 - t1 )) s, evaluation $(( t3 - t2 )) s, baselines and" \
  "report $(( t4 - t3 )) s); open $WORK_DIR/report.md"
