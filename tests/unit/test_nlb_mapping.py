"""The Octavia → NLB mapping tables: listener protocols and health checks."""

import pytest

from model.nlb_mapping import (
    MappingError,
    OctaviaListener,
    map_health_check,
    map_listeners,
)
from model.octavia import Monitor

# --- mapping tables -------------------------------------------------------------------------


TCP = Monitor("TCP", 10, 5, 3, 3)


@pytest.mark.parametrize(
    ("listeners", "expected"),
    [
        ([("TCP", 443, "TCP")], [("TCP", 443, False)]),
        ([("UDP", 53, "UDP")], [("UDP", 53, False)]),
        ([("TCP", 443, "TCP"), ("UDP", 443, "UDP")], [("TCP_UDP", 443, False)]),
        ([("HTTP", 80, "HTTP")], [("TCP", 80, False)]),
        ([("HTTPS", 443, "HTTPS")], [("TCP", 443, False)]),
        ([("TERMINATED_HTTPS", 443, "HTTP")], [("TCP", 443, False)]),
        ([("TCP", 443, "PROXY")], [("TCP", 443, True)]),
        ([("HTTPS", 443, "PROXYV2")], [("TCP", 443, True)]),
        ([("TCP", 80, "TCP"), ("TCP", 443, "TCP")], [("TCP", 80, False), ("TCP", 443, False)]),
    ],
)
def test_listener_protocol_table(listeners, expected):
    octavia = [
        OctaviaListener(f"l{i}", protocol, port, f"p{i}", pool, TCP)
        for i, (protocol, port, pool) in enumerate(listeners)
    ]
    mapped = map_listeners(octavia)
    assert [(m.protocol, m.port, m.proxy_protocol_v2) for m in mapped] == expected


@pytest.mark.parametrize(
    ("listeners", "message"),
    [
        ([("SCTP", 9000, "SCTP")], "protocol SCTP has no NLB equivalent"),
        ([("UDP", 53, "TCP")], "a UDP listener cannot feed a TCP pool"),
        ([("TCP", 443, "UDP")], "a TCP listener cannot feed a UDP pool"),
        ([("TCP", 443, "PROXY"), ("UDP", 443, "UDP")], "proxy protocol needs a TCP-only"),
        ([("TCP", 443, "TCP"), ("HTTPS", 443, "HTTPS")], "share port 443 on the same transport"),
    ],
)
def test_unsupported_listener_combinations_are_clear_errors(listeners, message):
    octavia = [
        OctaviaListener(f"l{i}", protocol, port, f"p{i}", pool, None)
        for i, (protocol, port, pool) in enumerate(listeners)
    ]
    with pytest.raises(MappingError, match=message):
        map_listeners(octavia)


@pytest.mark.parametrize(
    ("monitor", "expected"),
    [
        (Monitor("TCP", 10, 5, 3, 3), ("TCP", 10, 5, 3, 3, None, None)),
        (Monitor("PING", 10, 5, 3, 3), ("TCP", 10, 5, 3, 3, None, None)),
        (Monitor("UDP-CONNECT", 5, 3, 2, 2), ("TCP", 5, 3, 2, 2, None, None)),
        (
            Monitor("HTTP", 30, 10, 5, 4, "/healthz", "200"),
            ("HTTP", 30, 10, 5, 4, "/healthz", "200"),
        ),
        (Monitor("HTTPS", 10, 5, 3, 3), ("HTTPS", 10, 5, 3, 3, "/", "200-399")),
        # NLB limits: interval >= 5, thresholds 2..10, timeout <= interval
        (Monitor("TCP", 1, 1, 1, 1), ("TCP", 5, 2, 2, 2, None, None)),
    ],
)
def test_health_check_table(monitor, expected):
    check = map_health_check(monitor)
    assert (
        check.protocol,
        check.interval,
        check.timeout,
        check.healthy_threshold,
        check.unhealthy_threshold,
        check.path,
        check.matcher,
    ) == expected


def test_unknown_monitor_type_is_a_clear_error():
    with pytest.raises(MappingError, match="health monitor type SCTP has no NLB equivalent"):
        map_health_check(Monitor("SCTP", 10, 5, 3, 3))
