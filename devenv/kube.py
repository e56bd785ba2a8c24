"""Real Kubernetes clusters on 127.0.0.1, in seconds, for tests, benchmarks and `scripts/local.sh`.

Each cluster is a real kube-apiserver, kube-controller-manager (Deployments → ReplicaSets →
Pods, PDB status from the disruption controller, namespaces, garbage collection) and
kube-scheduler (node selectors, taints, topology spread), built by
`scripts/control-plane.sh`, over one shared etcd (Debian's `etcd-server`; each cluster keeps its
objects under its own `--etcd-prefix`). kwok plays the kubelet: a few fake nodes that become
Ready and keep their leases, and Pods that are scheduled there become Running and Ready. So a
Deployment really rolls out, and the kubernetes provider's await logic runs for real.

What is not real: no container ever runs (a Pod is Ready because kwok says so; its probes are
never executed), and there is no cloud load-balancer controller: `LoadBalancerStandIn` gives
each `type: LoadBalancer` Service an ingress address on 127.0.0.1, as a cloud's controller
would give a real one.

Run it::

    uv run python -m devenv.kube --workdir DIR --clusters A,B,C

It prints one line per cluster, ``KUBE_READY <name> <kubeconfig path>``, once all serve, and
stops everything it started on SIGTERM/SIGINT. From Python, use :class:`LocalFleet`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from devenv import processes
from devenv.pki import ThrowawayCa, key_pem, private_key, write_secret
from devenv.processes import free_port

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 60.0
SERVICE_CIDR = "10.96.0.0/16"
NODE_ANNOTATION = "kwok.x-k8s.io/node"


class ClusterStartError(RuntimeError):
    """A control-plane process did not come up; the message names it and its log file."""


def control_plane_bin() -> Path:
    """The directory `scripts/control-plane.sh` built, or an error saying how to build it."""
    given = os.environ.get("HYBRID_INFRA_CONTROL_PLANE_BIN")
    if given:
        return Path(given)
    found = subprocess.run(
        [str(ROOT / "scripts" / "control-plane.sh"), "--check"], capture_output=True, text=True
    )
    if found.returncode != 0:
        raise ClusterStartError(
            "the local control plane is not built: run scripts/control-plane.sh "
            "(~35 min the first time on 2 cores, cached after that)"
        )
    return Path(found.stdout.strip())


# --- credentials --------------------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    """A throwaway CA, the API servers' serving certificate, service-account keys and a token."""

    ca: Path
    cert: Path
    key: Path
    service_account_key: Path
    token: str
    token_file: Path


def write_credentials(workdir: Path) -> Credentials:
    ca = ThrowawayCa(workdir / "ca.crt", "hybrid-infra local CA")
    server = ca.issue(
        workdir / "apiserver",
        "kube-apiserver",
        ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"],
        ["127.0.0.1", "10.96.0.1"],
    )
    token = secrets.token_hex(16)
    return Credentials(
        ca=ca.cert,
        cert=server.cert,
        key=server.key,
        service_account_key=write_secret(workdir / "sa.key", key_pem(private_key())),
        token=token,
        token_file=write_secret(
            workdir / "tokens.csv", f'{token},admin,admin,"system:masters"\n'.encode()
        ),
    )


def kubeconfig(name: str, server: str, ca: Path, token: str) -> str:
    """A single-context kubeconfig with the CA inline, so it can travel as a stack secret."""
    import base64

    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": name,
                "cluster": {
                    "server": server,
                    "certificate-authority-data": base64.b64encode(ca.read_bytes()).decode(),
                },
            }
        ],
        "users": [{"name": f"{name}-admin", "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": f"{name}-admin"}}],
        "current-context": name,
    }
    return yaml.safe_dump(document, sort_keys=False)


# --- processes ----------------------------------------------------------------------------


