"""Resumable (tus) upload throughput over real HTTP on loopback, and the server's memory while it streams.

The server is Django's threaded WSGI server (the one `runserver` uses) in this process; the client
runs in its own Python process (so the two never share a GIL) and streams a file from disk with
PATCH requests (16 MB chunks; with a SHA-1 checksum per chunk as tuspy sends, and without, as the
browser's tus-js-client sends). Baseline: the same bytes PUT over the same kind of server to a bare WSGI app
that streams the body to disk in the same 64 KB reads and hashes it with SHA-256 (the work any
endpoint that records the file's hash must do); the figure without the hash is shown too. The
difference is what the protocol costs (auth, org routing, the row lock, fsync per chunk, the
per-chunk checksum on both sides, the move into org storage).

A tuspy-style client hashes each chunk before it sends it, and the server waits meanwhile: that is client work
the bare PUT does not do. So the checksum case is also compared with a bare PUT whose client does the same work
(reads each 16 MB piece and computes its SHA-1 before sending it, in one PUT): both ratios are printed. Each row
shows the CPU seconds of the server process (all its threads) and of the client process beside the wall time.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.common import Row, fmt_ratio, goal_text

ORDER = 40
ORG_SLUG = "acme"
MARKETER_EMAIL = "marketer@acme.example"
SIZE = 256 * 1024 * 1024
CHUNK = 16 * 1024 * 1024
MEMORY_SIZE = 64 * 1024 * 1024
READ = 64 * 1024
GOAL_RATIO = 0.5  # at least half of the bare HTTP + disk + SHA-256 throughput
GOAL_MEMORY = 8 * 1024 * 1024


@contextmanager
def _server(app: Callable[..., Any]) -> Iterator[int]:
    from django.core.servers.basehttp import ThreadedWSGIServer
    from django.test.testcases import QuietWSGIRequestHandler

    httpd = ThreadedWSGIServer(("127.0.0.1", 0), QuietWSGIRequestHandler, allow_reuse_address=False)
    httpd.set_app(app)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


def _bare_app(target: Path, hashed: bool) -> Callable[..., Any]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        remaining = int(environ.get("CONTENT_LENGTH") or 0)
        stream = environ["wsgi.input"]
        digest = hashlib.sha256()
        with target.open("wb") as out:
            while remaining > 0:
                data = stream.read(min(READ, remaining))
                if not data:
                    break
                out.write(data)
                if hashed:
                    digest.update(data)
                remaining -= len(data)
        start_response("204 No Content", [])
        return []

    return app


def _send(
    port: int, method: str, path: str, headers: dict[str, str], body: Any, length: int
) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.putrequest(method, path)
    for key, value in {**headers, "Content-Length": str(length)}.items():
        conn.putheader(key, value)
    conn.endheaders()
    if isinstance(body, bytes):  # a chunk already in memory (tuspy sends its bytes in one write)
        conn.send(body)
    else:
        remaining = length
        while remaining > 0:
            block = body.read(min(1024 * 1024, remaining))
            conn.send(block)
            remaining -= len(block)
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


def _tus_upload(
    port: int, token: str, source: Path, size: int, chunk: int = CHUNK, checksum: bool = True
) -> tuple[float, str]:
    """Upload `source` with tus; returns (seconds, upload id)."""
    auth = {"Authorization": f"Token {token}", "Tus-Resumable": "1.0.0"}
    started = time.perf_counter()
    created = _send(
        port,
        "POST",
        f"/o/{ORG_SLUG}/api/v1/uploads/",
        {**auth, "Upload-Length": str(size), "Upload-Metadata": f"filename {base64.b64encode(b'bench.csv').decode()}"},
        None,
        0,
    )
    if created.status != 201:
        raise RuntimeError(f"creation answered {created.status}")
    location = created.headers["Location"]
    path = "/" + location.split("/", 3)[3]
    offset = 0
    with source.open("rb") as handle:
        while offset < size:
            length = min(chunk, size - offset)
            headers = {**auth, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"}
            body: Any = handle  # streamed from the file in 1 MB blocks
            if checksum:
                piece = handle.read(length)
                headers["Upload-Checksum"] = f"sha1 {_sha1_b64(piece)}"
                body = piece
            response = _send(port, "PATCH", path, headers, body, length)
            if response.status != 204:
                raise RuntimeError(f"PATCH answered {response.status}")
            offset += length
    return time.perf_counter() - started, path.rsplit("/", 1)[-1]


def _sha1_b64(piece: bytes) -> str:
    """What tuspy computes for each chunk before sending it (the server waits meanwhile)."""
    return base64.b64encode(hashlib.sha1(piece, usedforsecurity=False).digest()).decode()


class _HashedPieces:
    """A PUT body read in `chunk` pieces, each SHA-1'd before it is sent: the tuspy client's own work, without tus."""

    def __init__(self, handle: Any, chunk: int) -> None:
        self.handle, self.chunk = handle, chunk

    def read(self, n: int) -> bytes:
        piece = self.handle.read(self.chunk)
        _sha1_b64(piece)
        return piece


class Run:
    """One client run: wall seconds, and the CPU seconds of the server process (all threads) and of the client."""

    def __init__(self, seconds: float, server_cpu: float, client_cpu: float, upload_id: str = "") -> None:
        self.seconds, self.server_cpu, self.client_cpu, self.upload_id = seconds, server_cpu, client_cpu, upload_id

    def cpu_text(self) -> str:
        return f"CPU server {self.server_cpu:.2f} s + client {self.client_cpu:.2f} s"


def _measured(client: Callable[..., dict[str, Any]], port: int, *args: str) -> Run:
    """Run a client; this process's CPU over the run is the server's (the bench thread only waits for the client)."""
    cpu = time.process_time()
    answer = client(port, *args)
    server_cpu = time.process_time() - cpu
    return Run(answer["seconds"], server_cpu, answer["cpu"], answer.get("upload_id", ""))


def _write_source(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    block = os.urandom(1024 * 1024)
    with path.open("wb") as out:
        for _ in range(size // len(block)):
            out.write(block)
            digest.update(block)
    return digest.hexdigest()


def _client(port: int, *args: str) -> dict[str, Any]:
    """Run this module's client in a separate process; returns what it printed (seconds, upload id)."""
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(  # our own interpreter and module
        [sys.executable, "-m", "bench.bench_uploads", str(port), *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"upload client failed: {done.stderr.strip()[-300:]}")
    return json.loads(done.stdout)


def _client_main(argv: list[str]) -> None:
    port, mode, source = int(argv[0]), argv[1], Path(argv[2])
    size = source.stat().st_size
    if mode in ("put", "put-sha1"):
        with source.open("rb") as handle:
            body = _HashedPieces(handle, CHUNK) if mode == "put-sha1" else handle
            started = time.perf_counter()
            _send(port, "PUT", "/", {}, body, size)
        print(json.dumps({"seconds": time.perf_counter() - started, "cpu": _cpu_seconds()}))
        return
    token, chunk, checksum = argv[3], int(argv[4]), argv[5] == "checksum"
    seconds, upload_id = _tus_upload(port, token, source, size, chunk=chunk, checksum=checksum)
    print(json.dumps({"seconds": seconds, "upload_id": upload_id, "cpu": _cpu_seconds()}))


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run() -> list[Row]:
    from django.core.handlers.wsgi import WSGIHandler
    from django.test.utils import override_settings
    from django_tenants.utils import schema_context

    from p360.core.uploads.models import Upload
    from p360.core.uploads.storage import org_storage
    from tenants.models import User
    from tenants.services import api_token_create

    token_row, token = api_token_create(user=User.objects.get(email=MARKETER_EMAIL), name="bench uploads")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="p360-bench-uploads-") as tmp_name:
        tmp = Path(tmp_name)
        source = tmp / "source.bin"
        expected = _write_source(source, SIZE)
        data_dir = tmp / "data"
        with override_settings(DATA_DIR=data_dir, MEDIA_ROOT=data_dir / "media", P360_UPLOAD_MAX_BYTES=2 * SIZE):
            # Baselines: bare HTTP PUT of the same bytes to disk, with and without the SHA-256 that
            # any endpoint recording the file's hash must compute.
            bare: dict[str, Run] = {}
            for name, hashed, client_mode in (("plain", False, "put"), ("sha256", True, "put"),
                                              ("sha256+client sha1", True, "put-sha1")):  # fmt: skip
                with _server(_bare_app(tmp / "bare.bin", hashed)) as port:
                    os.sync()  # every run starts with no earlier writes still being flushed
                    bare[name] = _measured(_client, port, client_mode, str(source))
                (tmp / "bare.bin").unlink()
            with _server(WSGIHandler()) as port:
                # One small upload first: the server's first requests import modules and build the URL resolvers
                # (~0.5 s), which the first timed run (the checksum one) used to pay alone; the bare app has none.
                warm = tmp / "warm.bin"
                _write_source(warm, 1024 * 1024)
                warm_id = _client(port, "tus", str(warm), token, str(CHUNK), "checksum")["upload_id"]
                with schema_context(f"org_{ORG_SLUG}"):
                    warm_upload = Upload.objects.get(pk=warm_id)
                    org_storage().delete(warm_upload.storage_name)
                    warm_upload.delete()
                timings: dict[bool, Run] = {}
                for checksum in (True, False):  # tuspy sends a checksum per chunk; tus-js-client does not
                    mode = "checksum" if checksum else "plain"
                    os.sync()
                    timings[checksum] = _measured(_client, port, "tus", str(source), token, str(CHUNK), mode)
                    upload_id = timings[checksum].upload_id
                    with schema_context(f"org_{ORG_SLUG}"):
                        upload = Upload.objects.get(pk=upload_id)
                        if upload.sha256 != expected:
                            raise RuntimeError("the assembled file's SHA-256 differs from the source's")
                        org_storage().delete(upload.storage_name)
                        Upload.objects.filter(pk=upload_id).delete()
                # Server-side Python memory while streaming one 64 MB PATCH (tracemalloc peak).
                small = tmp / "small.bin"
                _write_source(small, MEMORY_SIZE)
                tracemalloc.start()
                try:
                    small_id = _client(port, "tus", str(small), token, str(MEMORY_SIZE), "plain")["upload_id"]
                    _, peak = tracemalloc.get_traced_memory()
                finally:
                    tracemalloc.stop()
                with schema_context(f"org_{ORG_SLUG}"):
                    Upload.objects.filter(pk=small_id).delete()
    token_row.delete()
    load = os.getloadavg()[0]  # whether other work shared the cores during the run
    mb = SIZE / 1024 / 1024
    bare_rate, plain_rate = mb / bare["sha256"].seconds, mb / bare["plain"].seconds
    same_client = bare["sha256+client sha1"]
    same_rate = mb / same_client.seconds
    for checksum, label in ((True, "sha1 per chunk (tuspy)"), (False, "no chunk checksum (browser)")):
        run_ = timings[checksum]
        tus_rate = mb / run_.seconds
        rows.append(
            Row(
                workload=f"tus upload over HTTP, 16 MB chunks, {label}",
                size=f"{mb:.0f} MB, load {load:.1f}",
                p360=f"{tus_rate:.0f} MB/s ({run_.seconds:.2f} s; {run_.cpu_text()})",
                baseline=f"{bare_rate:.0f} MB/s bare PUT to disk + SHA-256 ({bare['sha256'].cpu_text()}; "
                f"{plain_rate:.0f} MB/s without the hash)",
                ratio=fmt_ratio(tus_rate, bare_rate),
                goal=goal_text(f">= {GOAL_RATIO:.0%} of bare + SHA-256", tus_rate >= GOAL_RATIO * bare_rate),
            )
        )
        if checksum:  # the same comparison when the bare PUT's client does tuspy's own hashing too
            rows.append(
                Row(
                    workload="tus upload, sha1 per chunk, against a bare PUT whose client also SHA-1s each 16 MB",
                    size=f"{mb:.0f} MB, load {load:.1f}",
                    p360=f"{tus_rate:.0f} MB/s ({run_.seconds:.2f} s)",
                    baseline=f"{same_rate:.0f} MB/s bare PUT + SHA-256, client SHA-1 per 16 MB "
                    f"({same_client.seconds:.2f} s; {same_client.cpu_text()})",
                    ratio=fmt_ratio(tus_rate, same_rate),
                    goal=goal_text(
                        f">= {GOAL_RATIO:.0%} of the same-client bare PUT", tus_rate >= GOAL_RATIO * same_rate
                    ),
                )
            )
    rows.append(
        Row(
            workload="tus PATCH: peak Python memory of the server (tracemalloc)",
            size=f"{MEMORY_SIZE // 1024 // 1024} MB body, load {load:.1f}",
            p360=f"{peak / 1024 / 1024:.1f} MB",
            baseline=f"{MEMORY_SIZE // 1024 // 1024} MB if buffered",
            ratio=fmt_ratio(peak, MEMORY_SIZE),
            goal=goal_text(f"< {GOAL_MEMORY // 1024 // 1024} MB", peak < GOAL_MEMORY),
        )
    )
    return rows


if __name__ == "__main__":  # the upload client, run in its own process by `_client`
    _client_main(sys.argv[1:])
