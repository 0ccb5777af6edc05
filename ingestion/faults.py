"""Named crash points for fault-injection tests (`P360_FAULT_INJECT=<point>`).

A process that reaches the named point dies at once with SIGKILL semantics (`os._exit`), exactly
like a worker killed by the OOM killer: no exception handler, no rollback message, no cleanup.
Unset in every real deployment; the tests set it only in a subprocess.
"""

from __future__ import annotations

import os


def fault_point(name: str) -> None:
    if os.environ.get("P360_FAULT_INJECT") == name:
        os._exit(137)