@dataclass
class Process:
    """One started program, its log, and how to stop it (by its process id)."""

    name: str
    args: list[str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                self.args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen is not None:
            processes.stop(self.popen, timeout)

    def failed(self, what: str) -> ClusterStartError:
        tail = self.log.read_text(errors="replace").splitlines()[-15:] if self.log.exists() else []
        return ClusterStartError(
            f"{self.name} {what} (log: {self.log}):\n" + "\n".join(f"  {line}" for line in tail)
        )


def wait_until(ready: Any, process: Process, what: str, timeout: float = START_TIMEOUT) -> None:
    """Poll `ready()` until it is true; fail fast, with the log's tail, if `process` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive():
            raise process.failed(f"exited before it was {what}")
        with contextlib.suppress(OSError, urllib.error.URLError):
            if ready():
                return
        time.sleep(0.1)
    raise process.failed(f"was not {what} after {timeout:.0f} s")


# --- one cluster --------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeSpec:
    """A fake node: its name and the labels (and taints) a real node pool would give it."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: Sequence[Mapping[str, str]] = ()
    cpu: str = "8"
    memory: str = "32Gi"
    ephemeral_storage: str = "100Gi"
    """A real kubelet reports its disk; without it, a Pod that requests any stays Pending."""
    pods: str = "110"
    kubelet: bool = True
    """False: registered, but no kubelet (kwok) reports for it, so it never turns Ready."""


def default_nodes(cluster: str, count: int = 3) -> list[NodeSpec]:
    return [
        NodeSpec(
            f"{cluster.lower()}-node-{i}",
            {"topology.kubernetes.io/zone": f"zone-{i % 2}", "hybrid-infra/pool": "default"},
        )
        for i in range(count)
    ]


@dataclass
class LocalCluster:
    name: str
    workdir: Path
    port: int
    kubeconfig_path: Path
    apiserver: Process
    controller_manager: Process
    scheduler: Process
    kwok: Process
    token: str
    ca: Path

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def kubeconfig(self) -> str:
        return self.kubeconfig_path.read_text()

    def processes(self) -> list[Process]:
        return [self.kwok, self.scheduler, self.controller_manager, self.apiserver]

    def request(self, method: str, path: str, body: bytes | None = None) -> Any:
        """One call to this cluster's API with its admin token: JSON in, JSON out."""
        import json

        request = urllib.request.Request(
            self.server + path,
            data=body,
            method=method,
            headers={
                "Authorization": f"Bearer {self.token}",
                "Content-Type": "application/merge-patch+json"
                if method == "PATCH"
                else "application/json",
            },
        )
        context = ssl.create_default_context(cafile=str(self.ca))
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return json.loads(response.read() or b"null")

    def ready(self) -> bool:
        try:
            request = urllib.request.Request(
                f"{self.server}/readyz", headers={"Authorization": f"Bearer {self.token}"}
            )
            context = ssl.create_default_context(cafile=str(self.ca))
            with urllib.request.urlopen(request, context=context, timeout=2) as response:
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def add_nodes(self, nodes: Sequence[NodeSpec]) -> None:
        import json

        for node in nodes:
            resources = {
                "cpu": node.cpu,
                "memory": node.memory,
                "ephemeral-storage": node.ephemeral_storage,
                "pods": node.pods,
            }
            body = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": node.name,
                    "annotations": {NODE_ANNOTATION: "fake"} if node.kubelet else {},
                    "labels": {
                        "kubernetes.io/hostname": node.name,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                        "type": "kwok",
                        **node.labels,
                    },
                },
                "spec": {"taints": [dict(t) for t in node.taints]},
                "status": {"allocatable": resources, "capacity": resources},
            }
            self.request("POST", "/api/v1/nodes", json.dumps(body).encode())

    def install_crds(self, documents: Sequence[Path]) -> None:
        """Install CustomResourceDefinitions and wait until the API serves each of them."""
        import json

        names = []
        for document in documents:
            crd = yaml.safe_load(document.read_text())
            self.request(
                "POST",
                "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                json.dumps(crd).encode(),
            )
            names.append(crd["metadata"]["name"])
        for name in names:
            wait_until(
                lambda n=name: any(
                    c["type"] == "Established" and c["status"] == "True"
                    for c in (
                        self.request(
                            "GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{n}"
                        ).get("status")
                        or {}
                    ).get("conditions")
                    or []
                ),
                self.apiserver,
                f"serving {name}",
            )

    def nodes_ready(self) -> bool:
        nodes = self.request("GET", "/api/v1/nodes")["items"]
        return bool(nodes) and all(
            any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in n["status"].get("conditions", [])
            )
            for n in nodes
        )

    def stop_apiserver(self) -> None:
        """The cluster 'dies': its API stops answering (kwok and the controllers lose it too)."""
        for process in self.processes():
            process.stop()

    def stop(self) -> None:
        for process in self.processes():
            process.stop()


