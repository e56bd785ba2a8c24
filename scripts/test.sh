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
# The engine tests (tests/engine/) run the real Pulumi CLI and, on local clusters, the real
# kube-apiserver and kubernetes provider, all built from their Go modules once per machine and
# cached (scripts/pulumi-cli.sh: ~10 min cold; scripts/control-plane.sh: ~35 min cold, on
# 2 cores). Both build while the other tests run; the tests that need them (markers `engine`
# and `kube`) run once they are built.
if ! command -v go >/dev/null 2>&1; then
  echo "test.sh: go not found, so the Pulumi CLI and the local control plane cannot be built:" \
    "SKIPPING the engine tests (tests/engine/). Install Go 1.26+ to run them." >&2
  exec uv run pytest --durations=10 -m "not engine and not kube" "$@"
fi
builds="$(mktemp -d)"
scripts/pulumi-cli.sh >"$builds/cli" 2>"$builds/cli.log" &
cli_pid=$!
scripts/control-plane.sh >"$builds/cp" 2>"$builds/cp.log" &
cp_pid=$!
# kube-score (tests/live/test_hardened_workloads.py), ~3 min cold. A test that needs it before it is
# built runs the same script, which waits for this build (flock) and finds its result.
scripts/kube-score.sh >"$builds/ks" 2>"$builds/ks.log" &
ks_pid=$!
built() {  # $1: pid, $2: name; prints its log, fails the run if the build failed
  if ! wait "$1"; then
    cat "$builds/$2.log" >&2
    echo "test.sh: the $2 build failed (log above)" >&2
    exit 1
  fi
  cat "$builds/$2.log" >&2
}
if [ "$#" -gt 0 ]; then
  # A chosen test: build first, then one pytest run with the arguments as given.
  built "$cli_pid" cli
  built "$cp_pid" cp
  built "$ks_pid" ks
  HYBRID_INFRA_PULUMI_BIN="$(cat "$builds/cli")" HYBRID_INFRA_CONTROL_PLANE_BIN="$(cat "$builds/cp")" \
    HYBRID_INFRA_KUBE_SCORE="$(cat "$builds/ks")" exec uv run pytest --durations=10 "$@"
fi
status=0
uv run pytest --durations=10 -m "not engine and not kube" || status=$?
built "$ks_pid" ks
built "$cli_pid" cli
built "$cp_pid" cp
export HYBRID_INFRA_PULUMI_BIN HYBRID_INFRA_CONTROL_PLANE_BIN
HYBRID_INFRA_PULUMI_BIN="$(cat "$builds/cli")"
HYBRID_INFRA_CONTROL_PLANE_BIN="$(cat "$builds/cp")"
uv run pytest --durations=10 -m "engine or kube" || status=$?
exit "$status"
