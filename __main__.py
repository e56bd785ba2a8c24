"""hybrid-infra: load the typed stack config, build the platform, export what operators need."""

import pulumi

from components.platform import Platform, PlatformArgs
from components.stack_config import StackConfigError, load
from model.config import ConfigError

try:
    platform = Platform("platform", PlatformArgs(load()))
except ConfigError as error:
    # A message for the operator, every problem with its key path; no traceback.
    raise StackConfigError.of(error) from None
for name, value in platform.exports.items():
    pulumi.export(name, value)
