"""A FAKE of the Kubernetes API: just the endpoints a node-pool drain uses, served over HTTP.

Why a fake: no kube-apiserver (nor etcd, kind, k3s) can be installed on this machine. So tests
start this small in-process server on 127.0.0.1 (stdlib `http.server`, one thread per request)
and point the official `kubernetes` client at it through a generated kubeconfig. The client
therefore really serialises, sends, parses and raises as it would against a cluster.

What it implements, following the real API's paths, JSON shapes and status codes:

* `GET /api/v1/nodes` with `labelSelector` (`k=v`, `k==v`, `k!=v`, `k`, `!k`) and
  `fieldSelector` (`metadata.name`, `spec.unschedulable`); `GET /api/v1/nodes/{name}`.
* `PATCH /api/v1/nodes/{name}` as strategic-merge, merge or JSON patch; any other content type
  is 415, and a JSON-patch document that is not a list is 400, as the real server answers.
* `GET /api/v1/pods` and `GET /api/v1/namespaces/{ns}/pods` with `fieldSelector`
  (`spec.nodeName`, `metadata.name`, `metadata.namespace`, `status.phase`; others are 400
  "field label not supported") and `labelSelector`; `GET /api/v1/namespaces/{ns}/pods/{name}`.
* `POST /api/v1/namespaces/{ns}/pods/{name}/eviction` (policy/v1 or v1beta1 Eviction): 201 with
  a Success Status; 404 for a missing Pod; 400 if the body's name differs from the URL's; 500 for
  a Pod covered by two PodDisruptionBudgets; 429 TooManyRequests with a `DisruptionBudget` cause
  ("The disruption budget web needs 2 healthy pods and has 2 currently") when the budget allows
  no disruption. Pending, finished and already-terminating Pods bypass budgets, as in the real
  eviction handler.
* Bearer-token authentication (401 Status otherwise) and 404/405 Status for anything else.

What it simplifies, so tests must not rely on more:

* Time is counted in requests, not seconds. An evicted Pod gets `deletionTimestamp` and stays
  listed (terminating) for `termination_lists` more pod-list requests, then vanishes. A node
  turns Ready after `ready_after_lists` node-list requests. A PodDisruptionBudget regains one
  allowed disruption after refusing `heal_after_refusals` evictions, which stands in for a
  replacement Pod turning Ready on the new pool and the disruption controller recounting.
* No controllers: nothing recreates evicted Pods, nothing schedules, no taints are added on
  cordon, no watches, no pagination (`limit`/`continue` are ignored), no resourceVersion
  semantics beyond a counter, and strategic merge is applied as a plain merge (which is the
  same for the scalar fields a cordon touches).
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

POOL_LABEL = "cloud.google.com/gke-nodepool"
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
CREATED = "2024-06-01T09:00:00Z"
JSON_TYPE = "application/json"

Json = dict[str, Any]


@dataclass
class FakeNode:
    name: str
    labels: dict[str, str]
    ready: bool = True
    ready_after_lists: int = 0
    unschedulable: bool = False
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class FakePod:
    namespace: str
    name: str
    node: str
    labels: dict[str, str] = field(default_factory=dict)
    owner_kind: str | None = None
    owner_name: str | None = None
    mirror: bool = False
    phase: str = "Running"
    terminating_lists_left: int | None = None
    deletion_timestamp: str | None = None
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass
class FakePdb:
    namespace: str
    name: str
    match_labels: dict[str, str]
    disruptions_allowed: int
    desired_healthy: int
    heal_after_refusals: int | None = None
    refusals: int = 0

    @property
    def current_healthy(self) -> int:
        return self.desired_healthy + self.disruptions_allowed


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str
    query: Mapping[str, str]
    content_type: str
    status: int


class ApiError(Exception):
    """Raised inside a handler; becomes a `Status` response with this code and reason."""

    def __init__(self, code: int, reason: str, message: str, details: Json | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details


class FakeKubeApi:
    """The fake API's state plus its HTTP server. Use as a context manager."""

    def __init__(self, *, token: str = "fake-token", termination_lists: int = 1) -> None:
        self.token = token
        self.termination_lists = termination_lists
        self.nodes: dict[str, FakeNode] = {}
        self.pods: dict[str, FakePod] = {}
        self.pdbs: list[FakePdb] = []
        self.requests: list[RecordedRequest] = []
        self.lock = threading.RLock()
        self._version = itertools.count(1000)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> FakeKubeApi:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def start(self) -> FakeKubeApi:
        api = self

        class Handler(_Handler):
            fake = api

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def kubeconfig(self, token: str | None = None) -> str:
        """A kubeconfig for this server, exactly what a cluster component would hand out."""
        return yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                "users": [{"name": "fake", "user": {"token": token or self.token}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
                "current-context": "fake",
            }
        )

    # ------------------------------------------------------------------ seeding

    def add_node(
        self, name: str, pool: str, *, ready: bool = True, ready_after_lists: int = 0
    ) -> FakeNode:
        node = FakeNode(
            name,
            {POOL_LABEL: pool, "kubernetes.io/hostname": name, "kubernetes.io/os": "linux"},
            ready=ready,
            ready_after_lists=ready_after_lists,
        )
        with self.lock:
            self.nodes[name] = node
        return node

    def add_pod(self, namespace: str, name: str, node: str, **kwargs: Any) -> FakePod:
        pod = FakePod(namespace, name, node, **kwargs)
        with self.lock:
            self.pods[pod.key] = pod
        return pod

    def add_pdb(
        self,
        namespace: str,
        name: str,
        match_labels: Mapping[str, str],
        *,
        disruptions_allowed: int,
        desired_healthy: int = 1,
        heal_after_refusals: int | None = None,
    ) -> FakePdb:
        pdb = FakePdb(
            namespace,
            name,
            dict(match_labels),
            disruptions_allowed,
            desired_healthy,
            heal_after_refusals,
        )
        with self.lock:
            self.pdbs.append(pdb)
        return pdb

    # ------------------------------------------------------------------ inspection

    def evictions(self, status: int | None = None) -> list[str]:
        """`ns/name` of every eviction request (optionally only those answered `status`)."""
        pattern = re.compile(r"^/api/v1/namespaces/([^/]+)/pods/([^/]+)/eviction$")
        found = []
        for request in list(self.requests):
            match = pattern.match(request.path)
            if request.method == "POST" and match and status in (None, request.status):
                found.append(f"{match[1]}/{match[2]}")
        return found

    # ------------------------------------------------------------------ API

    def handle(self, method: str, path: str, query: Mapping[str, str], headers: Any, body: bytes):
        """Route one request; returns (status, JSON body). Runs under the state lock."""
        if headers.get("Authorization") != f"Bearer {self.token}":
            raise ApiError(401, "Unauthorized", "Unauthorized")
        routes: list[tuple[str, str, Callable[..., tuple[int, Json]]]] = [
            ("GET", r"/api/v1/nodes", self._list_nodes),
            ("GET", r"/api/v1/nodes/(?P<name>[^/]+)", self._get_node),
            ("PATCH", r"/api/v1/nodes/(?P<name>[^/]+)", self._patch_node),
            ("GET", r"/api/v1/pods", self._list_pods),
            ("GET", r"/api/v1/namespaces/(?P<namespace>[^/]+)/pods", self._list_pods),
            ("GET", r"/api/v1/namespaces/(?P<namespace>[^/]+)/pods/(?P<name>[^/]+)", self._get_pod),
            (
                "POST",
                r"/api/v1/namespaces/(?P<namespace>[^/]+)/pods/(?P<name>[^/]+)/eviction",
                self._evict,
            ),
        ]
        allowed = False
        for verb, pattern, handler in routes:
            match = re.fullmatch(pattern, path)
            if match:
                allowed = True
                if verb == method:
                    return handler(query=query, headers=headers, body=body, **match.groupdict())
        if allowed:
            raise ApiError(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )
        raise ApiError(404, "NotFound", "the server could not find the requested resource")

    def _list_nodes(self, query: Mapping[str, str], **_: Any) -> tuple[int, Json]:
        selects_label = _label_selector(query.get("labelSelector", ""))
        selects_field = _field_selector(
            query.get("fieldSelector", ""),
            {
                "metadata.name": lambda n: n.name,
                "spec.unschedulable": lambda n: str(n.unschedulable).lower(),
            },
        )
        items = []
        for node in sorted(self.nodes.values(), key=lambda n: n.name):
            if node.ready_after_lists > 0:
                node.ready_after_lists -= 1
                if node.ready_after_lists == 0:
                    node.ready = True
            if selects_label(node.labels) and selects_field(node):
                items.append(self._node_json(node))
        return 200, self._list("NodeList", items)

    def _get_node(self, name: str, **_: Any) -> tuple[int, Json]:
        node = self.nodes.get(name)
        if node is None:
            raise _not_found("nodes", name)
        return 200, {"kind": "Node", "apiVersion": "v1", **self._node_json(node)}

    def _patch_node(self, name: str, headers: Any, body: bytes, **_: Any) -> tuple[int, Json]:
        node = self.nodes.get(name)
        if node is None:
            raise _not_found("nodes", name)
        content_type = (headers.get("Content-Type") or "").split(";")[0].strip()
        try:
            patch = json.loads(body or b"null")
        except ValueError as error:
            raise ApiError(400, "BadRequest", f"error decoding patch: {error}") from None
        current = {"kind": "Node", "apiVersion": "v1", **self._node_json(node)}
        if content_type in (
            "application/merge-patch+json",
            "application/strategic-merge-patch+json",
        ):
            if not isinstance(patch, dict):
                raise ApiError(
                    400,
                    "BadRequest",
                    "json: cannot unmarshal array into Go value of type map[string]interface {}",
                )
            patched = _merge(current, patch)
        elif content_type == "application/json-patch+json":
            if not isinstance(patch, list):
                raise ApiError(
                    400,
                    "BadRequest",
                    "json: cannot unmarshal object into Go value of type jsonpatch.Patch",
                )
            patched = _json_patch(current, patch)
        else:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types "
                "include: application/json-patch+json, application/merge-patch+json, "
                "application/apply-patch+yaml, application/strategic-merge-patch+json",
            )
        node.unschedulable = bool((patched.get("spec") or {}).get("unschedulable", False))
        return 200, {"kind": "Node", "apiVersion": "v1", **self._node_json(node)}

    def _list_pods(
        self, query: Mapping[str, str], namespace: str | None = None, **_: Any
    ) -> tuple[int, Json]:
        selects_label = _label_selector(query.get("labelSelector", ""))
        selects_field = _field_selector(
            query.get("fieldSelector", ""),
            {
                "spec.nodeName": lambda p: p.node,
                "metadata.name": lambda p: p.name,
                "metadata.namespace": lambda p: p.namespace,
                "status.phase": lambda p: p.phase,
            },
        )
        self._advance_terminations()
        items = [
            self._pod_json(pod)
            for pod in sorted(self.pods.values(), key=lambda p: p.key)
            if (namespace is None or pod.namespace == namespace)
            and selects_label(pod.labels)
            and selects_field(pod)
        ]
        return 200, self._list("PodList", items)

    def _get_pod(self, namespace: str, name: str, **_: Any) -> tuple[int, Json]:
        pod = self.pods.get(f"{namespace}/{name}")
        if pod is None:
            raise _not_found("pods", name)
        return 200, {"kind": "Pod", "apiVersion": "v1", **self._pod_json(pod)}

    def _evict(
        self, namespace: str, name: str, headers: Any, body: bytes, **_: Any
    ) -> tuple[int, Json]:
        # An absent Content-Type means JSON to the real server too (its first media type).
        content_type = (headers.get("Content-Type") or JSON_TYPE).split(";")[0].strip()
        if content_type != JSON_TYPE:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media types "
                f"include: {JSON_TYPE}, application/yaml, application/vnd.kubernetes.protobuf",
            )
        try:
            eviction = json.loads(body or b"null")
        except ValueError as error:
            raise ApiError(400, "BadRequest", f"error decoding eviction: {error}") from None
        if not isinstance(eviction, dict):
            raise ApiError(400, "BadRequest", "not a Eviction object")
        if eviction.get("kind", "Eviction") != "Eviction" or eviction.get(
            "apiVersion", "policy/v1"
        ) not in ("policy/v1", "policy/v1beta1"):
            raise ApiError(
                400,
                "BadRequest",
                f"not a Eviction object: {eviction.get('apiVersion')}/{eviction.get('kind')}",
            )
        if (eviction.get("metadata") or {}).get("name") != name:
            raise ApiError(400, "BadRequest", "name in URL does not match name in Eviction object")
        pod = self.pods.get(f"{namespace}/{name}")
        if pod is None:
            raise _not_found("pods", name)
        bypasses_budget = pod.phase in ("Pending", "Succeeded", "Failed") or pod.deletion_timestamp
        if not bypasses_budget:
            covering = [
                b
                for b in self.pdbs
                if b.namespace == namespace
                and all(pod.labels.get(k) == v for k, v in b.match_labels.items())
            ]
            if len(covering) > 1:
                raise ApiError(
                    500,
                    "InternalError",
                    "Internal error occurred: This pod has more than one PodDisruptionBudget, "
                    "which the eviction subresource does not support.",
                )
            if covering:
                budget = covering[0]
                if budget.disruptions_allowed <= 0:
                    budget.refusals += 1
                    denied = (
                        f"The disruption budget {budget.name} needs {budget.desired_healthy} "
                        f"healthy pods and has {budget.current_healthy} currently"
                    )
                    if (
                        budget.heal_after_refusals
                        and budget.refusals % budget.heal_after_refusals == 0
                    ):
                        budget.disruptions_allowed += 1
                    raise ApiError(
                        429,
                        "TooManyRequests",
                        "Cannot evict pod as it would violate the pod's disruption budget.",
                        {"causes": [{"reason": "DisruptionBudget", "message": denied}]},
                    )
                budget.disruptions_allowed -= 1
        self._delete_gracefully(pod)
        return 201, {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "code": 201,
        }

    # ------------------------------------------------------------------ helpers

    def _delete_gracefully(self, pod: FakePod) -> None:
        if pod.deletion_timestamp is not None:
            return
        if self.termination_lists <= 0:
            del self.pods[pod.key]
            return
        when = datetime.now(UTC) + timedelta(seconds=30)
        pod.deletion_timestamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
        pod.terminating_lists_left = self.termination_lists

    def _advance_terminations(self) -> None:
        for key, pod in list(self.pods.items()):
            if pod.terminating_lists_left is not None:
                if pod.terminating_lists_left <= 0:
                    del self.pods[key]
                else:
                    pod.terminating_lists_left -= 1

    def _list(self, kind: str, items: list[Json]) -> Json:
        return {
            "kind": kind,
            "apiVersion": "v1",
            "metadata": {"resourceVersion": str(next(self._version))},
            "items": items,
        }

    def _node_json(self, node: FakeNode) -> Json:
        spec: Json = {
            "podCIDR": "10.4.0.0/24",
            "providerID": f"gce://hybrid-test/asia-northeast1-a/{node.name}",
        }
        if node.unschedulable:
            spec["unschedulable"] = True
        ready = {
            "type": "Ready",
            "status": "True" if node.ready else "False",
            "lastHeartbeatTime": CREATED,
            "lastTransitionTime": CREATED,
            "reason": "KubeletReady" if node.ready else "KubeletNotReady",
            "message": "kubelet is posting ready status"
            if node.ready
            else "container runtime network not ready",
        }
        return {
            "metadata": {
                "name": node.name,
                "uid": node.uid,
                "resourceVersion": str(next(self._version)),
                "creationTimestamp": CREATED,
                "labels": dict(node.labels),
            },
            "spec": spec,
            "status": {
                "conditions": [ready],
                "addresses": [
                    {"type": "InternalIP", "address": "10.146.0.2"},
                    {"type": "Hostname", "address": node.name},
                ],
                "nodeInfo": {
                    "architecture": "amd64",
                    "bootID": node.uid,
                    "containerRuntimeVersion": "containerd://1.7.22",
                    "kernelVersion": "6.1.100+",
                    "kubeProxyVersion": "v1.30.5-gke.1014",
                    "kubeletVersion": "v1.30.5-gke.1014",
                    "machineID": node.uid.replace("-", ""),
                    "operatingSystem": "linux",
                    "osImage": "Container-Optimized OS from Google",
                    "systemUUID": node.uid,
                },
            },
        }

    def _pod_json(self, pod: FakePod) -> Json:
        metadata: Json = {
            "name": pod.name,
            "namespace": pod.namespace,
            "uid": pod.uid,
            "resourceVersion": str(next(self._version)),
            "creationTimestamp": CREATED,
            "labels": dict(pod.labels),
        }
        if pod.mirror:
            metadata["annotations"] = {
                MIRROR_ANNOTATION: "3f1c0d0e6f9b4b8e",
                "kubernetes.io/config.source": "file",
            }
        if pod.owner_kind:
            api_version = (
                "apps/v1" if pod.owner_kind in ("ReplicaSet", "DaemonSet", "StatefulSet") else "v1"
            )
            metadata["ownerReferences"] = [
                {
                    "apiVersion": api_version,
                    "kind": pod.owner_kind,
                    "name": pod.owner_name or f"{pod.name.rsplit('-', 1)[0]}",
                    "uid": str(
                        uuid.uuid5(
                            uuid.NAMESPACE_DNS, f"{pod.namespace}/{pod.owner_kind}/{pod.owner_name}"
                        )
                    ),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ]
        elif pod.mirror:
            metadata["ownerReferences"] = [
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "name": pod.node,
                    "uid": self.nodes[pod.node].uid
                    if pod.node in self.nodes
                    else str(uuid.uuid4()),
                    "controller": True,
                }
            ]
        if pod.deletion_timestamp:
            metadata["deletionTimestamp"] = pod.deletion_timestamp
            metadata["deletionGracePeriodSeconds"] = 30
        ready = "True" if pod.phase == "Running" and not pod.deletion_timestamp else "False"
        return {
            "metadata": metadata,
            "spec": {
                "nodeName": pod.node,
                "containers": [
                    {"name": "app", "image": "registry.example.net/shop/web:2.3.1", "resources": {}}
                ],
                "restartPolicy": "Always",
                "terminationGracePeriodSeconds": 30,
                "dnsPolicy": "ClusterFirst",
                "schedulerName": "default-scheduler",
                "priority": 0,
            },
            "status": {
                "phase": pod.phase,
                "conditions": [{"type": "Ready", "status": ready, "lastTransitionTime": CREATED}],
                "hostIP": "10.146.0.2",
                "podIP": "10.4.0.17",
                "startTime": CREATED,
            },
        }


