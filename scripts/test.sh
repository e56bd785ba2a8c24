#!/usr/bin/env bash
# The project's one test command, from a bare Debian machine with Python 3.11:
# installs uv if missing, syncs the locked dependencies, then lints, type-checks and tests.
set -euo pipefail
cd "$(dirname "$0")/.."

export UV_PYTHON_DOWNLOADS=never
# Keep compiled bytecode between processes: every test server and provider host imports the
# large cloud SDKs, and recompiling them each time costs more than the tests themselves.
unset PYTHONDONTWRITEBYTECODE
if python3 -m uv --version >/dev/null 2>&1; then
  uv() { python3 -m uv "$@"; }
elif ! command -v uv >/dev/null 2>&1; then
  echo "uv not found: installing it with pip" >&2
  python3 -m pip install --quiet "uv>=0.5"
  uv() { python3 -m uv "$@"; }
fi

scripts/system-packages.sh
# With bytecode: where PYTHONDONTWRITEBYTECODE is set, every process (synth, provider hosts,
# test servers) would otherwise recompile the cloud SDKs it imports.
uv sync --locked --quiet --compile-bytecode
uv run ruff check .
uv run ruff format --check --quiet .
uv run mypy
# The engine tests (tests/engine/) run the real Pulumi CLI, built from its Go modules once per
# machine (~3 min the first time, then cached): see scripts/pulumi-cli.sh.
engine=()
if command -v go >/dev/null 2>&1; then
  HYBRID_INFRA_PULUMI_BIN="$(scripts/pulumi-cli.sh)"
  export HYBRID_INFRA_PULUMI_BIN
else
  echo "test.sh: go not found, so the Pulumi CLI cannot be built: SKIPPING the engine tests" \
    "(tests/engine/). Install Go 1.26+ to run them." >&2
  engine=(-m "not engine")
fi
uv run pytest --durations=10 "${engine[@]}" "$@"
