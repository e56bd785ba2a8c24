"""The one OpenStack credential story: every consumer gets the same cloud and password.

`onPrem.cloud` names a clouds.yaml entry (endpoint, project, user, region). The password is
the stack's secret `openstack:password` when it has one; otherwise the clouds.yaml entry or
`OS_PASSWORD` supplies it. Three consumers take it from here:

- the explicit `openstack.Provider` (Octavia, Magnum resources), as a secret input;
- each `OctaviaNlbSync`, as a secret input (state stores it encrypted; it is never logged);
- the adopt-mode reads at program time, which need the plain value and use it only to connect.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi


@dataclass(frozen=True)
class OpenStackPassword:
    """`openstack:password` as a secret Output for resources, and plain for program-time reads."""

    secret: pulumi.Output[str] | None = None
    plain: str | None = field(default=None, repr=False)

    @classmethod
    def from_stack(cls) -> OpenStackPassword:
        config = pulumi.Config("openstack")
        return cls(secret=config.get_secret("password"), plain=config.get("password"))
