"""One hybrid LB component with nothing under it: no NLB twin, no member sync."""

import pulumi


class HybridLoadBalancer(pulumi.ComponentResource):
    def __init__(self, name: str) -> None:
        super().__init__("hybrid-infra:lb:HybridLoadBalancer", name, None, None)
        self.register_outputs({})


HybridLoadBalancer("shop")
