"""One SQLite transaction at a time (a patch of the engine's dialect): Octavia is written for
MySQL row locks, and on SQLite two overlapping transactions fail instead of waiting."""

from __future__ import annotations

import threading
from typing import Any


class _TransactionGate:
    """Admit one database transaction at a time; re-entrant for the thread that holds it.

    Unlike an RLock it may be left from another thread: a pooled connection can be rolled
    back from wherever it is returned.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._owner: int | None = None
        self._depth = 0

    def enter(self) -> None:
        me = threading.get_ident()
        with self._cond:
            while self._owner not in (None, me):
                self._cond.wait()
            self._owner = me
            self._depth += 1

    def leave(self) -> None:
        with self._cond:
            self._depth -= 1
            if self._depth <= 0:
                self._owner, self._depth = None, 0
                self._cond.notify_all()


def serialize_transactions(engine: Any) -> None:
    """Run Octavia's SQLite transactions one after another instead of failing them.

    Octavia is written for MySQL row locks. On SQLite two overlapping transactions that both
    read then write deadlock on the file lock, and SQLite answers one of them at once with
    "database is locked" (a 500 from the API) instead of waiting; parallel clients such as
    Pulumi hit it within seconds. Holding a process-wide gate from BEGIN to after
    COMMIT/ROLLBACK makes them wait their turn instead. Wraps this engine's dialect only.
    """
    dialect = engine.dialect
    if getattr(dialect, "_devenv_gate", None) is not None:
        return
    gate = _TransactionGate()
    holding: set[int] = set()  # ids of DBAPI connections inside a gated transaction
    holding_lock = threading.Lock()
    real_begin, real_commit, real_rollback, real_close = (
        dialect.do_begin,
        dialect.do_commit,
        dialect.do_rollback,
        dialect.do_close,
    )

    def _release(dbapi_conn: Any) -> None:
        with holding_lock:
            held = id(dbapi_conn) in holding
            holding.discard(id(dbapi_conn))
        if held:
            gate.leave()

    def do_begin(dbapi_conn: Any) -> None:
        gate.enter()
        with holding_lock:
            holding.add(id(dbapi_conn))
        try:
            real_begin(dbapi_conn)
        except BaseException:
            _release(dbapi_conn)
            raise

    def do_commit(dbapi_conn: Any) -> None:
        try:
            real_commit(dbapi_conn)
        finally:
            _release(dbapi_conn)

    def do_rollback(dbapi_conn: Any) -> None:
        # Also called by the pool's reset-on-return, outside any transaction: then a no-op.
        try:
            real_rollback(dbapi_conn)
        finally:
            _release(dbapi_conn)

    def do_close(dbapi_conn: Any) -> None:
        # An invalidated connection is closed without a rollback: never strand the gate.
        try:
            real_close(dbapi_conn)
        finally:
            _release(dbapi_conn)

    dialect.do_begin, dialect.do_commit = do_begin, do_commit
    dialect.do_rollback, dialect.do_close = do_rollback, do_close
    dialect._devenv_gate = gate
