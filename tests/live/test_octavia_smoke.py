"""Smoke tests of the devenv Octavia through openstacksdk: is it real enough to build on?"""

import uuid

import pytest
from keystoneauth1 import exceptions as ksa_exceptions
from openstack import exceptions as sdk_exceptions

from devenv.octavia import NOOP_NETWORK_DB
from tests.fixtures.octavia import wait_lb_active

pytestmark = [
    pytest.mark.filterwarnings("ignore::openstack.warnings.RemovedInSDK50Warning"),
    pytest.mark.filterwarnings("ignore::openstack.warnings.RemovedInSDK60Warning"),
]


def _create_lb(conn, project_id, name="smoke"):
    subnet_id = str(uuid.uuid4())  # the no-op network driver accepts any subnet UUID
    lb = conn.load_balancer.create_load_balancer(
        name=name, project_id=project_id, vip_subnet_id=subnet_id
    )
    assert lb.provisioning_status == "PENDING_CREATE"
    return wait_lb_active(conn, lb.id), subnet_id


def _pool_on_new_lb(conn, project_id):
    lb, _ = _create_lb(conn, project_id)
    listener = conn.load_balancer.create_listener(
        loadbalancer_id=lb.id, protocol="TCP", protocol_port=443, project_id=project_id
    )
    wait_lb_active(conn, lb.id)
    pool = conn.load_balancer.create_pool(
        listener_id=listener.id, protocol="TCP", lb_algorithm="ROUND_ROBIN", project_id=project_id
    )
    wait_lb_active(conn, lb.id)
    return lb, pool


def _members(conn, pool_id):
    return {m.address: m for m in conn.load_balancer.members(pool_id)}


def test_full_tcp_load_balancer_through_openstacksdk(octavia_server, octavia_conn, project_id):
    conn = octavia_conn
    lb, subnet_id = _create_lb(conn, project_id, name="smoke-full")
    assert lb.provisioning_status == "ACTIVE"
    assert lb.vip_subnet_id == subnet_id
    assert lb.project_id == project_id
    assert lb.provider == "amphora"

    listener = conn.load_balancer.create_listener(
        name="tls-passthrough",
        loadbalancer_id=lb.id,
        protocol="TCP",
        protocol_port=443,
        project_id=project_id,
    )
    wait_lb_active(conn, lb.id)
    pool = conn.load_balancer.create_pool(
        listener_id=listener.id, protocol="TCP", lb_algorithm="ROUND_ROBIN", project_id=project_id
    )
    wait_lb_active(conn, lb.id)
    monitor = conn.load_balancer.create_health_monitor(
        pool_id=pool.id, type="TCP", delay=5, timeout=3, max_retries=3, project_id=project_id
    )
    wait_lb_active(conn, lb.id)

    wanted = [
        ("10.20.0.11", 8443, 1, True),
        ("10.20.0.12", 8443, 5, True),
        ("10.20.0.13", 9443, 0, False),  # drained and disabled
    ]
    for address, port, weight, up in wanted:
        conn.load_balancer.create_member(
            pool,
            address=address,
            protocol_port=port,
            weight=weight,
            is_admin_state_up=up,
            project_id=project_id,
        )
        wait_lb_active(conn, lb.id)

    got_listener = conn.load_balancer.get_listener(listener.id)
    assert (got_listener.protocol, got_listener.protocol_port) == ("TCP", 443)
    assert got_listener.load_balancers == [{"id": lb.id}]
    got_pool = conn.load_balancer.get_pool(pool.id)
    assert (got_pool.protocol, got_pool.lb_algorithm) == ("TCP", "ROUND_ROBIN")
    assert got_pool.health_monitor_id == monitor.id
    got_monitor = conn.load_balancer.get_health_monitor(monitor.id)
    assert (got_monitor.type, got_monitor.delay, got_monitor.timeout) == ("TCP", 5, 3)
    assert got_monitor.provisioning_status == "ACTIVE"

    members = _members(conn, pool.id)
    assert {a: (m.protocol_port, m.weight, m.is_admin_state_up) for a, m in members.items()} == {
        address: (port, weight, up) for address, port, weight, up in wanted
    }
    assert {m.provisioning_status for m in members.values()} == {"ACTIVE"}

    # The no-op drivers' state lives in this server's work dir, not in the /tmp file that
    # every no-op Octavia on the machine would otherwise share.
    assert (octavia_server.workdir / NOOP_NETWORK_DB.name).exists()

    mine = list(conn.load_balancer.load_balancers(project_id=project_id))
    assert [x.id for x in mine] == [lb.id]
    assert conn.load_balancer.get_load_balancer(lb.id).operating_status == "OFFLINE"