class _Handler(BaseHTTPRequestHandler):
    fake: FakeKubeApi
    protocol_version = "HTTP/1.1"
    # Headers and body go out as two writes; with Nagle on, each response waits for the
    # client's delayed ACK (~40 ms), which would make every poll loop crawl.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log."""

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with self.fake.lock:
            try:
                status, payload = self.fake.handle(method, parts.path, query, self.headers, body)
            except ApiError as error:
                status, payload = error.code, _status(error)
            self.fake.requests.append(
                RecordedRequest(
                    method, parts.path, query, self.headers.get("Content-Type") or "", status
                )
            )
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _status(error: ApiError) -> Json:
    status: Json = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": error.message,
        "reason": error.reason,
        "code": error.code,
    }
    if error.details is not None:
        status["details"] = error.details
    return status


def _not_found(resource: str, name: str) -> ApiError:
    return ApiError(
        404, "NotFound", f'{resource} "{name}" not found', {"name": name, "kind": resource}
    )


def _label_selector(text: str) -> Callable[[Mapping[str, str]], bool]:
    """Equality-based selectors; set-based ones (`in (...)`) are not implemented here."""
    checks: list[Callable[[Mapping[str, str]], bool]] = []
    for term in filter(None, (t.strip() for t in text.split(","))):
        if "(" in term:
            raise ApiError(
                400,
                "BadRequest",
                f"unable to parse requirement: set-based selector {term!r} "
                "is not supported by this fake",
            )
        if "!=" in term:
            key, value = term.split("!=", 1)
            checks.append(lambda labels, k=key, v=value: labels.get(k) != v)
        elif "==" in term or "=" in term:
            key, value = re.split("==?", term, maxsplit=1)
            checks.append(lambda labels, k=key, v=value: labels.get(k) == v)
        elif term.startswith("!"):
            checks.append(lambda labels, k=term[1:]: k not in labels)
        else:
            checks.append(lambda labels, k=term: k in labels)
    return lambda labels: all(check(labels) for check in checks)


