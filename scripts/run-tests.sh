#!/usr/bin/env bash
# Installs the package with its test dependencies into two virtual environments and runs the
# whole test suite in each: the newest supported SDKs, and the oldest supported ones.
# Needs only python3 (3.10+) and access to PyPI. Usage: bash scripts/run-tests.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"

make_env() {  # make_env DIR [extra pip requirements...]
  local dir="$1"; shift
  if [ ! -x "$dir/bin/python" ]; then
    "$PYTHON" -m venv "$dir"
  fi
  "$dir/bin/python" -m pip install --quiet --upgrade pip
  "$dir/bin/python" -m pip install --quiet -e '.[dev]' "$@"
}

echo "== newest supported SDKs (.venv-newest)"
make_env .venv-newest -c constraints/newest.txt
.venv-newest/bin/python -m pytest "$@"

echo "== oldest supported SDKs (.venv-oldest)"
make_env .venv-oldest -c constraints/oldest.txt
.venv-oldest/bin/python -m pytest "$@"
