"""Dynamic resources of the engine test's own, standing in for what a provider plugin would do.

`StandInMember` creates and deletes one Octavia pool member through openstacksdk, as
`openstack.loadbalancer.Member` would, so the engine orders its steps against the sync exactly
as it orders the real program's. `Note` is any other resource of a stack: it only stores its
value, so a test can see whether the rest of a stack still updates.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import openstack
import pulumi
from openstack.exceptions import ConflictException
from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider, UpdateResult

ACTIVE_TIMEOUT = 120
T = TypeVar("T")


class _MemberProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        conn = openstack.connect()
        member = _when_active(
            conn,
            props["loadbalancer_id"],
            lambda: conn.load_balancer.create_member(
                props["pool_id"],
                project_id=props["project_id"],
                address=props["address"],
                protocol_port=int(props["port"]),
                weight=int(props["weight"]),
            ),
        )
        return CreateResult(member.id, props)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        keys = ("pool_id", "address", "port", "weight")
        replaces = [k for k in keys[:3] if olds.get(k) != news.get(k)]
        changes = [k for k in keys if olds.get(k) != news.get(k)]
        return DiffResult(changes=bool(changes), replaces=replaces, delete_before_replace=True)

    def update(self, id_: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        conn = openstack.connect()
        _when_active(
            conn,
            news["loadbalancer_id"],
            lambda: conn.load_balancer.update_member(
                id_, news["pool_id"], weight=int(news["weight"])
            ),
        )
        return UpdateResult(news)

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        conn = openstack.connect()
        _when_active(
            conn,
            props["loadbalancer_id"],
            lambda: conn.load_balancer.delete_member(id_, props["pool_id"], ignore_missing=True),
        )


def _when_active(conn: openstack.connection.Connection, lb_id: str, change: Callable[[], T]) -> T:
    """Octavia refuses a change (409) while the LB is PENDING_UPDATE from another one; the
    engine runs independent members in parallel, so wait and retry, as provider plugins do."""
    deadline = time.monotonic() + ACTIVE_TIMEOUT
    while True:
        _wait(conn, lb_id)
        try:
            result = change()
        except ConflictException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
            continue
        _wait(conn, lb_id)
        return result


def _wait(conn: openstack.connection.Connection, lb_id: str) -> None:
    conn.load_balancer.wait_for_load_balancer(
        lb_id, status="ACTIVE", failures=["ERROR"], interval=0.1, wait=ACTIVE_TIMEOUT
    )


class StandInMember(pulumi.dynamic.Resource, module="engine-test", name="Member"):
    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions) -> None:
        super().__init__(_MemberProvider(), name, props, opts)


class _NoteProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        return CreateResult("note", props)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(news)


class Note(pulumi.dynamic.Resource, module="engine-test", name="Note"):
    text: pulumi.Output[str]

    def __init__(self, name: str, text: str) -> None:
        super().__init__(_NoteProvider(), name, {"text": text})
