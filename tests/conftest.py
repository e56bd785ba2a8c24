"""Shared fixtures live in tests/fixtures/, one module per kind of real thing they start."""

pytest_plugins = [
    "tests.fixtures.program",
    "tests.fixtures.octavia",
    "tests.fixtures.moto",
    "tests.fixtures.provider_host",
    "tests.fixtures.sync_world",
    "tests.fixtures.alertmanager",
    "tests.fixtures.kube",
    "tests.fixtures.prometheus",
    "tests.fixtures.drain_world",
    "tests.fixtures.verify_world",
    "tests.fixtures.pki",
]
