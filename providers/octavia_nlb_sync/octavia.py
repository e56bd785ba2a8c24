"""Reads from the Octavia v2 API through openstacksdk; nothing else.

Both the sync (pool members) and the adopt mode of the hybrid load balancer (listeners, pools,
health monitors) read Octavia through here, so both see it the same way. Every failure becomes
one of two errors, because they call for different actions: `OctaviaUnavailable` (Octavia did
not answer: wait, then run again) and `OctaviaNotFound` (Octavia answered that an id is not
there: the stack names a wrong id).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import openstack
import openstack.config
import openstack.connection
from keystoneauth1 import exceptions as ksa_exceptions
from keystoneauth1 import loading as ksa_loading
from openstack import exceptions as sdk_exceptions

from model.octavia import Listener, LoadBalancer, Monitor, Pool, TaggedLoadBalancer
from providers.octavia_nlb_sync.planner import Member

API_TIMEOUT_SECONDS = 30


class OctaviaError(Exception):
    """Octavia could not be read as asked; nothing was written."""


class OctaviaUnavailable(OctaviaError):
    """Octavia did not answer (down, unreachable, credentials refused): an outage, not a mistake
    in the stack. Run again once it answers."""


class OctaviaNotFound(OctaviaError):
    """Octavia answered that an object is not there for this credential: no such id (404),
    another project's (403), or a pool that is not the load balancer's (`spec.ForeignPool`).
    Running again will not help; the id the stack names (or the credential) is wrong."""

    def __init__(self, kind: str, id_: str, message: str | None = None) -> None:
        super().__init__(message or f"no Octavia {kind} {id_} (404)")
        self.kind = kind
        self.id = id_


def connect(
    cloud: str | None = None, password: str | None = None
) -> openstack.connection.Connection:
    """clouds.yaml entry `cloud` (or the `OS_*` environment when no cloud is named), with the
    stack's `openstack:password` over the entry's own when the stack has one.

    One connection per cloud and environment for the life of the provider host: a new one
    costs a version-discovery round trip and a token (the SDK caches both on the connection,
    and its sessions are safe to share between threads). `forget_connections` drops them when
    a token is refused.
    """
    key = (cloud, password, *sorted((k, v) for k, v in os.environ.items() if k.startswith("OS_")))
    with _LOCK:
        found = _CONNECTIONS.get(key)
        if found is None:
            found = _CONNECTIONS[key] = _new_connection(cloud, password)
        return found


def _new_connection(cloud: str | None, password: str | None) -> openstack.connection.Connection:
    options: dict[str, Any] = {"api_timeout": API_TIMEOUT_SECONDS}
    if cloud:
        options["cloud"] = cloud
    with _octavia_errors("connecting to OpenStack"):
        if password and _takes_password(cloud):
            # As `auth`, which overrides the entry's own; a plain `password=` would not.
            options["auth"] = {"password": password}
        return openstack.connect(**options)


_CONNECTIONS: dict[tuple[Any, ...], openstack.connection.Connection] = {}
_LOCK = threading.Lock()


def forget_connections() -> None:
    with _LOCK:
        _CONNECTIONS.clear()


def is_auth_error(error: BaseException) -> bool:
    """A refused or expired token: a new connection (a new token) may succeed."""
    cause = error.__cause__ if isinstance(error, OctaviaError) else error
    return isinstance(cause, ksa_exceptions.Unauthorized) or (
        isinstance(cause, sdk_exceptions.HttpException) and cause.status_code == 401
    )


def _takes_password(cloud: str | None) -> bool:
    """Whether the entry's auth plugin has a password (`none`, tokens and app credentials don't)."""
    region = openstack.config.OpenStackConfig().get_one(cloud=cloud, validate=False)
    plugin: Any = ksa_loading.get_plugin_loader(region.config.get("auth_type") or "password")
    return any(option.dest == "password" for option in plugin.get_options())


def read_members(conn: openstack.connection.Connection, pool_id: str) -> list[Member]:
    with _octavia_errors(f"listing the members of pool {pool_id}", ("pool", pool_id)):
        return [
            Member(
                address=m.address,
                protocol_port=int(m.protocol_port),
                weight=int(m.weight if m.weight is not None else 1),
                admin_state_up=bool(m.is_admin_state_up),
            )
            for m in conn.load_balancer.members(pool_id)
        ]


def read_pool_ids(conn: openstack.connection.Connection, loadbalancer_id: str) -> frozenset[str]:
    """The pools of a load balancer; one read, and it proves the LB exists."""
    with _octavia_errors(
        f"reading load balancer {loadbalancer_id}", ("load balancer", loadbalancer_id)
    ):
        lb = conn.load_balancer.get_load_balancer(loadbalancer_id)
        return frozenset(p["id"] for p in lb.pools or ())


def list_tagged(conn: openstack.connection.Connection, tag: str) -> list[TaggedLoadBalancer]:
    """Every LB of the project that carries `tag`: one list call (paged by the SDK)."""
    with _octavia_errors(f"listing the load balancers tagged {tag}"):
        return sorted(
            (
                TaggedLoadBalancer(id=lb.id, name=lb.name or "", tags=tuple(lb.tags or ()))
                for lb in conn.load_balancer.load_balancers(tags=tag)
            ),
            key=lambda lb: (lb.name, lb.id),
        )


def read_loadbalancer(conn: openstack.connection.Connection, loadbalancer_id: str) -> LoadBalancer:
    """The LB with its listeners, pools and monitors: what adopt mode mirrors onto the NLB."""
    with _octavia_errors(
        f"reading load balancer {loadbalancer_id}", ("load balancer", loadbalancer_id)
    ):
        lb = conn.load_balancer.get_load_balancer(loadbalancer_id)
        listeners = tuple(
            Listener(
                id=li.id,
                name=li.name or li.id,
                protocol=li.protocol,
                protocol_port=int(li.protocol_port),
                default_pool_id=li.default_pool_id,
            )
            for li in conn.load_balancer.listeners(loadbalancer_id=loadbalancer_id)
        )
        pools = tuple(
            Pool(
                id=p.id,
                protocol=p.protocol,
                lb_algorithm=p.lb_algorithm,
                monitor=_monitor(conn, p.health_monitor_id),
                member_ports=_member_ports(conn, p.id),
            )
            for p in conn.load_balancer.pools(loadbalancer_id=loadbalancer_id)
        )
        return LoadBalancer(
            id=lb.id,
            name=lb.name or lb.id,
            vip_address=lb.vip_address,
            provisioning_status=lb.provisioning_status,
            listeners=tuple(sorted(listeners, key=lambda li: (li.protocol_port, li.protocol))),
            pools=pools,
        )


def _member_ports(conn: openstack.connection.Connection, pool_id: str) -> tuple[int, ...]:
    with _octavia_errors(f"listing the members of pool {pool_id}", ("pool", pool_id)):
        return tuple(sorted({int(m.protocol_port) for m in conn.load_balancer.members(pool_id)}))


def _monitor(conn: openstack.connection.Connection, monitor_id: str | None) -> Monitor | None:
    if not monitor_id:
        return None
    with _octavia_errors(f"reading health monitor {monitor_id}", ("health monitor", monitor_id)):
        hm = conn.load_balancer.get_health_monitor(monitor_id)
    return Monitor(
        type=hm.type,
        delay=int(hm.delay),
        timeout=int(hm.timeout),
        max_retries=int(hm.max_retries),
        max_retries_down=int(hm.max_retries_down or hm.max_retries),
        url_path=hm.url_path,
        expected_codes=hm.expected_codes,
    )


@contextmanager
def _octavia_errors(doing: str, subject: tuple[str, str] | None = None) -> Iterator[None]:
    """One place that decides what a failed read means: Octavia answered that `subject`
    (kind, id) is not there for us, a wrong id; anything else, Octavia did not answer."""
    try:
        yield
    except (sdk_exceptions.NotFoundException, sdk_exceptions.ForbiddenException) as error:
        if subject is None:
            raise _unavailable(doing, error) from error
        kind, id_ = subject
        if isinstance(error, sdk_exceptions.NotFoundException):
            raise OctaviaNotFound(kind, id_) from error
        # Octavia's API reference: another project's object is 403 to a non-admin caller.
        raise OctaviaNotFound(
            kind,
            id_,
            f"Octavia refused {kind} {id_} (403): it belongs to another project, or this "
            "credential lacks a load-balancer role",
        ) from error
    except (sdk_exceptions.SDKException, ksa_exceptions.ClientException, OSError) as error:
        raise _unavailable(doing, error) from error


def _unavailable(doing: str, error: BaseException) -> OctaviaUnavailable:
    return OctaviaUnavailable(
        f"Octavia API failed while {doing}: {_reason(error)}. The NLB was not touched; "
        "check the OpenStack endpoint and credentials (clouds.yaml / OS_*) and run again."
    )


def _reason(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:300].rstrip(".")
