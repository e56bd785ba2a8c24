"""What every command-line tool here shares: one error for a command used wrongly, and one
mapping from how a run ended to its exit status.

    0  done
    1  the tool did its job and the answer is no: a refusal (the message says what to do
       instead), or changes found where `--exit-code` asked to be told
    2  the command line or an input file is wrong: `error: <what>` on stderr, no traceback
    3  a bug in the tool: its traceback on stderr

`--help` and argparse's own usage errors keep argparse's behaviour (exit 0 and 2).
"""

from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Callable
from typing import ParamSpec

OK, REFUSED, USAGE, BUG = 0, 1, 2, 3

P = ParamSpec("P")


class UsageError(Exception):
    """The command line or an input file is wrong; the message says how."""


def command(
    *,
    usage: tuple[type[Exception], ...] = (),
    refused: tuple[type[Exception], ...] = (),
    refused_as: str = "refused",
) -> Callable[[Callable[P, int]], Callable[P, int]]:
    """Make `main` return its exit status whatever it raises: its own code when it returns;
    `error: <message>` and 2 for a `UsageError` or one of `usage` (the other errors a user
    fixes: a broken stack file, say); `<refused_as>: <message>` and 1 for one of `refused`;
    a traceback and 3 for anything else.

        @cli.command(usage=(StackFileError,), refused=(PromotionRefused,))
        def main(argv: Sequence[str] | None = None) -> int: ...
    """

    wrong_use: tuple[type[Exception], ...] = (UsageError, *usage)

    def wrap(main: Callable[P, int]) -> Callable[P, int]:
        @functools.wraps(main)
        def run(*args: P.args, **kwargs: P.kwargs) -> int:
            try:
                return main(*args, **kwargs)
            except wrong_use as error:
                print(f"error: {error}", file=sys.stderr)
                return USAGE
            except refused as error:
                print(f"{refused_as}: {error}", file=sys.stderr)
                return REFUSED
            except Exception:
                traceback.print_exc()
                return BUG

        return run

    return wrap
