"""Activation (issue 12): UID2 mapping throughput and a LiveRamp device file written and pushed over SFTP.

- UID2: identities mapped through the official SDK against the local operator stand-in (real envelope, AES-GCM),
  batches of 5,000 with 4 in flight, results written to PostgreSQL. Baseline: the same SDK calls without our
  registration and writes. The documented ceiling is 5,000 items per request and 20 requests in flight.
- Device file: an audience of `P360_BENCH_ACTIVATION_ROWS` records (default 10M, the issue's size; x
  `P360_BENCH_SCALE`) delivered end to end to a LiveRamp destination on an asyncssh SFTP server on loopback, in a
  process of its own as a real remote is (a real `start_delivery`: export with the `.part` pre-upload overlapping
  it, member file, staging, size check, rename, ledger). Baselines in the same run: `COPY (SELECT maid, maid_type,
  ip ...) TO` of the same rows, and an SFTP put of the delivered file. Peak RSS is the bench process's high-water
  mark.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Row, backend_cpu_s, fmt_s, goal_text, own_cpu_s

ORDER = 90
SLUG_PREFIX = "bench-activation-"
SCALE = float(os.environ.get("P360_BENCH_SCALE", "1"))
# The device-file goal is stated at 10M records; P360_BENCH_SCALE shrinks it for development.
ROWS = int(os.environ.get("P360_BENCH_ACTIVATION_ROWS") or max(1_000, int(10_000_000 * SCALE)))
UID2_IDS = int(os.environ.get("P360_BENCH_UID2_IDS") or "50000")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _drop_bench_orgs() -> None:
    from django.db import connection

    from p360.core.jobs.models import Job
    from tenants.models import Organization

    connection.set_schema_to_public()  # type: ignore[attr-defined]
    for org in Organization.objects.filter(slug__startswith=SLUG_PREFIX):
        Job.objects.filter(org=org).delete()
        org.domains.all().delete()
        org.delete(force_drop=True)


def _audience(rows: int, name: str) -> object:
    """An imported audience whose version holds `rows` records with email (its hash derived), MAID and IP."""
    from django.db import connection

    from audiences import records
    from audiences.models import Audience, AudienceKind, AudienceStatus, AudienceVersion

    audience = Audience.objects.create(name=name, kind=AudienceKind.IMPORTED, status=AudienceStatus.READY)
    version = AudienceVersion.objects.create(audience=audience, number=1, record_count=rows)
    records.create_partition(version.pk)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {records.partition_name(version.pk)} (version_id, row, line, email_normalized, maid, maid_type, ip) "
            "SELECT %s, g, g + 2, 'p' || g || '@example.com', "
            "CASE WHEN g %% 2 = 0 THEN upper(substr(m, 1, 8) || '-' || substr(m, 9, 4) || '-4' || substr(m, 14, 3) || "
            "'-8' || substr(m, 18, 3) || '-' || substr(m, 21, 12)) ELSE substr(m, 1, 8) || '-' || substr(m, 9, 4) || "
            "'-4' || substr(m, 14, 3) || '-8' || substr(m, 18, 3) || '-' || substr(m, 21, 12) END, "
            "CASE WHEN g %% 2 = 0 THEN 'IDFA' ELSE 'GAID' END, "
            "'10.' || (g >> 16) %% 256 || '.' || (g >> 8) %% 256 || '.' || g %% 256 "
            "FROM (SELECT g, md5(g::text) AS m FROM generate_series(0, %s - 1) g) s",
            [version.pk, rows],
        )
    audience.current_version = version
    audience.record_count = rows
    audience.save()
    return audience


def _uid2_rows(org: object) -> list[Row]:
    from django_tenants.utils import schema_context

    from activation.identities import map_identities
    from activation.uid2 import Item, Uid2Settings, map_all
    from tests.activation.uid2_operator import API_KEY, SECRET, Uid2Operator

    operator = Uid2Operator().start()
    try:
        conf = Uid2Settings(base_url=operator.base_url, api_key=API_KEY, secret_key=SECRET, parallel=4)
        with schema_context(org.schema_name):  # type: ignore[attr-defined]
            audience = _audience(UID2_IDS, "Bench UID2")
            start = time.perf_counter()
            result = map_identities(audience=audience, due_only=False, conf=conf)  # type: ignore[arg-type]
            seconds = time.perf_counter() - start
        items = [Item("email", f"{i:043d}=") for i in range(UID2_IDS)]
        start = time.perf_counter()
        for _ in map_all(conf, items):
            pass
        sdk_seconds = time.perf_counter() - start
    finally:
        operator.stop()
    mapped = result["mapped"]
    requests = result["requests"]
    return [
        Row(
            workload="UID2 mapping (SDK, local operator, DB writes)",
            size=f"{mapped:,} ids, {requests} requests of <= 5,000, 4 in flight",
            p360=f"{fmt_s(seconds)} ({mapped / seconds:,.0f} ids/s; {result['seconds']})",
            baseline=f"SDK calls only {fmt_s(sdk_seconds)} ({UID2_IDS / sdk_seconds:,.0f} ids/s)",
            ratio=f"{(mapped / seconds) / (UID2_IDS / sdk_seconds):.0%} of SDK-only",
            goal=goal_text(
                "within the documented ceiling (5,000/request, <= 20 in flight)", requests <= mapped / 5000 + 4
            ),
        )
    ]


class _ServerProcess:
    """The SFTP server (tests.activation.sftp_server) in a process of its own, as a real remote is: in a thread of
    this process its decryption and file writes would compete for this process's GIL with the delivery."""

    def __init__(self, root: Path) -> None:
        code = (
            "import json, sys; from pathlib import Path; from tests.activation.sftp_server import SftpServer; "
            "s = SftpServer(Path(sys.argv[1])).start(); "
            "print(json.dumps({'port': s.port, 'key': s.host_key_line}), flush=True); sys.stdin.read(); s.stop()"
        )
        self.process = subprocess.Popen(
            [sys.executable, "-c", code, str(root)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1],
        )  # fmt: skip
        assert self.process.stdout is not None
        hello = json.loads(self.process.stdout.readline())
        self.port: int = hello["port"]
        self.host_key_line: str = hello["key"]

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _device_rows(org: object, tmp: Path) -> list[Row]:
    """End to end is a real delivery (`start_delivery`, inline): the export with the SFTP pre-upload overlapping
    it, the member file, staging beside the push, the size check and rename, the ledger. Both baselines move
    the same rows in the same run: `COPY (SELECT maid, maid_type, ip ...) TO` a file, and one SFTP put of the
    delivered file."""
    from django.db import connection
    from django_tenants.utils import schema_context

    from activation.delivery import start_delivery
    from activation.exports import copy_rows, export_files
    from activation.models import DeliveryStatus
    from activation.services import destination_create
    from activation.transport import sftp_ciphers
    from audiences import records
    from p360.core.jobs.services import job_kinds
    from tests.activation.sftp_server import PASSWORD, USER

    root = tmp / "sftp"
    (root / "uploads" / "up").mkdir(parents=True)  # LiveRamp takes files under /uploads/<subfolder>
    server = _ServerProcess(root)
    try:
        with schema_context(org.schema_name):  # type: ignore[attr-defined]
            audience = _audience(ROWS, "Bench devices")
            part = records.partition_name(audience.current_version_id)  # type: ignore[attr-defined]
            destination = destination_create(
                actor=None, name="Bench LiveRamp", kind="liveramp",
                data={"host": "127.0.0.1", "port": server.port, "username": USER, "remote_dir": "/uploads/up",
                      "host_key": server.host_key_line, "credentials": {"password": PASSWORD}},
                audience_ids=[audience.pk],  # type: ignore[attr-defined]
            )  # fmt: skip
            # Baseline 1: COPY of the same rows' device columns to a file.
            pg0, cpu0, start = backend_cpu_s(), own_cpu_s(), time.perf_counter()
            with (
                (tmp / "copy.csv").open("wb") as fh,
                connection.cursor() as cursor,
                cursor.copy(
                    f"COPY (SELECT maid, maid_type, ip FROM {part}) TO STDOUT (FORMAT csv, DELIMITER '|')"
                ) as copy,
            ):  # type: ignore[attr-defined]
                # The same row reader as the export (activation.exports.copy_rows), so the baseline is as fast as
                # this client can take a COPY: psycopg's own `for chunk in copy` is about 1.5x slower.
                for chunk in copy_rows(copy, cursor.connection.pgconn):
                    fh.write(chunk)
            copy_seconds, copy_cpu = time.perf_counter() - start, own_cpu_s() - cpu0 + backend_cpu_s() - pg0
            (tmp / "copy.csv").unlink()
            # Where the time goes: the write alone (no push), then the whole delivery.
            start = time.perf_counter()
            export_files(audiences=[audience], fmt="liveramp", out_dir=tmp / "write-only", org_name="Bench",  # type: ignore[list-item]
                         lookback_days=None)  # fmt: skip
            write_seconds = time.perf_counter() - start
            shutil.rmtree(tmp / "write-only")
            # A worker discovers the job kinds once per process, importing every app's job module (reportlab for
            # the PDF report: ~0.4 s): a one-off of the process, not part of a delivery.
            job_kinds()
            rss_before = _rss_mb()
            pg0, cpu0, start = backend_cpu_s(), own_cpu_s(), time.perf_counter()
            delivery = start_delivery(destination=destination, actor=None, dry_run=False, inline=True)
            total, total_cpu = time.perf_counter() - start, own_cpu_s() - cpu0 + backend_cpu_s() - pg0
            rss_peak = _rss_mb()
            assert delivery.status == DeliveryStatus.SENT, delivery.error
            (info,) = delivery.files
        sent = root / "uploads" / "up" / info["name"]
        assert sent.stat().st_size == info["bytes"], "the remote file is not the delivered one"
        # Baseline 2: a plain SFTP put of the delivered file.
        import asyncssh

        async def put() -> None:
            key = asyncssh.import_public_key(server.host_key_line)
            options = {"port": server.port, "username": USER, "password": PASSWORD, "known_hosts": ([key], [], []),
                       "agent_path": None, "client_keys": None, "encryption_algs": sftp_ciphers()}  # fmt: skip
            async with asyncssh.connect("127.0.0.1", **options) as conn, conn.start_sftp_client() as sftp:
                await sftp.put(str(sent), "/uploads/up/baseline.psv")

        start = time.perf_counter()
        asyncio.run(put())
        put_seconds = time.perf_counter() - start
    finally:
        server.stop()
    rows = int(delivery.rows)
    rate, copy_rate = rows / total, ROWS / copy_seconds
    size_mb = info["bytes"] / 1e6
    return [
        Row(
            workload="LiveRamp device file: delivery end to end (write + SFTP push overlapped, loopback)",
            size=f"{ROWS:,} records -> {rows:,} rows, {size_mb:.1f} MB",
            p360=f"{fmt_s(total)} ({rate:,.0f} rows/s; CPU {total_cpu:.1f} s incl. PostgreSQL; "
            f"write alone {fmt_s(write_seconds)} = {ROWS / write_seconds / copy_rate:.0%} of COPY TO)",
            baseline=f"COPY TO {fmt_s(copy_seconds)} ({copy_rate:,.0f} rows/s, CPU {copy_cpu:.1f} s); "
            f"sftp put {fmt_s(put_seconds)}",
            ratio=f"{rate / copy_rate:.0%} of COPY TO",
            goal=goal_text(">= 50% of COPY TO", rate >= 0.5 * copy_rate),
        ),
        Row(
            workload="LiveRamp device file: peak RSS",
            size=f"{ROWS:,} records",
            p360=f"{rss_peak:,.0f} MB process peak (was {rss_before:,.0f} MB before the delivery)",
            baseline="-",
            ratio="-",
            goal=goal_text("< 1 GB", rss_peak < 1024),
        ),
    ]


def run() -> list[Row]:
    from tenants.services import org_create

    _drop_bench_orgs()
    tmp = Path(tempfile.mkdtemp(prefix="p360-bench-activation-"))
    try:
        org = org_create(slug=f"{SLUG_PREFIX}{secrets.token_hex(3)}", name="Bench activation")
        rows = _uid2_rows(org)
        rows += _device_rows(org, tmp)
        load = os.getloadavg()
        for row in rows:
            row["size"] += f" (load {load[0]:.1f})"
        return rows
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        _drop_bench_orgs()


if __name__ == "__main__":
    from bench.common import format_table, setup_database

    setup_database()
    print(format_table(run()))
