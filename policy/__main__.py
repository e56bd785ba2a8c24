"""The hybrid-infra policy pack. Constructing `PolicyPack` starts the analyzer's gRPC server and
blocks, so it lives here and nowhere else; the rules are in `hybrid_policies`.

Run it against a stack: `pulumi preview --stack prod --policy-pack policy`.
"""

from hybrid_policies import PACK_NAME, POLICIES
from pulumi_policy import PolicyPack

PolicyPack(name=PACK_NAME, policies=list(POLICIES))
