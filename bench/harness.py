"""What every bench here does alike: it says what it is doing on stderr, keeps library chatter
out of its report, cleans up on SIGTERM as on Ctrl-C, and writes its figures into
bench/README.md. Import it first: it puts the project root on `sys.path`."""

from __future__ import annotations

import logging
import signal
import sys
import warnings
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

README = Path(__file__).resolve().parent / "README.md"


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def quiet_libraries() -> None:
    """Library chatter (SDK deprecations, werkzeug access log) would drown the report."""
    warnings.simplefilter("ignore")
    for name in ("werkzeug", "openstack", "keystoneauth", "botocore", "urllib3"):
        logging.getLogger(name).setLevel(logging.ERROR)


def raise_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt so the same cleanup runs as on Ctrl-C."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


def write_figures(name: str, body: str) -> None:
    """Replace the figures between `<!-- name:begin -->` and `<!-- name:end -->` in the README."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = README.read_text()
    head, _, rest = text.partition(begin)
    _, _, tail = rest.partition(end)
    README.write_text(f"{head}{begin}\n{body}\n{end}{tail}")
