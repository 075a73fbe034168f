#!/usr/bin/env bash
# Idempotent environment setup for PSALM, used by both README commands.
#
#   bash tools/install.sh            # runtime (+ editable install of this repo)
#   bash tools/install.sh --tests    # ... plus the test requirements
#   bash tools/install.sh --demo     # ... plus the web demo's (requirements/demo.txt;
#                                    #     PSALM_DEMO=1 does the same)
#
# Creates (or reuses) the virtualenv $PSALM_VENV (default: .venv in the repo);
# set PSALM_VENV=none to install into the current Python environment instead
# (e.g. a conda env that already has a CUDA build of torch: it is kept).
# mmcv 2.1.0 has no wheels on PyPI: pip takes a matching wheel from
# PIP_FIND_LINKS when there is one, otherwise compiles mmcv's ops from the sdist
# (about 30 min on 2 CPU cores; with CUDA when nvcc and a GPU are present).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
WITH_TESTS=0
WITH_DEMO="${PSALM_DEMO:-0}"
for arg in "$@"; do
  case "$arg" in
    --tests) WITH_TESTS=1 ;;
    --demo) WITH_DEMO=1 ;;
    *) echo "unknown option: $arg" >&2; exit 2 ;;
  esac
done

VENV="${PSALM_VENV:-$ROOT/.venv}"
if [ "$VENV" != none ]; then
  if [ ! -x "$VENV/bin/python" ]; then
    echo "[install] creating virtualenv $VENV"
    "${PYTHON:-python3}" -m venv "$VENV"
  fi
  # shellcheck disable=SC1091
  source "$VENV/bin/activate"
fi
PY=python
pipi() { "$PY" -m pip install --disable-pip-version-check "$@"; }
t0=$(date +%s)

# 1. torch: keep an existing build (e.g. CUDA); otherwise the pinned one.
if "$PY" -c "import torch" 2>/dev/null; then
  echo "[install] keeping torch $("$PY" -c 'import torch; print(torch.__version__)')"
else
  pipi "torch==${PSALM_TORCH_VERSION:-2.13.0}"
fi

# 2. build tools (mmcv's setup.py needs pkg_resources: setuptools<82)
pipi "setuptools<82" wheel ninja

# 3. mmengine and mmcv's requirements, without opencv-python (cv2 comes from
#    opencv-python-headless); mmengine and mmcv themselves go in with --no-deps
pipi -r requirements/mm_deps.txt "opencv-python-headless>=4.8,<5"
pipi --no-deps "mmengine==0.10.7"

# 4. mmcv with compiled ops
if "$PY" -c "import mmcv, mmcv._ext; assert mmcv.__version__ == '2.1.0'" 2>/dev/null; then
  echo "[install] mmcv 2.1.0 with compiled ops already installed"
else
  export MMCV_WITH_OPS=1
  export MAX_JOBS="${MAX_JOBS:-$(nproc)}"
  if command -v nvcc >/dev/null 2>&1 && "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
    export FORCE_CUDA=1
    echo "[install] nvcc and a GPU found: mmcv's ops are built with CUDA"
  else
    export FORCE_CUDA=0
  fi
  echo "[install] installing mmcv 2.1.0. Without a prebuilt wheel on PIP_FIND_LINKS"
  echo "[install] this COMPILES ~77 C++ units (about 30 min on 2 cores; progress below)."
  # -v shows the build; keep only ninja's [n/N] progress lines and errors
  pipi -v --no-deps --no-build-isolation "mmcv==2.1.0" 2>&1 | awk '
    match($0, /\[[0-9]+\/[0-9]+\]/) {
      step = substr($0, RSTART, RLENGTH); src = ""
      if (match($0, /[^ \/]+\.(cpp|cu)( |$)/)) src = substr($0, RSTART, RLENGTH)
      printf "[install] mmcv build %s %s\n", step, src; fflush(); next }
    /[Ee]rror|Successfully installed|Processing .*mmcv.*\.whl/ { print "[install] " $0; fflush() }'
  "$PY" -c "import mmcv._ext" 2>/dev/null || { echo "[install] mmcv was installed without its compiled ops" >&2; exit 1; }
  # a source build carries ~80 MB of debug info
  so=$("$PY" -c "import mmcv, glob, os; print(' '.join(glob.glob(os.path.join(os.path.dirname(mmcv.__file__), '_ext*.so'))))")
  [ -n "$so" ] && command -v strip >/dev/null && strip --strip-debug $so || true
fi

# 5. mmdet, mmseg and the runtime requirements; then this repo, editable
pipi "mmdet==3.3.0" "mmsegmentation==1.2.2" -r requirements/runtime.txt
if [ "$WITH_TESTS" = 1 ]; then pipi -r requirements/tests.txt; fi
if [ "$WITH_DEMO" = 1 ]; then pipi -r requirements/demo.txt; fi
if "$PY" -m pip show -q opencv-python >/dev/null 2>&1; then
  # left by an older environment: two packages would own cv2
  echo "[install] removing opencv-python (cv2 comes from opencv-python-headless)"
  "$PY" -m pip uninstall -y -q opencv-python
  pipi --force-reinstall --no-deps "opencv-python-headless>=4.8,<5"
fi
pipi --no-deps --no-build-isolation -e .

"$PY" -c "import mmcv.ops, mmdet, mmseg, projects.psalm; print('[install] OK: mmcv', mmcv.__version__, '| mmdet', mmdet.__version__, '| mmseg', mmseg.__version__, '| psalm', projects.psalm.__version__)"
echo "[install] done in $(( $(date +%s) - t0 )) s (python: $(command -v $PY))"
