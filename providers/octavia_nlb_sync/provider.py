"""The dynamic provider that keeps NLB target groups equal to Octavia pools on every `up`: the
engine's CRUD calls, each a run of the sync (`sync`) on the typed inputs (`spec`), and what the
engine is told when it fails.

`diff` runs on every preview, so reading the live APIs there is what makes member drift visible
before `up`. What a user can fix (an id Octavia does not know, a pool of another LB) fails the
preview naming the stack's key; an outage of Octavia only warns, so it never blocks the rest of
the stack. The state pickles the provider class by this module's path, so it never moves.
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)

from providers.inputs import changed_inputs, check_inputs, keep_secret, known
from providers.octavia_nlb_sync import sync
from providers.octavia_nlb_sync.octavia import OctaviaNotFound, OctaviaUnavailable
from providers.octavia_nlb_sync.spec import (
    COMPARED,
    DEFAULTS,
    INPUTS,
    SyncSpec,
    owned_targets,
    validate,
    withdrawn_members,
)

PROVIDER_VERSION = "1"


class OctaviaNlbSyncProvider(ResourceProvider):
    """Registers Octavia pool members as NLB targets; never removes what it did not add."""

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        """Inputs over defaults, each bad one a failure. A new sync's ids are also looked up
        here, since `diff` (which reads Octavia for an existing one) is not called for it: an id
        Octavia does not know fails the preview, while Octavia down only warns."""
        result = check_inputs(news, DEFAULTS, validate)
        if not olds and not result.failures and known(result.inputs):
            result.failures.extend(_unknown_ids(SyncSpec.from_props(result.inputs)))
        return result

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = changed_inputs(olds, news, COMPARED, DEFAULTS)
        if not known(news):
            return DiffResult(changes=True, replaces=[], delete_before_replace=False)
        spec = SyncSpec.from_props(news)
        try:
            plans = sync.plan(spec, owned_targets(olds), withdrawn_members(olds, spec))
        except OctaviaNotFound as error:
            # Octavia answered: the id is wrong. Running again will not help, so the preview
            # fails here, naming the key, instead of passing with an outage warning.
            raise WrongOctaviaId(spec, error) from error
        except OctaviaUnavailable as error:
            # Octavia down must not block the `up` an operator runs because it is down (a DNS
            # drain, say): the sync stays as it is unless its own inputs changed, and `update`
            # then fails on the same read, before any write.
            pulumi.log.warn(
                f"octavia lb {spec.loadbalancer_id}: member drift unknown, Octavia did not "
                f"answer ({error}). The sync is left as it is; the rest of the stack goes on. "
                "Run `pulumi up` again once Octavia answers."
            )
            return DiffResult(changes=bool(changed), replaces=[], delete_before_replace=False)
        for plan in plans:
            pulumi.log.info(f"{plan.summary()} targets to sync (octavia lb {spec.loadbalancer_id})")
        drift = any(not p.is_noop for p in plans)
        return DiffResult(changes=bool(changed) or drift, replaces=[], delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> CreateResult:
        spec = SyncSpec.from_props(props)
        outs = _synced(spec, props, owned={}, withdrawn={})
        return CreateResult(f"octavia-nlb-sync-{spec.loadbalancer_id}", outs)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        spec = SyncSpec.from_props(news)
        owned, withdrawn = owned_targets(olds), withdrawn_members(olds, spec)
        return UpdateResult(_synced(spec, news, owned, withdrawn))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """Refresh: the owned targets still registered, and the sync that is due.

        `pending` is what makes member changes in Octavia count as drift: a refresh (and so a
        drift-detection run) sees it change exactly when an `up` would register or deregister.
        An unreadable Octavia only warns here; refresh must keep working while Octavia is down.
        """
        spec = SyncSpec.from_props(props)
        owned = owned_targets(props)
        targets = sync.still_registered(spec, owned)
        pending = props.get("pending") or {}
        try:
            pending = sync.pending(sync.plan(spec, owned, guarded=False))
        except OctaviaNotFound as error:
            # A refresh is how state is repaired, so it goes on; the preview fails on this.
            pulumi.log.warn(f"refresh: {WrongOctaviaId(spec, error)}; pending sync unknown")
        except OctaviaUnavailable as error:
            pulumi.log.warn(f"refresh could not read Octavia; pending sync unknown: {error}")
        return ReadResult(id_, {**props, "targets": targets, "pending": pending})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        """Deregister the targets this resource registered; leave everything else."""
        sync.release(SyncSpec.from_props(props), owned_targets(props))


class WrongOctaviaId(Exception):
    """Octavia answered that the load balancer or a pool the sync names is not there (or not
    the LB's): a mistake in the stack, not an outage, so it fails instead of warning. It names
    the stack's key and the sync's input (`property`) that hold the wrong id."""

    def __init__(self, spec: SyncSpec, error: OctaviaNotFound) -> None:
        super().__init__(
            f"{spec.where}: {error}. Octavia answered, so this is not an outage: fix the id "
            "in the stack configuration (or remove the entry); the NLB was not touched."
        )
        self.kind = error.kind
        self.id = error.id
        self.property = spec.property_of(error)


class OctaviaNlbSync(pulumi.dynamic.Resource, module="hybrid-infra", name="OctaviaNlbSync"):
    """Keeps the NLB target groups of one Octavia LB equal to its pools' serving members."""

    loadbalancer_id: pulumi.Output[str]
    bindings: pulumi.Output[list[dict[str, Any]]]
    targets: pulumi.Output[dict[str, list[str]]]
    last_sync: pulumi.Output[dict[str, int]]
    pending: pulumi.Output[dict[str, str]]

    def __init__(
        self,
        resource_name: str,
        *,
        loadbalancer_id: pulumi.Input[str],
        bindings: pulumi.Input[list[pulumi.Input[dict]]],
        vpc_cidrs: pulumi.Input[list[str]],
        owns_target_groups: bool = False,
        max_deregister_fraction: float = 0.5,
        os_cloud: str | None = None,
        os_password: pulumi.Input[str] | None = None,
        aws_region: str | None = None,
        config_key: str | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "loadbalancer_id": loadbalancer_id,
            "bindings": bindings,
            "vpc_cidrs": vpc_cidrs,
            "owns_target_groups": owns_target_groups,
            "max_deregister_fraction": max_deregister_fraction,
            "os_cloud": os_cloud,
            "os_password": os_password,
            "aws_region": aws_region,
            "config_key": config_key,
            "provider_version": PROVIDER_VERSION,
            "targets": None,
            "last_sync": None,
            "pending": None,
        }
        super().__init__(
            OctaviaNlbSyncProvider(), resource_name, props, keep_secret(opts, "os_password")
        )


def _unknown_ids(spec: SyncSpec) -> list[CheckFailure]:
    """The ids Octavia does not know, as check failures on the inputs that name them."""
    try:
        sync.verify_ids(spec)
    except OctaviaNotFound as error:
        wrong = WrongOctaviaId(spec, error)
        return [CheckFailure(wrong.property, str(wrong))]
    except OctaviaUnavailable as error:
        pulumi.log.warn(
            f"octavia lb {spec.loadbalancer_id}: ids not verified, Octavia did not answer "
            f"({error}); the create reads them again before any write."
        )
    return []


def _synced(
    spec: SyncSpec,
    props: dict[str, Any],
    owned: sync.Owned,
    withdrawn: sync.Owned,
) -> dict[str, Any]:
    """Run the sync; its outputs are the inputs, what it owns now and what it wrote."""
    try:
        synced = sync.run(spec, owned, withdrawn)
    except OctaviaNotFound as error:
        raise WrongOctaviaId(spec, error) from error
    return {
        **{k: props.get(k, DEFAULTS.get(k)) for k in INPUTS},
        "targets": synced.owned(spec),
        "last_sync": {"registered": synced.registered, "deregistered": synced.deregistered},
        "pending": {},
    }
