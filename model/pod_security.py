"""How every Pod of the platform runs: the `restricted` Pod Security Standard (pure).

Each namespace the program creates enforces `restricted` through Pod Security Admission, so a
Pod that does not meet it is refused by the API server, whoever created it. The Prods and the
edge proxies are written to meet it, and a little more (Kubernetes docs, "Pod Security
Standards"):

- they run as a fixed non-root user and group (`WorkloadSecurity`): the API server checks
  `runAsNonRoot` against a numeric user only, and an image's `USER haproxy` is a name;
- no privilege escalation, every capability dropped, the runtime's default seccomp profile;
- a read-only root filesystem, with an emptyDir at each of the workload's `writablePaths`;
- no service-account token: nothing in them calls the Kubernetes API.

The values are the API's wire form (camelCase), ready for a Pod spec.
"""

from __future__ import annotations

import re
from typing import Any

from model.config import WorkloadSecurity

PSA_VERSION = "v1.34"
"""The `restricted` profile as Kubernetes 1.34 defines it: pinned, so a cluster upgrade never
changes what a namespace admits; the local kube-apiserver the tests run is 1.34."""


def psa_labels() -> dict[str, str]:
    """Namespace labels: enforce `restricted`, and warn about it, at the pinned version."""
    return {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": PSA_VERSION,
        "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/warn-version": PSA_VERSION,
    }


def pod_security_context(security: WorkloadSecurity) -> dict[str, Any]:
    """The Pod's: its user and group, and the runtime's default seccomp profile."""
    return {
        "runAsNonRoot": True,
        "runAsUser": security.run_as_user,
        "runAsGroup": security.run_as_group,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    """Each container's: no way up, nothing to write outside its emptyDirs (the user, group
    and seccomp profile come from the Pod's)."""
    return {
        "privileged": False,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def writable_volumes(security: WorkloadSecurity) -> list[dict[str, Any]]:
    """One emptyDir per writable path."""
    return [{"name": _volume_name(path), "emptyDir": {}} for path in security.writable_paths]


def writable_mounts(security: WorkloadSecurity) -> list[dict[str, Any]]:
    """Where the container sees each emptyDir of `writable_volumes`."""
    return [{"name": _volume_name(path), "mountPath": path} for path in security.writable_paths]


def _volume_name(path: str) -> str:
    """`/var/cache/app` → `writable-var-cache-app`: a DNS label per path."""
    return "writable-" + re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-")
