"""Pulumi Deployments for the hybrid-infra stacks, as code: read config, the stack files and the
policy pack's version, plan each stack's settings, declare them. The decisions live in
`stack_deployments`; which identity a run gets, in `identity`."""

import sys
from pathlib import Path

import pulumi
import yaml

# The hybrid-infra program (and its Pulumi.<stack>.yaml files) is this project's parent.
PROGRAM = Path(__file__).resolve().parent.parent
# The engine puts only this directory on sys.path, but `stack_deployments` takes PROJECT and
# STACK_ORDER from the program's own `model.stackfile` (so the two projects cannot drift
# apart): the program's directory must be importable too, and this is the one place it is made so.
if str(PROGRAM) not in sys.path:
    sys.path.append(str(PROGRAM))

from stack_deployments import BRANCH_OF, declare, load, plan  # noqa: E402  (needs PROGRAM)

stack_files = {stack: PROGRAM / f"Pulumi.{stack}.yaml" for stack in BRANCH_OF}
documents = {s: yaml.safe_load(f.read_text()) or {} for s, f in stack_files.items() if f.is_file()}
# The pack version the trunk carries is the one every stack requires.
pack = yaml.safe_load((PROGRAM / "policy" / "PulumiPolicy.yaml").read_text())
policy_version = str(pack["version"])
config = load()
for name, value in declare(config, plan(config, documents), policy_version).items():
    pulumi.export(name, value)
