"""Prod alert rules, pure: a cluster without Prods needs no monitoring."""

from __future__ import annotations

from model.stack import parse
from tests.fixtures.program import raw_of

# --- the program (mocks) ----------------------------------------------------------------------


def test_a_cluster_without_prods_needs_no_monitoring():
    """Staging's G hosts no Prod and says nothing about monitoring: the default, none, is fine."""
    raw = raw_of("staging")
    assert "monitoring" not in raw["clusters"]["G"]
    assert parse(raw).clusters["G"].monitoring == "none"
