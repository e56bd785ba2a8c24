"""hybrid-infra: load the typed stack config, build the platform, export what operators need."""

import pulumi

from components.clusters import fleet_problems
from components.platform import Platform
from model.config import load

platform = Platform("platform", load(checks=[fleet_problems]))
for name, value in platform.exports.items():
    pulumi.export(name, value)
