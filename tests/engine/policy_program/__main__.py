"""Programs that break a mandatory rule of the policy pack, one per `case` in the config.

- `twinless` (the default): a hybrid LB component with nothing under it, no NLB twin, no sync.
- `ssh-in-halves`: a security group whose two rules each admit half of IPv4 to SSH; their
  provider is a stand-in (tests/engine/stand_in_provider.py), as the aws plugin cannot be built
  here, so the types and inputs are the ones the aws provider would check.
"""

import pulumi

SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
SECURITY_GROUP_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"


class HybridLoadBalancer(pulumi.ComponentResource):
    def __init__(self, name: str) -> None:
        super().__init__("hybrid-infra:lb:HybridLoadBalancer", name, None, None)
        self.register_outputs({})


case = pulumi.Config().get("case") or "twinless"
if case == "twinless":
    HybridLoadBalancer("shop")
elif case == "ssh-in-halves":
    group = pulumi.CustomResource(SECURITY_GROUP, "bastion", {"vpcId": "vpc-0a1b2c3d"})
    for i, half in enumerate(("0.0.0.0/1", "128.0.0.0/1")):
        pulumi.CustomResource(
            SECURITY_GROUP_RULE,
            f"ssh-{i}",
            {
                "type": "ingress",
                "securityGroupId": group.id,
                "protocol": "tcp",
                "fromPort": 22,
                "toPort": 22,
                "cidrBlocks": [half],
            },
        )
else:
    raise ValueError(f"unknown case {case!r}")
