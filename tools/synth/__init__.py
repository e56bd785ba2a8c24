"""The program under Pulumi's mocks: what a stack file declares, without credentials.

`synthesis` runs the program and records its registrations; `tree`, `graph`, `snapshot`,
`diff` and `kinds` present them; `cli` is `python -m tools.synth`.
"""

from tools.synth.synthesis import ProgramFailed, Registered, Synthesis, stack_config, synthesize

__all__ = ["ProgramFailed", "Registered", "Synthesis", "stack_config", "synthesize"]
