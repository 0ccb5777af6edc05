"""Upload test helpers: an isolated data directory, tus request helpers, and a live HTTP server."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings

TUS = "1.0.0"
OFFSET_STREAM = "application/offset+octet-stream"


@pytest.fixture(autouse=True)
def upload_dirs(tmp_path: Path, settings: Any) -> Path:
    """Staging and media under the test's own tmp dir (never the developer's var/)."""
    settings.DATA_DIR = tmp_path / "data"
    settings.MEDIA_ROOT = tmp_path / "data" / "media"
    return settings.DATA_DIR


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def metadata_header(**items: str) -> str:
    return ",".join(f"{key} {b64(value)}" for key, value in items.items())


def tus_create(client: Any, slug: str = "acme", size: int = 10, metadata: str | None = None, **headers: str) -> Any:
    all_headers = {"Tus-Resumable": TUS, "Upload-Length": str(size), **headers}
    if metadata is not None:
        all_headers["Upload-Metadata"] = metadata
    # Like real tus clients: a POST without a body.
    return client.generic("POST", f"/o/{slug}/api/v1/uploads/", b"", content_type="", headers=all_headers)


def tus_patch(client: Any, url: str, offset: int, data: bytes, **headers: str) -> Any:
    return client.generic(
        "PATCH",
        url,
        data,
        content_type=headers.pop("content_type", OFFSET_STREAM),
        headers={"Tus-Resumable": TUS, "Upload-Offset": str(offset), **headers},
    )


def tus_head(client: Any, url: str, **headers: str) -> Any:
    return client.head(url, headers={"Tus-Resumable": TUS, **headers})


class Tripwire:
    """A request body that fails the test if the server reads a single byte of it."""

    reads = 0

    def read(self, *args: Any) -> bytes:
        Tripwire.reads += 1
        raise AssertionError("the server read the body of a request it should have refused")

    def readline(self, *args: Any) -> bytes:
        return self.read()


@pytest.fixture(scope="module")
def live_tus(django_db_setup: Any, django_db_blocker: Any, tmp_path_factory: Any) -> Iterator[str]:
    """A live HTTP server (real sockets) over the session's test database, for real tus clients.

    Same design as tests/browser/conftest.py's `live_url` (one shared connection, the module inside
    one rolled-back transaction) but without needing Chromium.
    """
    from django.core.signals import request_finished, request_started
    from django.db import DEFAULT_DB_ALIAS, close_old_connections, connections, transaction

    from tests.browser.conftest import _SharedConnectionServer

    connection = connections[DEFAULT_DB_ALIAS]
    data_dir = tmp_path_factory.mktemp("live-uploads")
    with django_db_blocker.unblock(), override_settings(DATA_DIR=data_dir, MEDIA_ROOT=data_dir / "media"):
        assert connection.settings_dict["NAME"].startswith("test_")
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


# The browser fixtures (live server over the session's database, headless Chromium, screenshots)
# come from tests/browser/conftest.py; re-exported here for tests/uploads/test_browser_upload.py.
from tests.browser.conftest import browser_page, chromium, live_url, screenshot_dir  # noqa: E402, F401
