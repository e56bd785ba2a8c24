"""The dynamic provider that gates a node pool's birth on Ready nodes and its death on a drain.

One `NodePoolDrain` sits beside each node pool and `depends_on` it. Why that ordering is the
whole trick: Pulumi deletes a resource before the resources it depends on. When a new version
replaces a pool (create-before-delete), the engine therefore (1) creates the new pool, (2)
creates its `NodePoolDrain`, which waits until the new pool has enough Ready nodes, (3) deletes
the old pool's `NodePoolDrain`, which cordons the old nodes and evicts their Pods onto the new
pool, and only then (4) deletes the old pool. That is the zero-downtime upgrade (new pool,
cordon, drain, delete), and no Pod is killed by a node vanishing under it.

`create`/`delete` read and write through `kube`, decide through `planner`, poll through `wait`
(one loop for both waits), and log one line of progress per change. The kubeconfig arrives as a
secret input and is never logged; clients are built inside each method because the provider
object itself is pickled into the state.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import pulumi
from pulumi.dynamic import (
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)

from providers.inputs import changed_inputs, check_inputs, keep_secret, known
from providers.node_pool_drain.kube import Eviction, KubeUnavailable, NodePoolApi
from providers.node_pool_drain.planner import (
    POOL_LABEL,
    DrainPlan,
    Pod,
    Progress,
    Readiness,
    Skip,
    backoff_seconds,
    describe_pods,
    due,
    plan_drain,
    progress,
    readiness,
    to_cordon,
)
from providers.node_pool_drain.wait import Clock, Log, Sleep, wait_for

PROVIDER_VERSION = "1"
DEFAULTS: dict[str, Any] = {
    "node_label": POOL_LABEL,
    "ready_timeout_seconds": 900,
    "drain_timeout_seconds": 900,
    "poll_seconds": 5.0,
    "backoff_base_seconds": 1.0,
    "backoff_cap_seconds": 30.0,
}
INPUTS = ("pool_name", "kubeconfig", "min_ready_nodes", "provider_version", *DEFAULTS)
REPLACE_ON = ("pool_name", "node_label")
"""Another pool is another drain: the old one must run its delete (the drain) on its own pool."""


class NodesNotReady(Exception):
    """A new pool did not reach its Ready node count in time; the old pool was not touched."""

    def __init__(self, state: Readiness, timeout: float) -> None:
        self.state = state
        super().__init__(
            f"pool {state.pool}: only {state.ready}/{state.wanted} nodes Ready after "
            f"{timeout:g}s ({state.registered} registered). The old pool keeps serving. "
            f"Check the new nodes (kubectl get nodes -l {POOL_LABEL}={state.pool}), then run "
            "`pulumi up` again, or raise readyTimeoutSeconds."
        )


class DrainTimedOut(Exception):
    """Pods were still on the pool when the drain's time ran out; the pool was not deleted."""

    def __init__(
        self, pool: str, timeout: float, blocking: Iterable[Pod], reasons: Mapping[str, str]
    ) -> None:
        self.pool = pool
        self.blocking = tuple(blocking)
        super().__init__(
            f"pool {pool}: drain timed out after {timeout:g}s with {len(self.blocking)} pod(s) "
            f"still blocking: {describe_pods(self.blocking, reasons)}. The pool was NOT deleted "
            "and its nodes stay cordoned. Free the budgets (kubectl get pdb -A) or raise "
            "drainTimeoutSeconds, then run `pulumi up` again."
        )


@dataclass(frozen=True, slots=True)
class DrainSpec:
    """The resource's inputs, typed (the host hands numbers over as floats)."""

    pool_name: str
    kubeconfig: str
    min_ready_nodes: int
    node_label: str
    ready_timeout_seconds: float
    drain_timeout_seconds: float
    poll_seconds: float
    backoff_base_seconds: float
    backoff_cap_seconds: float

    @classmethod
    def from_props(cls, props: Mapping[str, Any]) -> DrainSpec:
        values = {**DEFAULTS, **{k: v for k, v in props.items() if v is not None}}
        return cls(
            pool_name=str(values["pool_name"]),
            kubeconfig=str(values["kubeconfig"]),
            min_ready_nodes=int(values["min_ready_nodes"]),
            node_label=str(values["node_label"]),
            ready_timeout_seconds=float(values["ready_timeout_seconds"]),
            drain_timeout_seconds=float(values["drain_timeout_seconds"]),
            poll_seconds=float(values["poll_seconds"]),
            backoff_base_seconds=float(values["backoff_base_seconds"]),
            backoff_cap_seconds=float(values["backoff_cap_seconds"]),
        )