# --- the fleet ----------------------------------------------------------------------------


class LocalFleet:
    """N local clusters over one etcd; `stop()` ends every process it started, by pid."""

    def __init__(self, workdir: Path, bin_dir: Path | None = None) -> None:
        self.workdir = workdir
        self.bin = bin_dir or control_plane_bin()
        self.clusters: dict[str, LocalCluster] = {}
        self.etcd: Process | None = None
        self.etcd_url = ""
        self._standins: list[LoadBalancerStandIn] = []

    def __enter__(self) -> LocalFleet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(
        self,
        names: Sequence[str],
        nodes: Mapping[str, Sequence[NodeSpec]] | None = None,
        monitoring: Sequence[str] | None = None,
    ) -> dict[str, LocalCluster]:
        """Start every cluster at once; return when each serves and its nodes are Ready.

        The clusters in `monitoring` (all of them unless given) get the Prometheus operator's
        CRDs, PrometheusRule and PodMonitor, as a cluster that runs the operator has them; no
        operator runs.
        """
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._start_etcd()
            credentials = write_credentials(self.workdir)
            started = [self._start_cluster(name, credentials) for name in names]
            for cluster in started:
                wait_until(cluster.ready, cluster.apiserver, "ready (/readyz)")
                self.clusters[cluster.name] = cluster
            for cluster in started:
                cluster.controller_manager.start()
                cluster.scheduler.start()
                cluster.kwok.start()
                cluster.add_nodes((nodes or {}).get(cluster.name) or default_nodes(cluster.name))
                if monitoring is None or cluster.name in monitoring:
                    cluster.install_crds(sorted((self.bin / "crds").glob("*.yaml")))
            for cluster in started:
                wait_until(cluster.nodes_ready, cluster.kwok, "Ready with its nodes")
                wait_until(
                    lambda c=cluster: c.request(
                        "GET", "/api/v1/namespaces/default/serviceaccounts/default"
                    ),
                    cluster.controller_manager,
                    "creating service accounts",
                )
                standin = LoadBalancerStandIn(cluster)
                standin.start()
                self._standins.append(standin)
        except BaseException:
            self.stop()
            raise
        return dict(self.clusters)

    def stop(self) -> None:
        """Signal every process at once, then wait for each: an API server takes seconds to
        shut down, and one after another would add them up."""
        for standin in self._standins:
            standin.stop()
        processes = [p for c in self.clusters.values() for p in c.processes()]
        processes += [self.etcd] if self.etcd is not None else []
        for process in processes:
            if process.alive() and process.popen is not None:
                process.popen.terminate()
        for process in processes:
            process.stop()

    def _start_etcd(self) -> None:
        client, peer = free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{client}"
        self.etcd = Process(
            "etcd",
            [
                "etcd",
                "--name=local",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=local=http://127.0.0.1:{peer}",
                "--unsafe-no-fsync",
                "--quota-backend-bytes=4294967296",
            ],
            self.workdir / "etcd.log",
        )
        self.etcd.start()
        wait_until(
            lambda: urllib.request.urlopen(f"{self.etcd_url}/health", timeout=1).status == 200,
            self.etcd,
            "healthy",
        )

    def _start_cluster(self, name: str, creds: Credentials) -> LocalCluster:
        workdir = self.workdir / name
        workdir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        server = f"https://127.0.0.1:{port}"
        config = workdir / "kubeconfig"
        config.write_text(kubeconfig(name, server, creds.ca, creds.token))
        config.chmod(0o600)
        apiserver = Process(
            f"{name}/kube-apiserver",
            [
                str(self.bin / "kube-apiserver"),
                f"--etcd-servers={self.etcd_url}",
                f"--etcd-prefix=/clusters/{name}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={port}",
                f"--tls-cert-file={creds.cert}",
                f"--tls-private-key-file={creds.key}",
                f"--client-ca-file={creds.ca}",
                f"--token-auth-file={creds.token_file}",
                "--authorization-mode=RBAC",
                f"--service-account-key-file={creds.service_account_key}",
                f"--service-account-signing-key-file={creds.service_account_key}",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--enable-priority-and-fairness=false",
                # Debian's etcd 3.4.23 has no progress notifications (RequestWatchProgress), so
                # the server ends every watch-list stream (client-go 1.35+: kwok) with an error,
                # and kwok then sees Pods only when it re-lists, up to ~30 s late. Off, clients
                # list and watch: a Deployment is Ready in ~3 s instead of 40-100 s.
                "--feature-gates=WatchList=false",
                "--endpoint-reconciler-type=none",
                "--profiling=false",
            ],
            workdir / "kube-apiserver.log",
        )
        controller_manager = Process(
            f"{name}/kube-controller-manager",
            [
                str(self.bin / "kube-controller-manager"),
                f"--kubeconfig={config}",
                "--leader-elect=false",
                "--secure-port=0",
                f"--service-account-private-key-file={creds.service_account_key}",
                f"--root-ca-file={creds.ca}",
                "--use-service-account-credentials=false",
                "--controllers=*,-nodeipam,-csrsigning,-bootstrapsigner,-tokencleaner",
                "--concurrent-deployment-syncs=10",
                "--node-monitor-grace-period=40s",
            ],
            workdir / "kube-controller-manager.log",
        )
        scheduler = Process(
            f"{name}/kube-scheduler",
            [
                str(self.bin / "kube-scheduler"),
                f"--kubeconfig={config}",
                f"--authentication-kubeconfig={config}",
                f"--authorization-kubeconfig={config}",
                "--leader-elect=false",
                "--secure-port=0",
            ],
            workdir / "kube-scheduler.log",
        )
        kwok = Process(
            f"{name}/kwok",
            [
                str(self.bin / "kwok"),
                f"--kubeconfig={config}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={NODE_ANNOTATION}=fake",
                "--cidr=10.244.0.1/16",
                "--node-ip=127.0.0.1",
                "--node-lease-duration-seconds=40",
                *(f"--config={stage}" for stage in sorted((self.bin / "kwok-stages").glob("*"))),
            ],
            workdir / "kwok.log",
        )
        cluster = LocalCluster(
            name,
            workdir,
            port,
            config,
            apiserver,
            controller_manager,
            scheduler,
            kwok,
            creds.token,
            creds.ca,
        )
        apiserver.start()
        return cluster


