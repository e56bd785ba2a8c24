"""The engine test program: one sync, its members, drains and a note, all from one JSON config.

`engine-test:world` (JSON) describes the Octavia LB, its pools bound to target groups, the
members this stack declares, the node pools to drain and a note; `engine-test:kubeconfig` is
the secret kubeconfig of a local Kubernetes cluster (devenv.kube).
"""

import pulumi

from providers.node_pool_drain import NodePoolDrain
from providers.octavia_nlb_sync import OctaviaNlbSync
from tests.engine.program.stand_ins import Note, StandInMember

config = pulumi.Config("engine-test")
world = config.require_object("world")

Note("note", world.get("note", ""))
if "releasePlan" in world:  # what the platform exports, for tools.release.waves' applied check
    pulumi.export("releasePlan", world["releasePlan"])

members = {}
for m in world.get("members", []):
    key = f"{m['address']}:{m['port']}"
    members[(m["poolId"], key)] = StandInMember(
        f"member-{key}",
        {
            "loadbalancer_id": world["loadbalancerId"],
            "project_id": world["projectId"],
            "pool_id": m["poolId"],
            "address": m["address"],
            "port": m["port"],
            "weight": m.get("weight", 1),
        },
        pulumi.ResourceOptions(delete_before_replace=True),
    )


def binding(b: dict) -> dict:
    """A pool → target group binding; with the pool's declared members unless told not to."""
    bound = {"pool_id": b["poolId"], "target_group_arn": b["targetGroupArn"]}
    if world.get("declareMembers", True):
        bound["members"] = [
            {"address": m["address"], "port": m["port"], "weight": m.get("weight", 1)}
            for m in world.get("members", [])
            if m["poolId"] == b["poolId"]
        ]
    return bound


loadbalancer_id: pulumi.Input[str] = world.get("loadbalancerId", "")
if world.get("lbIdAfterGate"):
    # An input the engine cannot know at preview: it waits for the id of a resource not created.
    loadbalancer_id = Note("gate", "gate").id.apply(lambda _: world["loadbalancerId"])

if world.get("bindings"):
    sync = OctaviaNlbSync(
        "sync",
        loadbalancer_id=loadbalancer_id,
        bindings=[binding(b) for b in world["bindings"]],
        vpc_cidrs=world["vpcCidrs"],
        os_password=config.get_secret("osPassword"),
        opts=pulumi.ResourceOptions(depends_on=list(members.values())),
    )
    pulumi.export("targets", sync.targets)
    pulumi.export("pending", sync.pending)

for drain in world.get("drains", []):
    NodePoolDrain(
        f"drain-{drain['pool']}",
        pool_name=drain["pool"],
        kubeconfig=config.require_secret("kubeconfig"),
        min_ready_nodes=drain.get("minReadyNodes", 1),
        ready_timeout_seconds=30,
        drain_timeout_seconds=30,
        poll_seconds=0.05,
    )