class NodePoolDrainProvider(ResourceProvider):
    """Create waits for Ready nodes; delete cordons and drains; nothing else touches the API."""

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        return check_inputs(news, DEFAULTS, validate)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = changed_inputs(olds, news, INPUTS, DEFAULTS)
        replaces = [k for k in REPLACE_ON if k in changed]
        return DiffResult(changes=bool(changed), replaces=replaces, delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        spec = DrainSpec.from_props(props)
        with _api(spec) as api:
            state = wait_until_ready(
                api,
                spec.pool_name,
                spec.min_ready_nodes,
                timeout=spec.ready_timeout_seconds,
                poll=spec.poll_seconds,
            )
        return CreateResult(
            f"drain-{spec.pool_name}", {**_inputs(props), "ready_nodes": state.ready}
        )

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """Timeouts or credentials changed: remember them for the eventual drain; no API call."""
        return UpdateResult({**_inputs(news), "ready_nodes": olds.get("ready_nodes")})

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_, props)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        spec = DrainSpec.from_props(props)
        with _api(spec) as api:
            drain_pool(
                api,
                spec.pool_name,
                timeout=spec.drain_timeout_seconds,
                poll=spec.poll_seconds,
                backoff_base=spec.backoff_base_seconds,
                backoff_cap=spec.backoff_cap_seconds,
            )


class NodePoolDrain(pulumi.dynamic.Resource, module="hybrid-infra", name="NodePoolDrain"):
    """Waits for a pool's nodes on create and drains them on delete; `depends_on` the pool."""

    ready_nodes: pulumi.Output[int]

    def __init__(
        self,
        resource_name: str,
        *,
        pool_name: pulumi.Input[str],
        kubeconfig: pulumi.Input[str],
        min_ready_nodes: int,
        ready_timeout_seconds: int = 900,
        drain_timeout_seconds: int = 900,
        node_label: str = POOL_LABEL,
        poll_seconds: float = 5.0,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "pool_name": pool_name,
            "kubeconfig": pulumi.Output.secret(kubeconfig),
            "min_ready_nodes": min_ready_nodes,
            "node_label": node_label,
            "ready_timeout_seconds": ready_timeout_seconds,
            "drain_timeout_seconds": drain_timeout_seconds,
            "poll_seconds": poll_seconds,
            "backoff_base_seconds": DEFAULTS["backoff_base_seconds"],
            "backoff_cap_seconds": DEFAULTS["backoff_cap_seconds"],
            "provider_version": PROVIDER_VERSION,
            "ready_nodes": None,
        }
        super().__init__(
            NodePoolDrainProvider(), resource_name, props, keep_secret(opts, "kubeconfig")
        )


def wait_until_ready(
    api: NodePoolApi,
    pool: str,
    wanted: int,
    *,
    timeout: float,
    poll: float,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
    log: Log = pulumi.log.info,
) -> Readiness:
    """Poll the pool's nodes until `wanted` are Ready, or raise NodesNotReady at the deadline."""
    return wait_for(
        lambda: readiness(pool, api.list_nodes(pool), wanted),
        lambda state: state.done,
        interval=poll,
        wait=timeout,
        timed_out=lambda state: NodesNotReady(state, timeout),
        callback=log,
        clock=clock,
        sleep=sleep,
    )


def drain_pool(
    api: NodePoolApi,
    pool: str,
    *,
    timeout: float,
    poll: float,
    backoff_base: float,
    backoff_cap: float,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
    log: Log = pulumi.log.info,
) -> Progress:
    """Cordon every node of `pool`, then evict its Pods until only skippable ones are left.

    A 429 from the Eviction API is a PodDisruptionBudget saying "not now": the progress line
    says so, and that Pod is retried after a growing backoff while the others carry on. Raises
    DrainTimedOut at the deadline.
    """
    drain = _Drain(api, pool, backoff_base=backoff_base, backoff_cap=backoff_cap, log=log)
    return wait_for(
        drain.look,
        lambda _: drain.plan.done,
        interval=poll,
        wait=timeout,
        timed_out=lambda _: DrainTimedOut(pool, timeout, drain.plan.blocking, drain.reasons),
        callback=log,
        between=drain.evict_due,
        clock=clock,
        sleep=sleep,
    )


