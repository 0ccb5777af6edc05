"""Named crash points for fault-injection tests (`P360_FAULT_INJECT=<point>[:pause]`).

- `<point>`: the process dies at once with SIGKILL semantics (`os._exit`), exactly like a worker killed by the
  OOM killer: no exception handler, no rollback message, no cleanup.
- `<point>:pause`: the process writes the file named by `P360_FAULT_PAUSE_FILE` and waits (up to 120 s) until
  the test deletes it, so the test can do something to the world at that exact point (restart PostgreSQL).

Unset in every real deployment; the tests set it only in a subprocess.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

PAUSE_LIMIT_SECONDS = 120


def fault_point(name: str) -> None:
    wanted = os.environ.get("P360_FAULT_INJECT", "")
    pause = wanted.endswith(":pause")  # point names contain ':' themselves (`ingest:after_stage`)
    if wanted.removesuffix(":pause") != name:
        return
    if pause:
        _pause(Path(os.environ["P360_FAULT_PAUSE_FILE"]))
    else:
        os._exit(137)


def _pause(marker: Path) -> None:
    marker.write_text(str(os.getpid()))
    deadline = time.monotonic() + PAUSE_LIMIT_SECONDS
    while marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
