"""up: migrate every schema, load the demo, then serve the portal and run the task cluster.

`make up` calls this. Ctrl-C (or SIGTERM) stops its children: SIGTERM first, SIGKILL after a
timeout (django-q2's qcluster can hang on SIGTERM, #346). The embedded PostgreSQL, if used, stops
when the last process holding it exits.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandParser

from p360.core.commands import CommandFailed, P360Command
from p360.core.jobs.schedules import ensure_schedules
from p360.demo import load_demo

STOP_TIMEOUT_SECONDS = 10


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def stop_process_group(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT_SECONDS) -> None:
    """SIGTERM the child (it stops its own workers), then SIGKILL its whole process group after `timeout`."""
    if process.poll() is None:
        try:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # leftovers: workers of a cluster that hung on SIGTERM
    process.wait()


def _wait_until_listening(host: str, port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if not _port_free(host, port):
            return True
        time.sleep(0.1)
    return False


def release_embedded_database() -> None:
    """Forget the handles of children that were killed (SIGTERM/SIGKILL skip their atexit), so
    that this process, the last holder, stops the embedded server when it exits."""
    if settings.EMBEDDED_DATABASE:
        from django.db import connections

        from p360.embedded_pg import prune_dead_handles

        connections.close_all()
        prune_dead_handles(settings.DATA_DIR / "pgdata")


class Command(P360Command):
    help = "Migrate, load demo data, then serve on http://127.0.0.1:8000 with the task cluster (Ctrl-C stops)."

    def add_command_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=os.environ.get("P360_HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("P360_PORT", "8000")))
        parser.add_argument("--no-demo", action="store_true", help="skip loading the demo data")
        parser.add_argument("--no-cluster", action="store_true", help="do not start the task cluster")

    def run(self, **options: Any) -> dict[str, Any]:
        host, port = options["host"], options["port"]
        if not _port_free(host, port):
            raise CommandFailed(f"port {port} on {host} is in use; stop what uses it or set P360_PORT")
        started = time.monotonic()
        self._say("Applying migrations (public schema and every organisation)...")
        call_command("migrate_schemas", interactive=False, verbosity=0)
        ensure_schedules()
        if not options["no_demo"]:
            self._say("Loading the demo data (first run: 91 days of metrics through the real ETL, about 30 s)...")
        demo = None if options["no_demo"] else load_demo()
        self._say(f"Ready in {time.monotonic() - started:.1f} s.")

        children = self._start_children(host, port, with_cluster=not options["no_cluster"])
        if not _wait_until_listening(host, port, children["web server"]):
            for process in children.values():
                stop_process_group(process)
            raise CommandFailed(f"the web server did not start listening on {host}:{port}; see the messages above")
        self._print_banner(host, port, demo)
        stopping = False

        def request_stop(signum: int, frame: Any) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)
        exit_code = 0
        try:
            while not stopping:
                for name, process in children.items():
                    if process.poll() is not None:
                        self.stderr.write(f"error: {name} exited with code {process.returncode}; stopping")
                        stopping, exit_code = True, 1
                time.sleep(0.3)
        finally:
            self._say("Stopping...")
            for process in children.values():
                stop_process_group(process)
            release_embedded_database()
            self._say("Stopped.")
        if exit_code:
            raise CommandFailed("a child process died; see the messages above")
        return {}

    def render(self, result: dict[str, Any]) -> str:
        return ""

    def _start_children(self, host: str, port: int, *, with_cluster: bool) -> dict[str, subprocess.Popen[bytes]]:
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        children = {
            "web server": subprocess.Popen(  # noqa: S603  (our own interpreter and manage.py)
                [*manage, "runserver", f"{host}:{port}", "--noreload", "--skip-checks"],
                env=env,
                start_new_session=True,  # own process group: Ctrl-C reaches us, we stop them in order
            )
        }
        if with_cluster:
            children["task cluster"] = subprocess.Popen(  # noqa: S603
                [*manage, "qcluster"], env=env, start_new_session=True
            )
            # Event segments' evaluator loop: queued event batches (over SEGMENTS_EVALUATE_INLINE_MAX) and window
            # exits are evaluated within a second, not only by the every-minute safety-net schedule.
            children["segment timers"] = subprocess.Popen(  # noqa: S603
                [*manage, "segments_timers"], env=env, start_new_session=True
            )
            children["segment sends"] = subprocess.Popen(  # noqa: S603  (trigger campaigns' sends, within a second)
                [*manage, "segments_deliver"], env=env, start_new_session=True
            )
        return children

    def _print_banner(self, host: str, port: int, demo: dict[str, Any] | None) -> None:
        base = f"http://{host}:{port}"
        lines = [
            "",
            "=" * 72,
            f"  P360 is running at {base}/",
            f"  Sign in:       {base}/accounts/login/",
            f"  Global admin:  {base}/admin/",
            f"  Org pages:     {base}/o/acme/   and   {base}/o/globex/",
            f"  Org admin:     {base}/o/acme/admin/",
            f"  API docs:      {base}/api/docs/      Health: {base}/healthz",
            f"  Database:      {'embedded PostgreSQL under ' + str(settings.DATA_DIR / 'pgdata') if settings.EMBEDDED_DATABASE else 'DATABASE_URL'}",
        ]
        if demo:
            lines.append("  Demo logins:")
            lines += [
                f"    {login['email']:<26} {login['role']:<17} password: {login['password']}"
                for login in demo["logins"]
            ]
        lines += ["  Ctrl-C stops everything.", "=" * 72, ""]
        self.stdout.write("\n".join(lines))
        self.stdout.flush()

    def _say(self, message: str) -> None:
        self.stdout.write(message)
        self.stdout.flush()
