"""Fault injection for the trust tests: `P360_FAULT=<point>` kills this process at that point.

Used by tests that prove a crash mid-job leaves nothing half-written (the process dies with SIGKILL,
as under the OOM killer, so no cleanup code runs). A no-op unless the variable names the point.
"""

from __future__ import annotations

import os
import signal


def fault_point(name: str) -> None:
    if os.environ.get("P360_FAULT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