@dataclass
class _Drain:
    """One drain between its looks: the nodes it cordoned, every Pod it has seen, and the
    refusals with their backoff."""

    api: NodePoolApi
    pool: str
    backoff_base: float
    backoff_cap: float
    log: Log
    nodes: list[str] | None = None
    plan: DrainPlan = field(default_factory=lambda: DrainPlan((), (), ()))
    seen: set[str] = field(default_factory=set)
    refusals: dict[str, int] = field(default_factory=dict)
    not_before: dict[str, float] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)

    def look(self) -> Progress:
        """The pool's Pods now; the first look cordons the nodes and says what stays."""
        first = self.nodes is None
        if self.nodes is None:
            nodes = self.api.list_nodes(self.pool)
            for name in to_cordon(nodes):
                self.api.cordon(name)
            self.nodes = [n.name for n in nodes]
        self.plan = plan_drain(self.api.list_pods(self.nodes))
        if first:
            self.log(_cordoned_summary(self.pool, len(self.nodes), self.plan.skipped))
        self.seen.update(p.key for p in self.plan.blocking)
        return progress(self.pool, self.seen, self.plan, self.reasons)

    def evict_due(self, now: float) -> None:
        """Evict each Pod whose backoff has expired; a refusal doubles that Pod's backoff."""
        for pod in due(self.plan.evict, self.not_before, now):
            result = self.api.evict(pod)
            if result.outcome is Eviction.BLOCKED:
                self.refusals[pod.key] = self.refusals.get(pod.key, 0) + 1
                self.not_before[pod.key] = now + backoff_seconds(
                    self.refusals[pod.key], base=self.backoff_base, cap=self.backoff_cap
                )
                self.reasons[pod.key] = result.message or "refused by a PodDisruptionBudget"
            else:
                self.reasons.pop(pod.key, None)


def validate(inputs: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Input problems as (property, reason); values unknown at preview are not judged."""
    failures: list[tuple[str, str]] = []
    pool = inputs.get("pool_name")
    if known(pool) and not (isinstance(pool, str) and pool):
        failures.append(("pool_name", "must be the node pool's name"))
    kubeconfig = inputs.get("kubeconfig")
    if kubeconfig is None or (known(kubeconfig) and not isinstance(kubeconfig, str)):
        failures.append(("kubeconfig", "required: the cluster's kubeconfig (a secret)"))
    wanted = inputs.get("min_ready_nodes")
    if known(wanted) and not (_is_number(wanted) and wanted >= 1 and wanted == int(wanted)):
        failures.append(
            ("min_ready_nodes", f"must be a whole number of at least 1, got {wanted!r}")
        )
    for key in ("ready_timeout_seconds", "drain_timeout_seconds", "poll_seconds"):
        value = inputs.get(key)
        if known(value) and not (_is_number(value) and value > 0):
            failures.append((key, f"must be a positive number of seconds, got {value!r}"))
    return failures


def _api(spec: DrainSpec) -> NodePoolApi:
    try:
        return NodePoolApi(spec.kubeconfig, label=spec.node_label)
    except KubeUnavailable as error:
        raise KubeUnavailable(
            f"pool {spec.pool_name}: {error}. If the cluster no longer exists, remove this "
            "resource from the state with `pulumi state delete <urn>`."
        ) from None


def _inputs(props: Mapping[str, Any]) -> dict[str, Any]:
    return {k: props.get(k, DEFAULTS.get(k)) for k in INPUTS}


def _cordoned_summary(pool: str, nodes: int, skipped: Iterable[tuple[Pod, Skip]]) -> str:
    kinds = {Skip.DAEMONSET: "DaemonSet", Skip.MIRROR: "mirror"}
    counts: dict[str, int] = {}
    for _, reason in skipped:
        counts[kinds[reason]] = counts.get(kinds[reason], 0) + 1
    left = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "none"
    return f"pool {pool}: {nodes} node(s) cordoned; pods left in place: {left}"


def _is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)
