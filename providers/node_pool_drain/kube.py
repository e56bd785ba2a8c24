"""The Kubernetes calls a node-pool drain makes, through the official client; nothing else.

Five calls: list the pool's nodes, cordon one, list the Pods on a node, evict one Pod (policy/v1
Eviction), and close. Everything returned is a planner dataclass, so the decisions stay in
`planner` and this module can be exercised against any server that speaks the same API.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from providers.node_pool_drain.planner import MIRROR_ANNOTATION, POOL_LABEL, Node, Pod

REQUEST_TIMEOUT_SECONDS = 30.0

# Say what each body is rather than rely on the client: its spec lists `json-patch+json` first
# for patches, and it sends evictions with no Content-Type at all.
MERGE_PATCH = "application/strategic-merge-patch+json"
JSON = "application/json"


class KubeUnavailable(Exception):
    """The cluster's API could not be read or written; the message says which call failed."""


class Eviction(StrEnum):
    """How the API answered one eviction request."""

    ACCEPTED = "accepted"  # 201: the Pod is being deleted gracefully
    BLOCKED = "blocked"  # 429: a PodDisruptionBudget allows no disruption right now
    GONE = "gone"  # 404: the Pod no longer exists


@dataclass(frozen=True, slots=True)
class EvictionResult:
    outcome: Eviction
    message: str = ""


class NodePoolApi:
    """One cluster's API, reached with a kubeconfig held only in memory.

    Built inside each provider method and closed after it: the provider object is pickled into
    the stack's state, so it must never hold a client (or the kubeconfig) itself.
    """

    def __init__(self, kubeconfig: str, *, label: str = POOL_LABEL) -> None:
        try:
            document = yaml.safe_load(kubeconfig)
            self._client = config.new_client_from_config_dict(document, persist_config=False)
        except Exception as error:
            # The loader's messages can quote the document; name only the error's type.
            raise KubeUnavailable(
                f"the kubeconfig could not be loaded ({type(error).__name__}); "
                "check the cluster's kubeconfig output"
            ) from None
        self._core = client.CoreV1Api(self._client)
        self._label = label

    def __enter__(self) -> NodePoolApi:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def list_nodes(self, pool: str) -> tuple[Node, ...]:
        """The nodes GKE labelled as members of `pool`."""
        nodes = self._call(
            f"listing the nodes of pool {pool}",
            self._core.list_node,
            label_selector=f"{self._label}={pool}",
        )
        return tuple(_node(item) for item in nodes.items or ())

    def cordon(self, node: str) -> None:
        """Mark `node` unschedulable so the scheduler puts evicted Pods elsewhere."""
        self._call(
            f"cordoning node {node}",
            self._core.patch_node,
            node,
            {"spec": {"unschedulable": True}},
            _content_type=MERGE_PATCH,
        )

    def list_pods(self, nodes: Iterable[str]) -> tuple[Pod, ...]:
        """Every Pod bound to one of `nodes`, in all namespaces."""
        pods: list[Pod] = []
        for node in nodes:
            listed = self._call(
                f"listing the pods on node {node}",
                self._core.list_pod_for_all_namespaces,
                field_selector=f"spec.nodeName={node}",
            )
            pods.extend(_pod(item) for item in listed.items or ())
        return tuple(pods)

    def evict(self, pod: Pod) -> EvictionResult:
        """Ask the API to evict `pod`; PodDisruptionBudgets decide whether it may go now."""
        body = client.V1Eviction(
            api_version="policy/v1",
            kind="Eviction",
            metadata=client.V1ObjectMeta(name=pod.name, namespace=pod.namespace),
        )
        try:
            self._core.create_namespaced_pod_eviction(
                pod.name,
                pod.namespace,
                body,
                _request_timeout=REQUEST_TIMEOUT_SECONDS,
                _headers={"Content-Type": JSON},
                _preload_content=False,
            )
        except ApiException as error:
            if error.status == 429:
                return EvictionResult(Eviction.BLOCKED, _status_message(error))
            if error.status == 404:
                return EvictionResult(Eviction.GONE, _status_message(error))
            raise KubeUnavailable(
                f"evicting pod {pod.key} failed with HTTP {error.status}: {_status_message(error)}"
            ) from None
        except HTTPError as error:
            raise KubeUnavailable(f"evicting pod {pod.key} failed: {error}") from None
        return EvictionResult(Eviction.ACCEPTED)

    @staticmethod
    def _call(what: str, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, _request_timeout=REQUEST_TIMEOUT_SECONDS, **kwargs)
        except ApiException as error:
            raise KubeUnavailable(
                f"{what} failed with HTTP {error.status}: {_status_message(error)}"
            ) from None
        except HTTPError as error:
            raise KubeUnavailable(f"{what} failed: {error}") from None


def _node(item: Any) -> Node:
    conditions = (item.status.conditions if item.status else None) or ()
    ready = any(c.type == "Ready" and c.status == "True" for c in conditions)
    return Node(
        name=item.metadata.name,
        ready=ready,
        unschedulable=bool(item.spec and item.spec.unschedulable),
    )


def _pod(item: Any) -> Pod:
    meta = item.metadata
    controller = next((o for o in meta.owner_references or () if o.controller), None)
    return Pod(
        namespace=meta.namespace,
        name=meta.name,
        node=item.spec.node_name if item.spec else "",
        controller_kind=controller.kind if controller else None,
        mirror=MIRROR_ANNOTATION in (meta.annotations or {}),
        terminating=meta.deletion_timestamp is not None,
    )


def _status_message(error: ApiException) -> str:
    """The API's own explanation: the Status message plus its causes (the PDB's verdict)."""
    try:
        status = yaml.safe_load(error.body or "") or {}
    except yaml.YAMLError:
        status = {}
    if not isinstance(status, dict):
        return str(error.reason or "")
    causes = [c.get("message", "") for c in (status.get("details") or {}).get("causes") or ()]
    return " ".join(filter(None, [status.get("message", ""), *causes])) or str(error.reason or "")
