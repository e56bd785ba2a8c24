"""Recorded Octavia LBs read back: the catalog, and the `octavia` output of the last up, which
the twin falls back to while Octavia does not answer."""

from components.octavia_catalog import from_entry
from model.octavia import Listener


def test_a_listener_without_a_default_pool_reads_back_from_the_engines_outputs():
    """The engine returns outputs without their None values and numbers as doubles: a listener
    Octavia created with no default pool must still read back, or an outage crashes the run that
    should keep the twin as the last up built it."""
    entry = {
        "id": "lb-1",
        "name": "web",
        "vip_address": "10.20.0.5",
        "listeners": [
            {"id": "li-1", "name": "https", "protocol": "TCP", "protocol_port": 443.0},
            {
                "id": "li-2",
                "name": "http",
                "protocol": "TCP",
                "protocol_port": 80.0,
                "default_pool_id": "pool-2",
            },
        ],
        "pools": [],
    }
    lb = from_entry(entry)
    assert lb.listeners == (
        Listener("li-1", "https", "TCP", 443, None),
        Listener("li-2", "http", "TCP", 80, "pool-2"),
    )
    assert lb.provisioning_status == "ACTIVE"
