#!/usr/bin/env bash
# Installs the package with its test dependencies into virtual environments and runs the whole
# test suite in two: the newest supported SDKs, and the oldest supported ones. A third, lean one
# holds the oldest supported openai-agents (it needs a newer openai than the oldest one we
# support, so it cannot share .venv-oldest) and runs only its tests.
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
make_env .venv-newest -c constraints/newest.txt openai-agents
.venv-newest/bin/python -m pytest "$@"

echo "== oldest supported SDKs (.venv-oldest)"
make_env .venv-oldest -c constraints/oldest.txt
.venv-oldest/bin/python -m pytest "$@"

echo "== oldest supported openai-agents (.venv-agents-oldest): tests/openai_agents only"
make_env .venv-agents-oldest -c constraints/agents-oldest.txt openai-agents
.venv-agents-oldest/bin/python -m pytest "$@" tests/openai_agents
