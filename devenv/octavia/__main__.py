"""``python -m devenv.octavia --workdir DIR [--port N]``: serve the local Octavia API."""

import sys

from devenv.octavia.server import main

sys.exit(main())
