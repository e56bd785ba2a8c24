#!/usr/bin/env bash
# The main job on this machine, without any cloud: the real program's Kubernetes half on three
# local clusters (A, B, C: prod's Prods, routing and edge proxies), and a member sync against a
# local Octavia API and moto, each through the real Pulumi engine.
#
#   scripts/local.sh up       build what is missing, start the servers, `pulumi up` both stacks
#   scripts/local.sh down     stop everything `up` started (the state stays in .local/)
#   scripts/local.sh status   what runs, and where
#
# Everything lives in ${HYBRID_INFRA_LOCAL:-.local/} (git-ignored): logs, kubeconfigs, the
# file backend's state. Nothing is exported into your shell: the fake AWS and OpenStack
# settings exist only inside this script.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
work="${HYBRID_INFRA_LOCAL:-$repo/.local}"
pids="$work/pids"

die() { echo "local: $*" >&2; exit 1; }
say() { echo "local: $*" >&2; }

tail_log() {  # $1: log file; the last lines, indented, for an error
  [ -f "$1" ] && tail -n 15 "$1" | sed 's/^/    /' >&2
  return 0
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_for_line() {  # $1: pid, $2: log, $3: pattern, $4: what, $5: timeout s
  local waited=0
  until grep -q "$3" "$2" 2>/dev/null; do
    kill -0 "$1" 2>/dev/null || { say "$4 exited before it was ready (log: $2):"; tail_log "$2"; exit 1; }
    [ "$waited" -ge "$5" ] && { say "$4 not ready after $5 s (log: $2):"; tail_log "$2"; exit 1; }
    sleep 1; waited=$((waited + 1))
  done
}

start() {  # $1: name, rest: command; records the pid for `down`
  local name="$1"; shift
  "$@" >"$work/$name.log" 2>&1 &
  echo "$! $name" >>"$pids"
  echo "$!"
}

down() {
  [ -f "$pids" ] || { say "nothing running (no $pids)"; return 0; }
  while read -r pid name; do
    kill "$pid" 2>/dev/null || continue
    # Each stops what it started (the clusters' processes too) before it exits: wait for it.
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then say "$name (pid $pid) is still stopping"; else say "stopped $name (pid $pid)"; fi
  done <"$pids"
  rm -f "$pids"
}

status() {
  [ -f "$pids" ] || { say "nothing running"; return 0; }
  while read -r pid name; do
    if kill -0 "$pid" 2>/dev/null; then state=running; else state=stopped; fi
    echo "$name  pid $pid  $state  log $work/$name.log"
  done <"$pids"
}

up() {
  command -v go >/dev/null 2>&1 || die "go not found: install Go 1.26+ (it builds the Pulumi CLI and the local control plane)"
  [ -f "$pids" ] && die "already running (scripts/local.sh status); stop it first: scripts/local.sh down"
  mkdir -p "$work"
  : >"$pids"
  trap 'say "failed; stopping what was started"; down' ERR

  python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet "uv>=0.5"
  python3 -m uv sync --locked --quiet --compile-bytecode
  scripts/system-packages.sh
  say "building the Pulumi CLI and the control plane if missing (cold: ~20 min on 2 cores, then cached)"
  local cli cp
  cli="$(scripts/pulumi-cli.sh)"
  cp="$(scripts/control-plane.sh)"
  local python="$repo/.venv/bin/python"
  export PATH="$cli:$cp:$repo/.venv/bin:$PATH" PYTHONPATH="$repo"
  export PULUMI_BACKEND_URL="file://$work/state" PULUMI_CONFIG_PASSPHRASE=local
  export PULUMI_HOME="$work/pulumi-home" PULUMI_SKIP_UPDATE_CHECK=true
  export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true PULUMI_PYTHON_CMD="$python"
  mkdir -p "$work/state"

  say "starting three local clusters (A, B, C)"
  local kube
  kube="$(start kube "$python" -m devenv.kube --workdir "$work/kube" --clusters A,B,C)"
  wait_for_line "$kube" "$work/kube.log" "KUBE_READY C" "the local clusters" 120

  local octavia_port moto_port octavia moto
  octavia_port="$(free_port)"; moto_port="$(free_port)"
  say "starting the Octavia API on :$octavia_port and moto on :$moto_port"
  octavia="$(start octavia "$python" -m devenv.octavia --workdir "$work/octavia" --port "$octavia_port")"
  moto="$(start moto "$repo/.venv/bin/moto_server" -p "$moto_port")"
  wait_for_line "$octavia" "$work/octavia.log" OCTAVIA_READY "the Octavia API" 120
  wait_for_line "$moto" "$work/moto.log" "Running on" "moto" 60

  # The Kubernetes half: the real program, `local` stack.
  local project="$work/program"
  if [ ! -f "$project/Pulumi.local.yaml" ]; then
    "$python" - "$project" "$work/kube" <<'EOF'
import os, sys
from pathlib import Path
from devenv import local_stack
project, kube = Path(sys.argv[1]), Path(sys.argv[2])
local_stack.write_project(project)
configs = {n: (kube / n / "kubeconfig").read_text() for n in ("A", "B", "C")}
local_stack.init_stack(["pulumi"], project, "local", configs, os.environ)
EOF
  fi
  say "pulumi up --stack local (the Kubernetes half of prod, on A, B and C)"
  (cd "$project" && pulumi up --yes --stack local --non-interactive)

  # The member sync: tests/engine/program, against the local Octavia and moto.
  (
    export OS_AUTH_TYPE=none OS_LOAD_BALANCER_ENDPOINT_OVERRIDE="http://127.0.0.1:$octavia_port/"
    export AWS_ENDPOINT_URL="http://127.0.0.1:$moto_port" AWS_ACCESS_KEY_ID=testing \
      AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=eu-west-1
    local sync="$work/sync"
    if [ ! -d "$sync" ]; then
      cp -r "$repo/tests/engine/program" "$sync"
      (cd "$sync" && pulumi stack init local --non-interactive >/dev/null)
    fi
    # Seeded into a variable first: a failed seed stops here, not in the next preview.
    local world
    world="$("$python" -m devenv.seed)" || die "seeding Octavia and moto failed (see above)"
    (cd "$sync" && pulumi config set engine-test:world "$world" --stack local \
      && say "pulumi up --stack local of the member sync" \
      && pulumi up --yes --stack local --non-interactive)
  )
  trap - ERR

  say "up. The outputs of the Kubernetes half:"
  (cd "$project" && pulumi stack output --stack local)
  cat >&2 <<EOF

Kubeconfigs:   $work/kube/{A,B,C}/kubeconfig   (e.g. KUBECONFIG=$work/kube/A/kubeconfig kubectl get pods -A)
Change:        edit $project/Pulumi.local.yaml (e.g. clusters.C.drained: true), then
               (cd $project && PATH="$cli:$cp:\$PATH" PULUMI_BACKEND_URL=file://$work/state \\
                 PULUMI_CONFIG_PASSPHRASE=local PULUMI_HOME=$work/pulumi-home \\
                 PULUMI_PYTHON_CMD=$python PYTHONPATH=$repo pulumi up --stack local)
Stop:          scripts/local.sh down      (then rm -rf $work to forget the state)
EOF
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: scripts/local.sh up|down|status" >&2; exit 2 ;;
esac
