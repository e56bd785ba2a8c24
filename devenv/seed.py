"""Seed the local servers with one Octavia LB and its NLB target group; print the engine test
program's `engine-test:world` for them.

    python -m devenv.seed            # OS_* points at devenv.octavia, AWS_* at a moto server

Why: `pulumi preview/up` of tests/engine/program needs something to sync. This makes a real
Octavia LB (one TCP 443 listener, a pool of two members) and a moto VPC with an `ip` target
group, the shape the program's OctaviaNlbSync binds, then prints the JSON to set with
`pulumi config set engine-test:world "$(python -m devenv.seed)"`.
"""

from __future__ import annotations

import json
import sys
import uuid

import boto3
import openstack

VPC_CIDR = "10.10.0.0/16"
MEMBERS = ("172.20.0.11", "172.20.0.12")
ACTIVE_TIMEOUT = 120


def seed() -> dict[str, object]:
    conn = openstack.connect()
    project_id = uuid.uuid4().hex
    body = {
        "name": "demo",
        "project_id": project_id,
        "vip_subnet_id": str(uuid.uuid4()),
        "listeners": [
            {
                "protocol": "TCP",
                "protocol_port": 443,
                "default_pool": {
                    "name": "demo-443",
                    "protocol": "TCP",
                    "lb_algorithm": "ROUND_ROBIN",
                    "members": [{"address": a, "protocol_port": 443} for a in MEMBERS],
                },
            }
        ],
    }
    created = conn.load_balancer.post("/lbaas/loadbalancers", json={"loadbalancer": body})
    created.raise_for_status()
    lb_id = created.json()["loadbalancer"]["id"]
    conn.load_balancer.wait_for_load_balancer(lb_id, status="ACTIVE", wait=ACTIVE_TIMEOUT)
    (pool,) = conn.load_balancer.pools(loadbalancer_id=lb_id)

    vpc = boto3.client("ec2").create_vpc(CidrBlock=VPC_CIDR)["Vpc"]["VpcId"]
    group = boto3.client("elbv2").create_target_group(
        Name="demo-443", Protocol="TCP", Port=443, VpcId=vpc, TargetType="ip"
    )["TargetGroups"][0]["TargetGroupArn"]
    return {
        "loadbalancerId": lb_id,
        "projectId": project_id,
        "bindings": [{"poolId": pool.id, "targetGroupArn": group}],
        "vpcCidrs": [VPC_CIDR],
        "declareMembers": False,
    }


def main() -> int:
    print("seeding Octavia LB 'demo' and target group 'demo-443'", file=sys.stderr)
    print(json.dumps(seed()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
