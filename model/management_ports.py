"""Management ports: remote administration, databases and the Kubernetes and OpenStack control
planes. A twin never carries one, and no rule opens one to the world (pure).

One named list. The program refuses it on every twin (`model.rules` for the listeners and
members a stack file declares, `model.nlb_mapping.without_management_ports` for listeners read
from Octavia); the policy pack keeps a copy, because a published pack imports nothing of ours,
and `tests/test_policy.py` checks that the two agree.

Sources (docs/cloud-rules.md, "Self-service fence and policy pack"):

- remote administration and databases: AWS Security Hub control EC2.19, "Security groups should
  not allow unrestricted access to ports with high risk" (its remote-access, file-sharing and
  data-store ports; not its web-development ports 3000, 8080, 8088, 8888 or mail), and CIS AWS
  Foundations Benchmark v3.0.0 5.1-5.3 (22 and 3389, as Security Hub EC2.21, EC2.53, EC2.54);
- data stores that EC2.19 does not list: Prowler's `ec2_instance_port_*_exposed_to_internet`
  checks (Oracle, Redis, Memcached, MongoDB);
- Kubernetes: kubernetes.io, "Ports and Protocols" (control plane and kubelet);
- OpenStack: the OpenStack Installation Guide, "Firewalls and default ports".
"""

from __future__ import annotations

from collections.abc import Mapping

MANAGEMENT_PORTS: Mapping[int, str] = {
    # Remote administration and file sharing (EC2.19; CIS 5.1-5.3 for 22 and 3389).
    22: "SSH",
    23: "Telnet",
    135: "Windows RPC",
    445: "SMB",
    3389: "RDP",
    # Data stores (EC2.19; Prowler for Oracle, Redis, Memcached, MongoDB).
    1433: "SQL Server",
    1434: "SQL Server browser",
    1521: "Oracle",
    3306: "MySQL",
    5432: "PostgreSQL",
    5601: "OpenSearch Dashboards",
    6379: "Redis",
    9200: "OpenSearch",
    9300: "OpenSearch transport",
    11211: "Memcached",
    27017: "MongoDB",
    # Kubernetes (kubernetes.io, "Ports and Protocols").
    2379: "etcd",
    2380: "etcd peer",
    6443: "Kubernetes API",
    10250: "kubelet",
    10257: "kube-controller-manager",
    10259: "kube-scheduler",
    # OpenStack ("Firewalls and default ports").
    5000: "Keystone",
    5672: "RabbitMQ",
    8004: "Heat",
    8774: "Nova",
    8776: "Cinder",
    8778: "Placement",
    9292: "Glance",
    9511: "Magnum",
    9696: "Neutron",
    9876: "Octavia",
    35357: "Keystone admin",
}


def management_port(port: int) -> str | None:
    """`6443 (Kubernetes API)` for a management port, None for any other."""
    name = MANAGEMENT_PORTS.get(port)
    return None if name is None else f"{port} ({name})"