def _field_selector(text: str, fields: Mapping[str, Callable[[Any], str]]) -> Callable[[Any], bool]:
    checks: list[Callable[[Any], bool]] = []
    for term in filter(None, (t.strip() for t in text.split(","))):
        negate = "!=" in term
        key, value = re.split("!=|==?", term, maxsplit=1)
        if key not in fields:
            raise ApiError(400, "BadRequest", f"field label not supported: {key}")
        get = fields[key]
        checks.append(lambda obj, g=get, v=value, n=negate: (g(obj) != v) if n else (g(obj) == v))
    return lambda obj: all(check(obj) for check in checks)


def _merge(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge(result.get(key), value)
    return result


def _json_patch(document: Json, operations: list[Any]) -> Json:
    """RFC 6902 add/replace/remove on object paths (enough for node fields)."""
    result = copy.deepcopy(document)
    for op in operations:
        if not isinstance(op, dict) or op.get("op") not in ("add", "replace", "remove"):
            raise ApiError(422, "Invalid", f"unsupported JSON patch operation: {op!r}")
        *parents, last = [
            p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]
        ]
        node = result
        for part in parents:
            node = node.setdefault(part, {})
        if op["op"] == "remove":
            node.pop(last, None)
        else:
            node[last] = op.get("value")
    return result
