"""A real OpenStack Octavia v2 API on 127.0.0.1, in one process, for tests and benchmarks.

Why one process: Octavia normally runs an API and a controller worker talking over RabbitMQ.
Here both share oslo.messaging's in-memory ``fake://`` transport, every backend driver
(amphora, compute, network, image, volume) is Octavia's own no-op driver, and the database is
a SQLite file in the work directory (so is the no-op drivers' own SQLite file, which Octavia
would put in /tmp). Everything above the drivers (API validation, the provisioning-status
state machine, the 409s, the taskflow flows) is the real code.

Run it with ``uv run python -m devenv.octavia --workdir DIR [--port 0]`` (`server`); from
Python, use :class:`OctaviaServer` (`process`). The other modules each do one job for the
server: `config` (octavia.conf), `ca` (a throwaway CA), `schema` (the SQLite schema),
`transactions`, `noop_drivers` and `startup` (the patches that make it work and start fast on
SQLite in one process).

Known unfaithful points: no authentication (``auth_strategy = noauth``, so ``project_id``
must be given on create), ``operating_status`` stays OFFLINE, VIPs default to 198.51.100.1,
and any UUID is accepted as ``vip_subnet_id``.
"""

from devenv.octavia.noop_drivers import NOOP_NETWORK_DB
from devenv.octavia.process import OctaviaServer, OctaviaStartError
from devenv.octavia.server import READY_PREFIX

__all__ = ["NOOP_NETWORK_DB", "READY_PREFIX", "OctaviaServer", "OctaviaStartError"]
