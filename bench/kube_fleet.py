"""The Kubernetes half of prod on local clusters, through the real engine (not a test).

    uv run python -m bench.kube_fleet

Needs the Pulumi CLI and the control plane (scripts/pulumi-cli.sh, scripts/control-plane.sh).
In one run it measures:

- the time to start three clusters (A, B, C: etcd, kube-apiserver, kube-controller-manager,
  kube-scheduler, kwok with three nodes each), until every node is Ready;
- `pulumi up` of prod's Prod fleet (the `local` stack: six Prods, routing, edge proxies) from
  empty, with the kubernetes provider awaiting every rollout;
- a no-op `up`;
- a routing-change `up` (`clusters.C.drained: true`), and the time from its start until every
  edge proxy Deployment has rolled to the new configuration (all its Pods Ready with the new
  config hash);
- the peak memory of the whole control plane: the sum of each process's peak RSS (VmHWM), an
  upper bound of what they held at once.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from devenv import local_stack  # noqa: E402
from devenv.kube import LocalCluster, LocalFleet, control_plane_bin  # noqa: E402
from tests.engine.conftest import Engine, engine_env  # noqa: E402

EDGE_NAMESPACE = "hybrid-infra-edge"


def pulumi_bin() -> Path:
    import subprocess

    built = subprocess.run(
        [str(ROOT / "scripts" / "pulumi-cli.sh")], check=True, capture_output=True, text=True
    )
    return Path(built.stdout.strip())


def peak_rss_mib(fleet: LocalFleet) -> float:
    pids = [fleet.etcd.popen.pid] if fleet.etcd and fleet.etcd.popen else []
    for cluster in fleet.clusters.values():
        pids += [p.popen.pid for p in cluster.processes() if p.popen is not None]
    total_kib = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                total_kib += int(line.split()[1])
    return total_kib / 1024


def mounted(pod_spec: dict[str, Any]) -> set[str]:
    return {v["configMap"]["name"] for v in pod_spec.get("volumes", []) if "configMap" in v}


def proxies_rolled(cluster: LocalCluster) -> bool:
    """Every edge proxy Pod is Ready and mounts the configuration its Deployment names (the
    ConfigMap is named by its content, so a new table is a new name)."""
    deployments = cluster.request("GET", f"/apis/apps/v1/namespaces/{EDGE_NAMESPACE}/deployments")
    pods = cluster.request("GET", f"/api/v1/namespaces/{EDGE_NAMESPACE}/pods")["items"]
    for deployment in deployments["items"]:
        wanted = mounted(deployment["spec"]["template"]["spec"])
        mine = [
            p
            for p in pods
            if p["metadata"].get("labels", {}).get("app.kubernetes.io/name") == "edge-proxy"
        ]
        if not mine or any(
            mounted(p["spec"]) != wanted
            or not any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in p.get("status", {}).get("conditions", [])
            )
            for p in mine
        ):
            return False
    return True


def timed(label: str, figures: dict[str, Any], action: Any) -> Any:
    started = time.perf_counter()
    result = action()
    figures[label] = time.perf_counter() - started
    print(f"{label}: {figures[label]:.1f} s", flush=True)
    return result


def main() -> int:
    figures: dict[str, Any] = {}
    cli = pulumi_bin()
    cp = control_plane_bin()
    with tempfile.TemporaryDirectory(prefix="kube-fleet-") as tmp_name:
        tmp = Path(tmp_name)
        fleet = LocalFleet(tmp / "kube", cp)
        try:
            clusters = timed("start 3 clusters", figures, lambda: fleet.start(("A", "B", "C")))
            work = tmp / "program"
            local_stack.write_project(work)
            (tmp / "state").mkdir()
            env = engine_env(cli, tmp / "home", tmp / "state")
            env["PATH"] = f"{cp}{os.pathsep}{env['PATH']}"
            stack_file = local_stack.init_stack(
                [str(cli / "pulumi")],
                work,
                "local",
                {n: c.kubeconfig for n, c in clusters.items()},
                env,
            )
            engine = Engine(cli, work, env)
            timed("up from empty (6 Prods, 3 proxies)", figures, engine.up)
            timed("no-op up", figures, engine.up)
            local_stack.edit_config(stack_file, "clusters.C.drained", True)
            started = time.perf_counter()
            timed("routing-change up (C drained)", figures, engine.up)
            while not all(proxies_rolled(c) for c in clusters.values()):
                time.sleep(0.2)
            figures["until every proxy serves the new table"] = time.perf_counter() - started
            print(
                f"until every proxy serves the new table: "
                f"{figures['until every proxy serves the new table']:.1f} s"
            )
            figures["peak control-plane RSS (MiB)"] = peak_rss_mib(fleet)
            print(f"peak control-plane RSS: {figures['peak control-plane RSS (MiB)']:.0f} MiB")
        finally:
            fleet.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
