#!/usr/bin/env bash
# Create the virtual environments for benchmarks/openai_overhead.py.
#
#   bash benchmarks/setup_envs.sh                 # all four, under /work/bench-venvs
#   bash benchmarks/setup_envs.sh openai_v2       # just one
#   BENCH_VENVS=/tmp/venvs bash benchmarks/setup_envs.sh
#
# One venv per instrumentation, because the instrumentors patch the same openai methods
# globally. Every venv gets the same pinned core (openai, httpx2, pydantic, OpenTelemetry SDK,
# wrapt) so the uninstrumented baseline and every configuration run on identical code; the
# benchmark prints and records the versions it found in each venv and warns when they differ.
# Versions are the ones known to work together (shared/reference/perf-anchors.md, 2026-11-26),
# except the OpenTelemetry core: this package needs opentelemetry-instrumentation-threading,
# whose newest release (0.66b1) pins opentelemetry-instrumentation / semantic-conventions
# 0.66b1, which pins opentelemetry-sdk 1.45.1. So every venv runs SDK 1.45.1 (not 1.45.2).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
ROOT="${BENCH_VENVS:-/work/bench-venvs}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

CORE=(
  "openai==3.57.0"
  "httpx2==2.16.2"
  "pydantic==2.14.4"
  "opentelemetry-api==1.45.1"
  "opentelemetry-sdk==1.45.1"
  "opentelemetry-exporter-otlp-proto-http==1.45.1"
  "opentelemetry-instrumentation==0.66b1"
  "wrapt==2.5.2"
  "rich>=13"
)

# name -> extra requirements (besides CORE and this package, installed editable everywhere)
declare -A EXTRA=(
  # this package; the uninstrumented baseline `none` runs here too
  [llm_audit]="py-spy==0.4.3"
  # official: util-genai 1.3b0 moved a module that 2.4b0 imports; 2.4b0 also imports httpx,
  # which openai 3.x no longer pulls (opentelemetry-instrument would hide the ImportError).
  [openai_v2]="opentelemetry-instrumentation-openai-v2==2.4b0 opentelemetry-util-genai==1.1b0 httpx"
  # OpenLLMetry
  [openllmetry]="opentelemetry-instrumentation-openai==0.62.4 opentelemetry-semantic-conventions-ai==0.5.1"
  # Arize OpenInference
  [openinference]="openinference-instrumentation-openai==0.1.66 openinference-instrumentation==0.1.72 openinference-semantic-conventions==0.1.42"
)

# Anthropic (benchmarks/anthropic_instructions.py): anthropic 2.14.0 on the same core, in the
# llm_audit venv (our instrumentor and the uninstrumented baseline) and in one venv per peer:
#   bash benchmarks/setup_envs.sh llm_audit openllmetry_anthropic openinference_anthropic
ANTHROPIC_PIN="anthropic==2.14.0"
EXTRA[llm_audit]+=" $ANTHROPIC_PIN"
EXTRA[openllmetry_anthropic]="$ANTHROPIC_PIN opentelemetry-instrumentation-anthropic==0.62.4 opentelemetry-semantic-conventions-ai==0.5.1"
EXTRA[openinference_anthropic]="$ANTHROPIC_PIN openinference-instrumentation-anthropic==3.1.0 openinference-instrumentation==0.1.72 openinference-semantic-conventions==0.1.42"

# AWS Bedrock Runtime through botocore (benchmarks/bedrock_instructions.py) and Google Gen AI
# (benchmarks/google_genai_instructions.py): boto3/botocore 1.44.8 and google-genai 3.6.1, CI's
# newest pins (constraints/newest.txt), in the llm_audit venv and in one venv per peer:
#   bash benchmarks/setup_envs.sh llm_audit otel_botocore openllmetry_bedrock openinference_bedrock
#   bash benchmarks/setup_envs.sh llm_audit otel_google_genai openllmetry_google_genai openinference_google_genai
# The official botocore instrumentation is pinned to 0.66b1 like the rest of the contrib core
# (0.66b2 pins opentelemetry-instrumentation==0.66b2). OpenLLMetry's "google-generativeai"
# package instruments google-genai (google.genai.models.Models.generate_content[_stream]).
BEDROCK_PIN="boto3==1.44.8 botocore==1.44.8"
GOOGLE_PIN="google-genai==3.6.1"
EXTRA[llm_audit]+=" $BEDROCK_PIN $GOOGLE_PIN"
EXTRA[otel_botocore]="$BEDROCK_PIN opentelemetry-instrumentation-botocore==0.66b1"
EXTRA[openllmetry_bedrock]="$BEDROCK_PIN opentelemetry-instrumentation-bedrock==0.62.4 opentelemetry-semantic-conventions-ai==0.5.1"
EXTRA[openinference_bedrock]="$BEDROCK_PIN openinference-instrumentation-bedrock==0.1.61 openinference-instrumentation==0.1.72 openinference-semantic-conventions==0.1.42"
EXTRA[otel_google_genai]="$GOOGLE_PIN opentelemetry-instrumentation-google-genai==1.3b0"
EXTRA[openllmetry_google_genai]="$GOOGLE_PIN opentelemetry-instrumentation-google-generativeai==0.62.4 opentelemetry-semantic-conventions-ai==0.5.1"
EXTRA[openinference_google_genai]="$GOOGLE_PIN openinference-instrumentation-google-genai==1.4.14 openinference-instrumentation==0.1.72 openinference-semantic-conventions==0.1.42"

names=("$@")
[ ${#names[@]} -eq 0 ] && names=(llm_audit openai_v2 openllmetry openinference)

# This machine's pip config lists local indexes that may not exist; drop that noise only.
quiet_pip() { "$@" 2> >(grep -v "^WARNING: Location 'file://" >&2); }

mkdir -p "$ROOT"
for name in "${names[@]}"; do
  if [ -z "${EXTRA[$name]+x}" ]; then
    echo "unknown environment '$name' (known: ${!EXTRA[*]})" >&2
    exit 2
  fi
  venv="$ROOT/$name"
  echo "=== $venv"
  [ -x "$venv/bin/python" ] || "$PYTHON" -m venv "$venv"
  quiet_pip "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  # shellcheck disable=SC2086  # EXTRA is a space-separated list on purpose
  quiet_pip "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "${CORE[@]}" ${EXTRA[$name]} -e "$REPO"
  # Pins again, last: a peer's own requirements must not have moved the shared core.
  quiet_pip "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${CORE[@]}"
  "$venv/bin/python" -m pip check || echo "WARNING: pip check reported conflicts in $venv (see above)"
  "$venv/bin/python" - <<'PY'
from importlib.metadata import version, PackageNotFoundError
for dist in ("openai", "httpx2", "httpx", "pydantic", "pydantic-core", "opentelemetry-sdk",
             "opentelemetry-instrumentation", "wrapt", "otel-llm-audit",
             "opentelemetry-instrumentation-openai-v2", "opentelemetry-util-genai",
             "opentelemetry-instrumentation-openai", "openinference-instrumentation-openai"):
    try:
        print(f"  {dist:42s} {version(dist)}")
    except PackageNotFoundError:
        pass
PY
done
echo "done: python benchmarks/openai_overhead.py"