class LoadBalancerStandIn(threading.Thread):
    """Gives each `type: LoadBalancer` Service an ingress address, as a cloud's controller does.

    Without it the kubernetes provider waits for an address that never comes and fails the
    Service after its timeout. The address (127.0.0.1) reaches nothing: no traffic flows here.
    """

    def __init__(self, cluster: LocalCluster, interval: float = 0.5) -> None:
        super().__init__(name=f"lb-standin-{cluster.name}", daemon=True)
        self.cluster = cluster
        self.interval = interval
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        import json

        patch = json.dumps({"status": {"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}]}}})
        while not self._stop_event.wait(self.interval):
            with contextlib.suppress(OSError, urllib.error.URLError, KeyError):
                for service in self.cluster.request("GET", "/api/v1/services")["items"]:
                    meta, spec = service["metadata"], service["spec"]
                    if spec.get("type") != "LoadBalancer":
                        continue
                    if service.get("status", {}).get("loadBalancer", {}).get("ingress"):
                        continue
                    self.cluster.request(
                        "PATCH",
                        f"/api/v1/namespaces/{meta['namespace']}/services/{meta['name']}/status",
                        patch.encode(),
                    )


@contextlib.contextmanager
def local_fleet(workdir: Path, names: Sequence[str]) -> Iterator[dict[str, LocalCluster]]:
    fleet = LocalFleet(workdir)
    try:
        yield fleet.start(names)
    finally:
        fleet.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devenv.kube", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--clusters", default="A,B,C", help="comma-separated names (A,B,C)")
    args = parser.parse_args(argv)
    names = [n for n in args.clusters.split(",") if n]
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        fleet = LocalFleet(args.workdir)
        clusters = fleet.start(names)
    except ClusterStartError as error:
        print(f"devenv.kube: {error}", file=sys.stderr)
        return 1
    try:
        for cluster in clusters.values():
            print(f"KUBE_READY {cluster.name} {cluster.kubeconfig_path}", flush=True)
        stop.wait()
    finally:
        fleet.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