def test_a_change_while_the_lb_is_pending_is_refused_with_409(octavia_conn, project_id):
    conn = octavia_conn
    lb = conn.load_balancer.create_load_balancer(
        project_id=project_id, vip_subnet_id=str(uuid.uuid4())
    )
    # The create flow takes ~0.8 s; the next request arrives within milliseconds.
    with pytest.raises(sdk_exceptions.ConflictException):
        conn.load_balancer.create_listener(
            loadbalancer_id=lb.id, protocol="TCP", protocol_port=80, project_id=project_id
        )
    wait_lb_active(conn, lb.id)
    conn.load_balancer.create_listener(
        loadbalancer_id=lb.id, protocol="TCP", protocol_port=80, project_id=project_id
    )
    wait_lb_active(conn, lb.id)


def _batch(conn, lb, pool, members, timeout=30):
    # openstacksdk has no wrapper for the batch call; the proxy is a keystoneauth Adapter
    # rooted at .../v2, so a raw PUT on the relative path works.
    response = conn.load_balancer.put(f"/lbaas/pools/{pool.id}/members", json={"members": members})
    assert response.status_code == 202, response.text
    wait_lb_active(conn, lb.id, timeout=timeout)
    return _members(conn, pool.id)


def test_batch_member_update_is_declarative(octavia_conn, project_id):
    conn = octavia_conn
    lb, pool = _pool_on_new_lb(conn, project_id)
    first = [{"address": f"10.30.0.{i}", "protocol_port": 443, "weight": 1} for i in (1, 2, 3)]
    assert set(_batch(conn, lb, pool, first)) == {"10.30.0.1", "10.30.0.2", "10.30.0.3"}

    # Listed members are updated, new ones created, unlisted ones deleted.
    second = [
        {"address": "10.30.0.1", "protocol_port": 443, "weight": 0},
        {"address": "10.30.0.2", "protocol_port": 443, "weight": 7, "admin_state_up": False},
        {"address": "10.40.0.1", "protocol_port": 8443},
    ]
    members = _batch(conn, lb, pool, second)
    assert {a: (m.protocol_port, m.weight, m.is_admin_state_up) for a, m in members.items()} == {
        "10.30.0.1": (443, 0, True),
        "10.30.0.2": (443, 7, False),
        "10.40.0.1": (8443, 1, True),
    }


def test_batch_member_update_creates_200_members(octavia_conn, project_id):
    conn = octavia_conn
    lb, pool = _pool_on_new_lb(conn, project_id)
    wanted = [
        {"address": f"10.31.{i // 250}.{i % 250 + 1}", "protocol_port": 443, "weight": 1}
        for i in range(200)
    ]
    # Octavia's worker is quadratic in pool size here: ~10 s for 200 members on an idle
    # 2-CPU box, several times that under load.
    members = _batch(conn, lb, pool, wanted, timeout=180)
    assert set(members) == {m["address"] for m in wanted}
    assert {(m.protocol_port, m.weight, m.provisioning_status) for m in members.values()} == {
        (443, 1, "ACTIVE")
    }


def test_state_survives_a_restart_and_a_stopped_server_refuses_connections(
    octavia_server, octavia_conn, project_id
):
    conn = octavia_conn
    lb, pool = _pool_on_new_lb(conn, project_id)
    endpoint = octavia_server.endpoint

    octavia_server.stop()
    try:
        assert not octavia_server.running
        with pytest.raises((ksa_exceptions.ConnectFailure, sdk_exceptions.SDKException)) as err:
            conn.load_balancer.get_load_balancer(lb.id)
        assert "onnect" in str(err.value)
    finally:
        octavia_server.start()

    assert octavia_server.endpoint == endpoint
    got = conn.load_balancer.get_load_balancer(lb.id)
    assert (got.provisioning_status, got.project_id) == ("ACTIVE", project_id)
    assert conn.load_balancer.get_pool(pool.id).lb_algorithm == "ROUND_ROBIN"
    # And the worker is back too: changes still complete.
    conn.load_balancer.create_member(
        pool, address="10.50.0.1", protocol_port=443, project_id=project_id
    )
    wait_lb_active(conn, lb.id)
    assert set(_members(conn, pool.id)) == {"10.50.0.1"}
