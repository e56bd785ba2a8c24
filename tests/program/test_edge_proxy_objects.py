"""The program's edge proxies (mocks: the program's shape): fallbacks where a drain would send
segments, health paths, rolls on a drain or a new CA, and the CA secret never in plain text."""

from __future__ import annotations

from model.stackfile import SECRET_PLACEHOLDER
from tests.fixtures.program import synth_with
from tests.support.edge import secret_value, servers_of, with_tls
from tests.support.synthesis import CONFIGMAP, DEPLOYMENT, EDGE_PROXY, SECRET, children_by_type
from tools.synth import Synthesis, synthesize

# --- the program's edge proxies (mocks: the program's shape), their configs by real haproxy -c


def test_the_prod_stack_s_segments_fall_back_where_a_drain_would_send_them():
    """C's segments fall back where draining C sends them; A's and B's single-Prod segments
    fit nowhere else, and the preview says so."""
    result = synthesize("prod")
    config = children_by_type(result, EDGE_PROXY, "A-edge-proxy")[CONFIGMAP].inputs["data"][
        "haproxy.cfg"
    ]
    drained = synth_with(lambda raw: raw["clusters"]["C"].update(drained=True))
    moved = drained.outputs["routing"]["segments"]
    servers = servers_of(config)
    for segment in ("trial", "staff"):
        (route,) = moved[segment]["routes"]
        assert servers[f"segment_{segment}"][route["prod"]].endswith(" backup")
    assert all(not line.endswith(" backup") for line in servers["segment_enterprise"].values())
    warnings = [line for line in result.logs if "has no fallback" in line]
    assert len(warnings) == 2
    assert "segment consumer-east (8800 users)" in warnings[0] and "if A fails" in warnings[0]
    assert "segment consumer-west (7900 users)" in warnings[1] and "if B fails" in warnings[1]


def test_checks_use_the_app_s_health_path():
    result = synth_with(lambda raw: raw["app"].update(healthPath="/ready"))
    config = children_by_type(result, EDGE_PROXY, "B-edge-proxy")[CONFIGMAP].inputs["data"][
        "haproxy.cfg"
    ]
    checks = [line for line in config.splitlines() if "http-check send" in line]
    assert checks and all(" uri /ready ver HTTP/1.1 hdr Host " in line for line in checks)


def test_a_drain_changes_every_other_proxys_config_and_so_rolls_it():
    """The drained cluster's own proxy is frozen (tests/program/test_prods.py, drained clusters)."""

    def mounted(result: Synthesis, cluster: str) -> str:
        parts = children_by_type(result, EDGE_PROXY, f"{cluster}-edge-proxy")
        (volume,) = parts[DEPLOYMENT].inputs["spec"]["template"]["spec"]["volumes"]
        return str(volume["configMap"]["name"])

    before = synthesize("prod")
    after = synth_with(lambda raw: raw["clusters"]["C"].update(drained=True))
    for cluster in "AB":
        assert mounted(before, cluster) != mounted(after, cluster)
    frozen = children_by_type(after, EDGE_PROXY, "C-edge-proxy")[DEPLOYMENT]
    assert frozen.ignore_changes == ("*",)


# --- TLS to Prods on other clusters (edge.tls) -----------------------------------------------


def test_a_new_ca_is_a_new_secret_and_rolls_the_proxies(pki):
    """HAProxy reads its CA file once, when it starts: only new Pods would see a changed one."""
    ca, other = pki

    def mounted(result: Synthesis) -> str:
        spec = children_by_type(result, EDGE_PROXY, "A-edge-proxy")[DEPLOYMENT].inputs["spec"]
        return str(next(v for v in spec["template"]["spec"]["volumes"] if "secret" in v))

    before = synth_with(with_tls(ca.cert.read_text()))
    rotating = synth_with(with_tls(ca.cert.read_text() + other.cert.read_text()))
    assert mounted(before) != mounted(rotating)


def test_an_encrypted_ca_reaches_the_secret_as_the_placeholder_never_as_its_ciphertext():
    """tools.synth holds no stack key: a `secure:` value stays encrypted there, as every secure
    value does, and its ciphertext is never sent anywhere."""
    ciphertext = "v1:q2VkZ2U=:dGxzLWNhLXBsYWNlaG9sZGVy"
    result = synth_with(with_tls({"secure": ciphertext}))
    secret = children_by_type(result, EDGE_PROXY, "B-edge-proxy")[SECRET].inputs
    assert secret_value(secret["stringData"])["ca.crt"] == SECRET_PLACEHOLDER
    assert all(ciphertext not in str(r.inputs) for r in result.resources)
