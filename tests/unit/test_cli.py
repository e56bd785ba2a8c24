"""The exit statuses every tool shares (`tools.cli`): what each way a run can end prints, and
the status it returns. The tools' own mistakes are in test_tool_errors.py, as a user runs them."""

from __future__ import annotations

import pytest

from tools import cli


class Refusal(Exception):
    pass


class BrokenFile(Exception):
    pass


@cli.command(usage=(BrokenFile,), refused=(Refusal,), refused_as="promotion refused")
def tool(outcome: BaseException | int) -> int:
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def test_a_returned_status_passes_through(capsys):
    assert tool(0) == cli.OK
    assert tool(1) == 1
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("error", [cli.UsageError("--x needs --y"), BrokenFile("--x needs --y")])
def test_a_usage_error_is_one_line_and_2(capsys, error):
    assert tool(error) == cli.USAGE == 2
    assert capsys.readouterr().err == "error: --x needs --y\n"


def test_a_refusal_is_one_line_under_its_own_name_and_1(capsys):
    assert tool(Refusal("not verified")) == cli.REFUSED == 1
    assert capsys.readouterr().err == "promotion refused: not verified\n"


def test_anything_else_is_a_bug_with_its_traceback_and_3(capsys):
    assert tool(KeyError("oops")) == cli.BUG == 3
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert err.rstrip().endswith("KeyError: 'oops'")


def test_an_interrupt_or_an_exit_is_not_mapped():
    with pytest.raises(KeyboardInterrupt):
        tool(KeyboardInterrupt())
    with pytest.raises(SystemExit):
        tool(SystemExit(2))


def test_the_wrapped_main_keeps_its_name_and_doc():
    assert tool.__name__ == "tool"
