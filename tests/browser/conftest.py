"""Browser-test fixtures: a live HTTP server that never flushes the database, and headless Chromium.

Why not pytest-django's ``live_server``? It pulls in ``transactional_db``, which TRUNCATEs every
table after each test. That would wipe the session-wide organisations, users and canary rows that
``tests/conftest.py`` creates once in ``django_db_setup`` (and django-tenants' schemas keep their
tables, so the damage is partial and order-dependent).

Instead, ``live_url`` (module scope) runs the same kind of server Django's ``LiveServerTestCase``
uses, but shares the main thread's database connection with the server threads (like Django does
for in-memory SQLite) and wraps the whole module in one ``transaction.atomic()`` that is rolled back
at the end. Everything the browser causes (sessions, ``last_login``, audit rows for logins, ...) is
therefore discarded and the database is left exactly as the rest of the suite expects it, whatever
order the tests run in. To make one connection safe for several threads:

* requests are handled one at a time (a lock around the WSGI app; sockets are still read in
  parallel, so Chromium's speculative connections cannot stall the server);
* ``close_old_connections`` is disconnected from the request signals, and the server never closes
  the shared connection (closing it would end the module's transaction).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
REPO_ROOT = Path(__file__).resolve().parents[2]

# Playwright's sync API keeps an asyncio loop "running" in the main thread; without this Django
# would refuse the (synchronous, main-thread) database work of the test fixtures. tests/conftest.py
# sets it too; repeated here so these fixtures do not depend on that.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
SCREENSHOT_DIR = REPO_ROOT / "var" / "screenshots"


def _require_chromium() -> None:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"browser tests need Debian Chromium at {CHROMIUM} (apt-get install chromium; `make test` does it)")


class _SerializedApp:
    """A WSGI app that runs the wrapped app (and consumes its response) under a lock."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with self.lock:
            result = self.app(environ, start_response)
            try:
                return list(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()  # sends request_finished while the lock is still held


class _SharedConnectionServer(threading.Thread):
    """A threaded WSGI server on 127.0.0.1 whose request threads use the given DB connection."""

    def __init__(self, connection: Any) -> None:
        super().__init__(name="p360-browser-live-server", daemon=True)
        self.connection = connection
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.httpd: Any = None
        self.port = 0

    def _override(self) -> None:
        from django.db import DEFAULT_DB_ALIAS, connections

        connections[DEFAULT_DB_ALIAS] = self.connection

    def run(self) -> None:
        from django.contrib.staticfiles.handlers import StaticFilesHandler
        from django.core.handlers.wsgi import WSGIHandler
        from django.core.servers.basehttp import ThreadedWSGIServer
        from django.test.testcases import QuietWSGIRequestHandler

        outer = self

        class Server(ThreadedWSGIServer):
            def process_request_thread(self, request: Any, client_address: Any) -> None:
                outer._override()
                super().process_request_thread(request, client_address)

            def _close_connections(self) -> None:
                pass  # the only connection is the shared one: closing it would end the transaction

        try:
            self._override()
            self.httpd = Server(("127.0.0.1", 0), QuietWSGIRequestHandler, allow_reuse_address=False)
            self.port = self.httpd.server_address[1]
            self.httpd.set_app(_SerializedApp(StaticFilesHandler(WSGIHandler())))
        except BaseException as exc:
            self.error = exc
            return
        finally:
            self.ready.set()
        self.httpd.serve_forever(poll_interval=0.05)

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
        self.join(timeout=10)


@pytest.fixture(scope="module")
def live_url(django_db_setup: Any, django_db_blocker: Any) -> Iterator[str]:
    """Base URL (http://127.0.0.1:<port>) of a live server over the session's test database.

    Nothing the browser does is committed: the module runs inside one rolled-back transaction.
    """
    _require_chromium()
    from django.core.signals import request_finished, request_started
    from django.db import DEFAULT_DB_ALIAS, close_old_connections, connections, transaction

    connection = connections[DEFAULT_DB_ALIAS]  # the wrapper itself, not the django.db.connection proxy

    with django_db_blocker.unblock():
        if not connection.settings_dict["NAME"].startswith("test_"):
            pytest.fail(f"refusing to run browser tests against non-test database {connection.settings_dict['NAME']!r}")
        connection.set_schema_to_public()
        atomic = transaction.atomic()
        atomic.__enter__()
        request_started.disconnect(close_old_connections)
        request_finished.disconnect(close_old_connections)
        connection.inc_thread_sharing()
        server = _SharedConnectionServer(connection)
        try:
            server.start()
            server.ready.wait(timeout=10)
            if server.error is not None:
                raise server.error
            yield f"http://127.0.0.1:{server.port}"
        finally:
            server.stop()
            connection.dec_thread_sharing()
            request_started.connect(close_old_connections)
            request_finished.connect(close_old_connections)
            transaction.set_rollback(True)
            atomic.__exit__(None, None, None)
            connection.set_schema_to_public()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Headless Debian Chromium driven by Playwright's sync API (skips when it is not installed)."""
    _require_chromium()
    from django.db import DEFAULT_DB_ALIAS, connections
    from playwright.sync_api import sync_playwright

    wrapper = connections[DEFAULT_DB_ALIAS]  # this thread's connection (lazy: nothing is opened here)
    with sync_playwright() as playwright:
        # Playwright's sync API leaves its asyncio loop registered as "running" in this thread, and
        # then Django's connection handler (an asgiref Local) keeps connections per context instead
        # of per thread: this thread would silently get a second connection, outside the test's
        # transaction and never closed (DROP DATABASE then fails at the end of the session). Pin
        # the thread's own connection for that storage too.
        connections[DEFAULT_DB_ALIAS] = wrapper
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def browser_page(chromium: Any, live_url: str, db: None) -> Iterator[Any]:
    """A fresh page in its own browser context (no cookies shared between tests).

    ``db`` makes pytest-django create the test database even when only browser tests are selected
    (without it the server would talk to the development database), and wraps each test in its own
    rolled-back transaction (a savepoint inside the module's transaction) on the shared connection.
    """
    # Wider than 1280 px: below that Unfold hides its sidebar, and with it the org switcher.
    context = chromium.new_context(base_url=live_url, viewport={"width": 1440, "height": 900})
    context.set_default_timeout(10_000)
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    return SCREENSHOT_DIR
