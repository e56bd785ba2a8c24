"""Where Octavia's no-op compute and network drivers keep their shared SQLite file: in the work
directory (a patch of the path they hard-code), so two servers at once never share it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

NOOP_NETWORK_DB = Path("/tmp/octavia-network-noop.db")


def isolate_noop_driver_db(workdir: Path) -> Path:
    """Point the no-op compute/network drivers' shared SQLite file into ``workdir``.

    Both drivers hard-code ``/tmp/octavia-network-noop.db``, so two servers at once (two
    pytest sessions, a benchmark next to the tests) would share ports/interfaces and each
    one's cleanup would delete the other's file. Only the path changes; the drivers do not.
    """
    from octavia.compute.drivers.noop_driver import driver as compute_noop
    from octavia.network.drivers.noop_driver import driver as network_noop

    hard_coded = f"sqlite:///{NOOP_NETWORK_DB}"
    private = workdir / NOOP_NETWORK_DB.name
    for module in (compute_noop, network_noop):
        real = module.create_engine
        if getattr(real, "_devenv_isolated", False):
            continue

        def create_engine(url: Any, *args: Any, _real: Any = real, **kwargs: Any) -> Any:
            if str(url) == hard_coded:
                url = f"sqlite:///{private}"
            return _real(url, *args, **kwargs)

        cast(Any, create_engine)._devenv_isolated = True
        module.create_engine = create_engine  # type: ignore[attr-defined]
    return private
