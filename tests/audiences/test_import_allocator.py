"""polars' allocator keeps freed pages lazily (p360/__init__.py, imported before the settings and anything that
imports polars): set when the package is imported, and an operator's own setting wins."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CODE = "import os, sys; import p360; print(os.environ['_RJEM_MALLOC_CONF'], 'polars' in sys.modules)"


def _run(extra: dict[str, str]) -> str:
    env = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"} | extra
    done = subprocess.run(
        [sys.executable, "-c", CODE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True
    )
    return done.stdout.strip().splitlines()[-1]


def test_the_package_sets_jemallocs_lazy_purge_without_importing_polars() -> None:
    assert _run({}) == "muzzy_decay_ms:10000 False"


def test_an_operators_allocator_setting_wins() -> None:
    assert _run({"_RJEM_MALLOC_CONF": "dirty_decay_ms:1000"}) == "dirty_decay_ms:1000 False"
