"""`manage.py up` (what `make up` runs): serves, runs the cluster, and stops everything on Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
from django.db import connection

pytestmark = [pytest.mark.django_db, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_up_serves_the_portal_and_stops_its_children_on_ctrl_c():
    port = free_port()
    env = {**os.environ, "P360_DB_NAME": connection.settings_dict["NAME"], "P360_PORT": str(port)}
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "up", "--no-demo"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    output = []
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            output.append(line)
            if "P360 is running" in line or process.poll() is not None:
                break
        assert "P360 is running" in "".join(output), "".join(output)
        assert httpx.get(f"http://127.0.0.1:{port}/accounts/login/", timeout=10).status_code == 200
        children = psutil.Process(process.pid).children(recursive=True)
        assert any("runserver" in " ".join(c.cmdline()) for c in children)
        assert any("qcluster" in " ".join(c.cmdline()) for c in children)
        assert any("segments_timers" in " ".join(c.cmdline()) for c in children)
    finally:
        os.kill(process.pid, signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
        output.append(rest)
    assert process.returncode == 0, "".join(output)
    assert "Stopped." in "".join(output)
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
