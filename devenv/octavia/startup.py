"""Start-up in seconds rather than tens: WSME's attribute ordering made cheap (a patch that
keeps its rule), and compiled bytecode cached outside the tree."""

from __future__ import annotations

import ast
import functools
import inspect
import linecache
import os
import sys
from pathlib import Path
from typing import Any, cast


@functools.cache
def _class_starts(filename: str) -> dict[str, int]:
    """Map class ``__qualname__`` -> 0-based first line (decorator included), for one file.

    Same walk and first-match rule as ``inspect._ClassFinder``, but one parse per file
    instead of one per class.
    """
    starts: dict[str, int] = {}

    def walk(node: ast.AST, stack: list[str]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                walk(child, [*stack, child.name, "<locals>"])
            elif isinstance(child, ast.ClassDef):
                first = child.decorator_list[0] if child.decorator_list else child
                starts.setdefault(".".join([*stack, child.name]), first.lineno - 1)
                walk(child, [*stack, child.name])
            else:
                walk(child, stack)

    walk(ast.parse("".join(linecache.getlines(filename))), [])
    return starts


@functools.cache
def _class_source_lines(cls: type) -> tuple[str, ...]:
    """What ``inspect.getsourcelines(cls)[0]`` returns, memoised."""
    filename = inspect.getsourcefile(cls)
    if filename is None:
        raise OSError(f"no source for {cls!r}")
    lines = linecache.getlines(filename)
    start = _class_starts(filename).get(cls.__qualname__)
    if start is None:
        raise OSError(f"class {cls.__qualname__} not found in {filename}")
    return tuple(inspect.getblock(lines[start:]))


def speed_up_wsme() -> None:
    """Make WSME's attribute ordering cheap; it dominated start-up (~60% of it).

    ``wsme.types.sort_attributes`` orders a type's attributes by the order of ``name=`` lines
    in the source of every class in its MRO, and fetches that source with
    ``inspect.getsourcelines``, which on Python 3.11 re-parses the whole module for every
    class (426 parses of octavia's type modules). This keeps WSME's exact rule and only
    memoises the source lookup; any lookup failure falls back to WSME's own function.
    """
    import wsme.types

    original = wsme.types.sort_attributes
    if getattr(original, "_devenv_fast", False):
        return

    def sort_attributes(class_: type, attributes: list[Any]) -> None:
        if not attributes or hasattr(class_, "_wsme_attr_order"):
            original(class_, attributes)
            return
        attrs = {a.key: a for a in attributes}
        try:
            lines = [
                line
                for cls in inspect.getmro(class_)
                if cls is not object
                for line in _class_source_lines(cls)
            ]
        except (TypeError, OSError):
            original(class_, attributes)
            return
        order: list[str] = []
        for raw in lines:
            line = raw.strip().replace(" ", "")
            if "=" in line:
                name = line[: line.index("=")]
                if name in attrs and name not in order:
                    order.append(name)
        order.extend(name for name in attrs if name not in order)
        attributes[:] = [attrs[name] for name in order]

    cast(Any, sort_attributes)._devenv_fast = True
    wsme.types.sort_attributes = sort_attributes


def use_bytecode_cache() -> None:
    """Cache compiled bytecode outside the tree: without it every start recompiles ~2000 files.

    The dev environment sets PYTHONDONTWRITEBYTECODE to keep .venv and the repo free of
    ``__pycache__``; a prefix under ~/.cache honours that and saves ~4 s per start.
    Override the directory with DEVENV_PYCACHE_PREFIX (empty string disables).
    """
    if sys.pycache_prefix is not None:
        return
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hybrid-infra"
    prefix = os.environ.get("DEVENV_PYCACHE_PREFIX", str(default / "pycache"))
    if not prefix:
        return
    try:
        Path(prefix).mkdir(parents=True, exist_ok=True)
    except OSError:
        return
    sys.pycache_prefix = prefix
    sys.dont_write_bytecode = False
