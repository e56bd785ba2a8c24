"""What verify found, one row per thing checked, for people (a table) and machines (JSON).

A row is `check, subject, result, detail`. Results:

- `ok`: checked, and as it should be;
- `FAIL`: checked, and wrong (a stale target, a Prod at another version, a misrouted segment);
- `ERROR`: could not be checked (an output missing, an API that does not answer, credentials
  refused): not green either, since an unknown is not a pass;
- `skip`: deliberately not checked (a drained cluster, whose users are elsewhere).

The exit code is 1 when any row is FAIL or ERROR. Every text goes through `Redactor` before it
is printed, so a credential that some error message carried never reaches the output.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Literal

Result = Literal["ok", "FAIL", "ERROR", "skip"]
GREEN: frozenset[str] = frozenset({"ok", "skip"})
REDACTED = "[secret]"
MIN_SECRET = 6
"""Shorter strings are not scrubbed: they would mangle ordinary words and cannot be a key."""


@dataclass(frozen=True, slots=True)
class Row:
    check: str
    subject: str
    result: Result
    detail: str

    @property
    def green(self) -> bool:
        return self.result in GREEN


def ok(check: str, subject: str, detail: str = "") -> Row:
    return Row(check, subject, "ok", detail)


def fail(check: str, subject: str, detail: str) -> Row:
    return Row(check, subject, "FAIL", detail)


def error(check: str, subject: str, detail: str) -> Row:
    return Row(check, subject, "ERROR", detail)


def skip(check: str, subject: str, detail: str) -> Row:
    return Row(check, subject, "skip", detail)


def exit_code(rows: Iterable[Row]) -> int:
    return 0 if all(row.green for row in rows) else 1


class Redactor:
    """Replaces every known secret (tokens, keys, whole kubeconfigs) with `[secret]`."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        self._secrets.update(s for s in secrets if len(s) >= MIN_SECRET)

    def __call__(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, REDACTED)
        return text

    def row(self, row: Row) -> Row:
        return Row(self(row.check), self(row.subject), row.result, self(row.detail))


def table(rows: Sequence[Row]) -> str:
    """Aligned columns; the detail is last and never cut, so nothing said is lost."""
    lines = [("check", "subject", "result", "detail")]
    lines += [(r.check, r.subject, r.result, r.detail) for r in rows]
    widths = [max(len(line[column]) for line in lines) for column in range(3)]
    return "\n".join(
        "  ".join(
            [*(cell.ljust(w) for cell, w in zip(line, widths, strict=False)), line[3]]
        ).rstrip()
        for line in lines
    )


def summary(rows: Sequence[Row]) -> str:
    counts = {result: sum(r.result == result for r in rows) for result in ("ok", "FAIL", "ERROR")}
    skipped = sum(r.result == "skip" for r in rows)
    verdict = "green" if exit_code(rows) == 0 else "NOT green"
    parts = [f"{counts['ok']} ok", f"{counts['FAIL']} FAIL", f"{counts['ERROR']} ERROR"]
    if skipped:
        parts.append(f"{skipped} skipped")
    return f"{verdict}: {', '.join(parts)}"


def as_json(rows: Sequence[Row]) -> str:
    return json.dumps({"green": exit_code(rows) == 0, "rows": [asdict(r) for r in rows]}, indent=2)
