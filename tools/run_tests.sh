#!/usr/bin/env bash
# The README's test command: set up the environment, then run the test suite.
#   bash tools/run_tests.sh [pytest args]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
bash tools/install.sh --tests
VENV="${PSALM_VENV:-$ROOT/.venv}"
if [ "$VENV" != none ]; then source "$VENV/bin/activate"; fi
exec python -m pytest tests "$@"
