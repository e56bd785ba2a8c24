"""Kubernetes values in the API's own form (camelCase), as the pure model computes them.

pulumi-kubernetes sends a dict input as it is: a wire-form value needs no translation into the
SDK's Args classes (the mocks record it unchanged, and the local kube-apiserver admits the
Pods built from it: tests/live/test_hardened_workloads.py). Only the SDK's type hints are narrower.
"""

from __future__ import annotations

from typing import Any


def wire(value: object) -> Any:
    """`value` as an SDK input: a dict (or list of dicts) in the API's field names."""
    return value
