"""hybrid-infra: load the typed stack config, build the platform, export what operators need."""

import pulumi

from components.platform import Platform, PlatformArgs
from model.stack import load

platform = Platform("platform", PlatformArgs(load()))
for name, value in platform.exports.items():
    pulumi.export(name, value)
