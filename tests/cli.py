"""Running manage.py in a subprocess, as an operator would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Variables of the test process that must not leak into the command's environment.
_TEST_ONLY = ("DJANGO_ALLOW_ASYNC_UNSAFE",)


def run_manage(*args: str, env: dict[str, str] | None = None, clean: bool = False) -> subprocess.CompletedProcess[str]:
    """Run `manage.py ARGS`; `clean` drops every P360_* / SECRET_KEY variable before applying `env`."""
    base = {k: v for k, v in os.environ.items() if k not in _TEST_ONLY}
    if clean:
        base = {k: v for k, v in base.items() if not k.startswith(("P360_", "SECRET_KEY"))}
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        timeout=120,
        check=False,
    )
