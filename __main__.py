"""hybrid-infra: load the typed stack config, build the platform, export what operators need."""

import pulumi

from components.clusters import fleet_problems
from components.config import load
from components.platform import Platform

platform = Platform("platform", load(checks=[fleet_problems]))
for name, value in platform.exports.items():
    pulumi.export(name, value)
