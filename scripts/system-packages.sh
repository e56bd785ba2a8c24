#!/usr/bin/env bash
# Debian packages the tests and tools need. Installs only what is missing (needs root then).
set -euo pipefail
needed=()
command -v dot >/dev/null 2>&1 || needed+=(graphviz)
command -v prometheus-alertmanager >/dev/null 2>&1 || needed+=(prometheus-alertmanager)
# The edge proxy's configuration is checked and run by the real HAProxy (tests/live/test_edge_failover.py).
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || needed+=(haproxy)
# The Prods' alert rules are checked and evaluated by the real promtool (tests/live/test_prod_alert_rules.py).
command -v promtool >/dev/null 2>&1 || needed+=(prometheus)
# The local Kubernetes clusters (devenv/kube.py) keep their state in a real etcd.
command -v etcd >/dev/null 2>&1 || needed+=(etcd-server)
if [ ${#needed[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: ${needed[*]} (run: sudo apt-get install -y ${needed[*]})" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${needed[@]}" >/dev/null
fi
