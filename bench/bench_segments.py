"""Event segments (issue 13): ingestion, entry latency, membership queries, 10,000 definitions, JetStream.

- Events/s end to end: POST /api/v1/events batches of 10,000 through the Django test client (JSON parse,
  validation, COPY into staging, idempotent insert into day partitions, profile upsert, and evaluation
  against 8 active segments), against the baseline of a raw `COPY` of the same events (CSV) into a
  plain table, measured in the same run. The request bodies are encoded before the clock starts (a
  client's own JSON encoding is not the server's work); the row also shows the server-side Python CPU
  per batch (this process runs the whole Django stack), the rest being PostgreSQL and waiting for a core.
- Entry latency inside 10K batches, twice: at the maximum rate (every batch posted at once; the queue grows, so
  the latency is mostly queue depth) and at a sustained rate of P360_BENCH_SEGMENTS_SUSTAINED (default 0.5) times
  the maximum stored-and-evaluated rate measured just before (NFR3 is about a load the system sustains).
- Entry latency: one POST of one event that makes its user enter, until `GET users/<id>/segments`
  shows it (the embedded runtime evaluates before answering); p50/p95 over P360_BENCH_SEGMENTS_PROBES.
- Timer pass: evaluating N due (user, rule) pairs whose window slid past (the exit path).
- Membership query p99: GET users/<id>/segments, against the same SELECT in raw SQL.
- 10,000 active definitions: one event's evaluation with 2,500 rules on its type.
- JetStream: N events published, evaluated by 1 and by 2 evaluator processes (needs nats-server).

Sizes: P360_BENCH_SEGMENTS_EVENTS (default 200,000) and P360_BENCH_SCALE.

Event ids: random UUIDs by default, as real clients send them (P360_BENCH_SEGMENTS_IDS=uuid); `sequential` gives
the `<prefix>-<n>` ids of sessions 6-12, whose inserts into the unique id index touch far fewer pages (the events
API's PostgreSQL CPU per 10K measured 14 ms for the id insert with sequential ids against 41-50 ms with UUIDs,
session 13), so figures before session 13 are not comparable with the default.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import Row, backend_cpu_s, fmt_ratio, fmt_s, goal_text, percentile

ORDER = 130
SCALE = float(os.environ.get("P360_BENCH_SCALE", "1"))
EVENTS = int(int(os.environ.get("P360_BENCH_SEGMENTS_EVENTS", "200000")) * SCALE)
PROBES = int(os.environ.get("P360_BENCH_SEGMENTS_PROBES", "200"))
DEFINITIONS = int(os.environ.get("P360_BENCH_SEGMENTS_DEFINITIONS", "10000"))
SUSTAINED = float(os.environ.get("P360_BENCH_SEGMENTS_SUSTAINED", "0.5"))  # of the measured max evaluated rate
IDS = os.environ.get("P360_BENCH_SEGMENTS_IDS", "uuid")
BATCH = 10_000
TYPES = ["orders", "clicks", "addToCart", "installs"]
ROOT = Path(__file__).resolve().parents[1]


def _event_ids(n: int, prefix: str) -> list[str]:
    """Random UUIDs (what clients send), or the earlier sessions' ordered `<prefix>-<n>` (IDS=sequential)."""
    if IDS == "sequential":
        return [f"{prefix}-{i}" for i in range(n)]
    return [str(uuid.uuid4()) for _ in range(n)]


def _events(n: int, prefix: str, users: int) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    ids = _event_ids(n, prefix)
    return [
        {
            "event_id": ids[i],
            "user_id": f"user-{i % users}",
            "event_type": TYPES[i % 4],
            "timestamp": (now - timedelta(seconds=(n - i) % 3000)).isoformat(),
            "attributes": {"value": i % 97, "sku": f"s{i % 13}"},
        }
        for i in range(n)
    ]


def _segments(count: int, prefix: str = "") -> None:
    from segments.models import Segment, SegmentVersion
    from segments.services import definition_of

    rows = [
        Segment(
            name=f"{prefix}bench {i}",
            kind="independent",
            event_type=TYPES[i % 4],
            attribute=["count", "sum", "max", "count"][i % 4],
            property="value",
            operator=["gt", "gte", "lt", "eq"][i % 4],
            value=[2, 200, 50, 1][i % 4],
            window_minutes=[60, 1440, 30, 5][i % 4],
        )
        for i in range(count)
    ]
    Segment.objects.bulk_create(rows, batch_size=2000)
    SegmentVersion.objects.bulk_create(
        [SegmentVersion(segment=s, version=1, definition=definition_of(s)) for s in rows],
        batch_size=2000,
    )


def _raw_copy_seconds(events: list[dict[str, Any]]) -> float:
    import csv
    import io

    from django.db import connection

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for e in events:
        writer.writerow([e["event_id"], e["user_id"], e["event_type"], e["timestamp"], json.dumps(e["attributes"])])
    data = buffer.getvalue()
    table = f"bench_seg_raw_{secrets.token_hex(3)}"
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE public.{table} (event_id text, user_id text, event_type text, ts timestamptz, a jsonb)"
        )
        try:
            start = time.perf_counter()
            with cursor.copy(f"COPY public.{table} FROM STDIN (FORMAT csv)") as copy:  # type: ignore[attr-defined]
                copy.write(data)
            return time.perf_counter() - start
        finally:
            cursor.execute(f"DROP TABLE public.{table}")


def _client(org: Any) -> Any:
    from django.test import Client

    from tenants.models import Role, User

    user = User.objects.filter(role=Role.SUPER_ADMIN).first()
    if user is None:
        user = User.objects.create(email=f"bench-seg-{secrets.token_hex(3)}@bench.local", role=Role.SUPER_ADMIN)
    client = Client()
    client.force_login(user, backend="tenants.auth.RoleBackend")
    return client


def _drop(org: Any) -> None:
    from django.db import connection

    from tenants.models import Organization

    connection.set_schema_to_public()  # type: ignore[attr-defined]
    org = Organization.objects.get(pk=org.pk)
    org.domains.all().delete()
    org.delete(force_drop=True)


def _drain(org: Any) -> None:
    from django_tenants.utils import schema_context

    from segments.evaluator import evaluate_pending

    with schema_context(org.schema_name):
        evaluate_pending()


def _cpu_of(pids: dict[int, float], procs: list[Any]) -> dict[int, float]:
    """CPU seconds (user + system) of each live process; `pids` is an earlier reading (a process that started since
    counts from zero)."""
    import psutil

    out = dict(pids)
    for proc in procs:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        out[proc.pid] = times.user + times.system
    return out


def _postgres_processes() -> list[Any]:
    """Every process of the PostgreSQL server this connection talks to (the postmaster and its children):
    backends, WAL writer, checkpointer. Local servers only (the embedded one, or one on this machine)."""
    import psutil
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = psutil.Process(cursor.fetchone()[0])
    postmaster = backend.parent()
    return [postmaster, *postmaster.children()] if postmaster is not None else [backend]


def _start_loop(org: Any) -> subprocess.Popen[bytes]:
    """The embedded runtime's evaluator loop (`segments_timers`, 0.5 s) for this org, as in production."""
    from django.db import connection

    env = {**os.environ, "P360_DB_NAME": str(connection.settings_dict["NAME"])}
    loop = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "segments_timers", "--org", org.slug],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import psutil

    # Django's start-up is not the evaluator's work: wait until the loop holds its one-at-a-time lock
    # (p360.core.commands: pg_try_advisory_lock(crc32("p360:segments_timers"))), then until its idle CPU is flat.
    key = zlib.crc32(b"p360:segments_timers")
    proc, deadline = psutil.Process(loop.pid), time.monotonic() + 120
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            if loop.poll() is not None:
                raise RuntimeError(f"segments_timers exited with {loop.returncode}")
            cursor.execute("SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND objid = %s", [key])
            if cursor.fetchone():
                break
            time.sleep(0.2)
    last, flat = -1.0, 0
    while flat < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
        used = sum(proc.cpu_times()[:2])
        flat = flat + 1 if used - last < 0.02 else 0
        last = used
    return loop


def _queued(org: Any) -> int:
    from django.db import connection
    from django_tenants.utils import schema_context

    with schema_context(org.schema_name), connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM segments_pendingbatch")
        return int(cursor.fetchone()[0])


class _EntryWatch:
    """Polls (own connection, every 10 ms) when each latency probe user's membership appears. Its backend's CPU
    (`backend_cpu`) is not the pipeline's and is subtracted."""

    def __init__(self, schema: str, users: list[str]) -> None:
        import threading

        self.schema, self.users = schema, users
        self.seen: dict[str, float] = {}
        self.backend_pid = 0
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        import psycopg
        from django.db import connection

        cfg = connection.settings_dict
        with psycopg.connect(
            dbname=cfg["NAME"], user=cfg["USER"], host=cfg["HOST"], port=cfg["PORT"] or None, autocommit=True
        ) as conn:
            row = conn.execute("SELECT pg_backend_pid()").fetchone()
            self.backend_pid = row[0] if row else 0
            self.ready.set()
            while not self.stop.is_set():
                found = conn.execute(
                    f'SELECT DISTINCT user_id FROM "{self.schema}".segments_membership WHERE user_id = ANY(%s)',
                    [[user for user in self.users if user not in self.seen]],
                ).fetchall()
                now = time.perf_counter()
                for (user,) in found:
                    self.seen.setdefault(user, now)
                self.stop.wait(0.01)

    def backend_cpu(self) -> float:
        import psutil

        self.ready.wait(10)
        try:
            return float(sum(psutil.Process(self.backend_pid).cpu_times()[:2]))
        except psutil.NoSuchProcess:
            return 0.0

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


def _ingest_rows(org: Any, client: Any, base: str) -> list[Row]:
    """Events/s through POST /events in 10K batches with the evaluator loop running, as in production: the
    rate at which the API answers 202 (events durable and queued), the rate until the loop has evaluated them
    all, the CPU of each part per 10K events, and the enter latency of one event inside each batch."""
    import psutil
    from django.db import connection

    events = _events(EVENTS, "ing", users=max(1000, EVENTS // 20))
    probe = f"lat-{secrets.token_hex(2)}-"
    starts: dict[str, float] = {}
    stamp = datetime.now(UTC).isoformat()
    for n, offset in enumerate(range(0, len(events), BATCH)):  # one fresh user per batch enters "installs = 1"
        events[offset] = {**events[offset], "user_id": f"{probe}{n}", "event_type": "installs", "timestamp": stamp}
    bodies = [json.dumps({"events": events[offset : offset + BATCH]}) for offset in range(0, len(events), BATCH)]
    batches = len(bodies)
    # the sustained phase: the same users (their window states exist, as in a steady state), new event ids
    steady = _events(EVENTS, "sus", users=max(1000, EVENTS // 20))
    for n, offset in enumerate(range(0, len(steady), BATCH)):
        steady[offset] = {**steady[offset], "user_id": f"{probe}s{n}", "event_type": "installs", "timestamp": stamp}
    loop = _start_loop(org)
    watch = _EntryWatch(
        org.schema_name, [f"{probe}{n}" for n in range(batches)] + [f"{probe}s{n}" for n in range(batches)]
    )
    try:
        pg_procs = _postgres_processes()
        connection.set_schema_to_public()  # type: ignore[attr-defined]
        load_before = _load_avg()
        pg0, loop0, backend0 = _cpu_of({}, pg_procs), _cpu_of({}, [psutil.Process(loop.pid)]), backend_cpu_s()
        watch0 = watch.backend_cpu()
        # this thread's CPU only (the entry watch polls from another thread)
        start, cpu_start = time.perf_counter(), time.thread_time()
        for n, body in enumerate(bodies):
            starts[f"{probe}{n}"] = time.perf_counter()
            response = client.post(f"{base}/events", body, content_type="application/json")
            assert response.status_code == 202, response.content[:300]
        ingested, api_cpu = time.perf_counter() - start, time.thread_time() - cpu_start
        api_pg = backend_cpu_s() - backend0
        while _queued(org) and time.perf_counter() - start < 600:
            time.sleep(0.01)
        evaluated = time.perf_counter() - start
        pg1 = _cpu_of(pg0, _postgres_processes())
        loop_cpu = sum(_cpu_of(loop0, [psutil.Process(loop.pid)]).values()) - sum(loop0.values())
        pg_all = sum(pg1.values()) - sum(pg0.values()) - (watch.backend_cpu() - watch0)
        time.sleep(0.3)
        sustained = _sustained_phase(org, client, base, steady, SUSTAINED * EVENTS / evaluated, probe, watch)
    finally:
        watch.close()
        loop.terminate()
        loop.wait(timeout=10)
    connection.set_schema_to_public()  # type: ignore[attr-defined]
    baseline = _raw_copy_seconds(events)
    per = 1000 / batches  # ms per 10K-event batch
    other_pg = pg_all - api_pg  # the evaluator's backend, WAL writer, checkpointer
    total_cpu = api_cpu + api_pg + loop_cpu + other_pg
    bound = 2 * EVENTS / total_cpu if total_cpu else 0.0
    rate, full_rate, base_rate = EVENTS / ingested, EVENTS / evaluated, EVENTS / baseline
    latencies = [watch.seen[user] - t0 for user, t0 in starts.items() if user in watch.seen]
    missing = len(starts) - len(latencies)
    steady_starts, steady_rate = sustained
    steady_latencies = [watch.seen[user] - t0 for user, t0 in steady_starts.items() if user in watch.seen]
    steady_missing = len(steady_starts) - len(steady_latencies)
    rows = [
        Row(
            workload=(
                f"segments: events/s ingested, durable at the 202 (API, 10K batches, 8 segments, {IDS} event ids;"
                f" {load_before})"
            ),
            size=f"{EVENTS:,} events",
            p360=(
                f"{rate:,.0f}/s ({fmt_s(ingested)}; per 10K: Python {api_cpu * per:,.0f} ms "
                f"+ PostgreSQL {api_pg * per:,.0f} ms)"
            ),
            baseline=f"raw COPY {base_rate:,.0f}/s",
            ratio=fmt_ratio(ingested, baseline),
            goal=goal_text("100,000/s", rate >= 100_000),
        ),
        Row(
            workload=f"segments: events/s stored and evaluated (evaluator loop drained; {_load_avg()})",
            size=f"{EVENTS:,} events",
            p360=(
                f"{full_rate:,.0f}/s ({fmt_s(evaluated)}; evaluator per 10K: Python {loop_cpu * per:,.0f} ms "
                f"+ PostgreSQL {other_pg * per:,.0f} ms; all CPU {total_cpu * per:,.0f} ms/10K = 2-core bound "
                f"{bound:,.0f}/s)"
            ),
            baseline=f"raw COPY {base_rate:,.0f}/s",
            ratio=fmt_ratio(evaluated, baseline),
            goal=goal_text("100,000/s", full_rate >= 100_000),
        ),
    ]
    if latencies:
        p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
        rows.append(
            Row(
                workload=(
                    "segments: enter latency, one event inside each 10K batch -> member, at the maximum rate "
                    "(all batches at once: the queue grows; evaluator loop)"
                ),
                size=f"{len(latencies)} batches" + (f" ({missing} never seen)" if missing else ""),
                p360=f"p50 {fmt_s(p50)}, p95 {fmt_s(p95)}",
                baseline="-",
                ratio="-",
                goal=goal_text("p95 < 1 s", p95 < 1 and not missing),
            )
        )
    if steady_latencies:
        p50, p95 = percentile(steady_latencies, 50), percentile(steady_latencies, 95)
        rows.append(
            Row(
                workload=(
                    f"segments: enter latency, one event inside each 10K batch -> member, at a sustained "
                    f"{SUSTAINED:.0%} of the max evaluated rate (evaluator loop; {_load_avg()})"
                ),
                size=f"{len(steady_latencies)} batches" + (f" ({steady_missing} never seen)" if steady_missing else ""),
                p360=f"p50 {fmt_s(p50)}, p95 {fmt_s(p95)} at {steady_rate:,.0f} events/s",
                baseline=f"max evaluated rate {full_rate:,.0f}/s",
                ratio="-",
                goal=goal_text("p95 < 1 s", p95 < 1 and not steady_missing),
            )
        )
    return rows


def _sustained_phase(
    org: Any, client: Any, base: str, events: list[dict[str, Any]], rate: float, probe: str, watch: _EntryWatch
) -> tuple[dict[str, float], float]:
    """Post `events` in 10K batches paced at `rate` events/s (a batch every BATCH / rate seconds; a POST slower
    than that is followed at once), then wait for the loop to drain and the probes to show. Returns each probe
    user's send time and the rate achieved."""
    starts: dict[str, float] = {}
    bodies = [json.dumps({"events": events[offset : offset + BATCH]}) for offset in range(0, len(events), BATCH)]
    interval = BATCH / rate if rate > 0 else 0.0
    start = time.perf_counter()
    for n, body in enumerate(bodies):
        time.sleep(max(0.0, start + n * interval - time.perf_counter()))
        starts[f"{probe}s{n}"] = time.perf_counter()
        response = client.post(f"{base}/events", body, content_type="application/json")
        assert response.status_code == 202, response.content[:300]
    # the rate of the schedule kept (the last batch's slot ends an interval after it starts)
    achieved = len(events) / (time.perf_counter() - start + interval)
    deadline = time.perf_counter() + 120
    while time.perf_counter() < deadline and (_queued(org) or any(user not in watch.seen for user in starts)):
        time.sleep(0.05)
    return starts, achieved


def _load_avg() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f}"


def run() -> list[Row]:
    from django_tenants.utils import schema_context

    from tenants.services import org_create

    rows: list[Row] = []
    token = secrets.token_hex(3)
    org = org_create(slug=f"bench-seg-{token}", name="Bench segments", ttd_advertiser_id=f"bs{token}")
    base = f"/o/{org.slug}/api/v1"
    try:
        client = _client(org)
        with schema_context(org.schema_name):
            _segments(8)
        rows.extend(_ingest_rows(org, client, base))

        # entry latency: a fresh user's event makes them enter "count of orders > 2"? use "eq 1" of installs
        latencies = []
        for i in range(PROBES):
            user = f"probe-{i}"
            probe = {
                "event_id": f"probe-{token}-{i}",
                "user_id": user,
                "event_type": "installs",
                "timestamp": datetime.now(UTC).isoformat(),
                "attributes": {},
            }
            t0 = time.perf_counter()
            client.post(f"{base}/events", probe, content_type="application/json")
            body = client.get(f"{base}/users/{user}/segments").json()
            latencies.append(time.perf_counter() - t0)
            assert body["segments"], body
        p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
        rows.append(
            Row(
                workload=f"segments: enter latency, one-event POST -> GET shows it (inline; {_load_avg()})",
                size=f"{PROBES} users",
                p360=f"p50 {fmt_s(p50)}, p95 {fmt_s(p95)}",
                baseline="-",
                ratio="-",
                goal=goal_text("p95 < 1 s", p95 < 1),
            )
        )

        # timer pass: every window due (as if a day passed)
        with schema_context(org.schema_name):
            from segments.evaluator import run_timers
            from segments.models import WindowState

            due = WindowState.objects.filter(due_at__isnull=False).count()
            t0 = time.perf_counter()
            outcome = run_timers(now=datetime.now(UTC) + timedelta(hours=25), limit=20_000)
            timer_s = time.perf_counter() - t0
        rows.append(
            Row(
                workload="segments: timer pass (windows slid past)",
                size=f"{due:,} due window states ({outcome.pairs:,} pairs)",
                p360=f"{fmt_s(timer_s)} ({outcome.exits:,} exits)",
                baseline="-",
                ratio="-",
                goal="exit visible <= pass + 0.5 s loop interval",
            )
        )

        # membership query p99 (re-enter some users first)
        client.post(
            f"{base}/events", {"events": _events(2000, f"q{token}", users=500)}, content_type="application/json"
        )
        _drain(org)  # a batch over SEGMENTS_EVALUATE_INLINE_MAX is evaluated by the loop: do it before the reads
        rows.extend(_membership_read_rows(client, base, org.schema_name, token))

        # 10,000 active definitions
        with schema_context(org.schema_name):
            _segments(DEFINITIONS, prefix="many ")
        t0 = time.perf_counter()
        client.post(f"{base}/events", _events(1, f"many-warm-{token}", users=1)[0], content_type="application/json")
        warm = time.perf_counter() - t0
        singles = []
        for i in range(20):
            e = {**_events(1, f"many-{token}-{i}", users=1)[0], "user_id": f"many-user-{i}"}
            t0 = time.perf_counter()
            client.post(f"{base}/events", e, content_type="application/json")
            singles.append(time.perf_counter() - t0)
        p95_many = percentile(singles, 95)
        rows.append(
            Row(
                workload=f"segments: one event with {DEFINITIONS + 8:,} active definitions",
                size=f"{(DEFINITIONS + 8) // 4:,} rules on its type",
                p360=f"p95 {fmt_s(p95_many)}",
                baseline=f"first (definitions load) {fmt_s(warm)}",
                ratio="-",
                goal=goal_text("p95 < 1 s", p95_many < 1),
            )
        )
    finally:
        _drop(org)
    rows.extend(_jetstream_rows())
    return rows


READS = int(os.environ.get("P360_BENCH_SEGMENTS_READS", "500"))


def _membership_read_rows(client: Any, base: str, schema: str, token: str) -> list[Row]:
    """Membership query p99: GET users/<id>/segments with a session and with an API token, against the same
    SELECT in raw SQL, interleaved so each sees the same machine. Also: the statements one request sends
    (CaptureQueriesContext; `SET search_path` counted apart), Python CPU per request (this process runs the
    whole Django stack; the PostgreSQL side is not in it), and the API root as the request stack's floor."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django_tenants.utils import schema_context

    from tenants.models import User
    from tenants.services import api_token_create

    admin = User.objects.filter(role="super_admin").first()
    assert admin is not None  # _client() made sure of one
    _, raw_token = api_token_create(user=admin, name=f"bench {token}")
    clients = {"session": client, "token": Client(HTTP_AUTHORIZATION=f"Token {raw_token}")}
    statements: dict[str, str] = {}
    for name, each in clients.items():
        each.get(f"{base}/users/user-0/segments")  # warm: URL resolver, first SET
        with CaptureQueriesContext(connection) as captured:
            each.get(f"{base}/users/user-1/segments")
        sets = sum(q["sql"].startswith("SET ") for q in captured.captured_queries)
        statements[name] = f"{len(captured) - sets} queries + {sets} SET"
    sql_times, root_times = [], []
    times: dict[str, list[float]] = {name: [] for name in clients}
    cpu: dict[str, float] = dict.fromkeys(clients, 0.0)
    for i in range(READS):
        for name, each in clients.items():
            t0, c0 = time.perf_counter(), time.process_time()
            response = each.get(f"{base}/users/user-{i}/segments")
            times[name].append(time.perf_counter() - t0)
            cpu[name] += time.process_time() - c0
            assert response.status_code == 200, response.content[:200]
        with schema_context(schema), connection.cursor() as cursor:
            t0 = time.perf_counter()
            cursor.execute(
                "SELECT m.segment_id, s.name, m.entered_at, m.rule_version FROM segments_membership m "
                "JOIN segments_segment s ON s.id = m.segment_id WHERE m.user_id = %s AND s.active "
                "ORDER BY s.name",
                [f"user-{i}"],
            )
            cursor.fetchall()
            sql_times.append(time.perf_counter() - t0)
    for _ in range(200):  # the request stack alone (middleware, auth, org routing, DRF): the floor
        t0 = time.perf_counter()
        clients["token"].get(f"{base}/")
        root_times.append(time.perf_counter() - t0)

    def pcts(values: list[float]) -> str:
        return "/".join(f"{percentile(values, p) * 1000:.1f}" for p in (50, 95, 99))

    sql99, root99 = percentile(sql_times, 99), percentile(root_times, 99)
    rows: list[Row] = []
    for name, values in times.items():
        p99 = percentile(values, 99)
        rows.append(
            Row(
                workload=f"segments: GET users/<id>/segments, {name} auth ({_load_avg()})",
                size=f"{READS} queries",
                p360=(
                    f"p50/p95/p99 {pcts(values)} ms; {statements[name]}; "
                    f"Python CPU {cpu[name] / READS * 1000:.2f} ms/request"
                ),
                baseline=f"raw SELECT {pcts(sql_times)} ms; API root (token) p99 {root99 * 1000:.1f} ms",
                ratio=fmt_ratio(p99, sql99),
                goal=goal_text("p99 < 10 ms", p99 < 0.010),
            )
        )
    return rows


def _start_evaluators(workers: int, env: dict[str, str]) -> list[subprocess.Popen[str]]:
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "manage.py"),
                "segments_evaluator",
                "--worker",
                str(w),
                "--workers",
                str(workers),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for w in range(workers)
    ]
    for proc in procs:
        assert proc.stdout is not None
        proc.stdout.readline()  # "evaluator i/N: partitions [...]": consumers are being created
    return procs


def _stop(procs: list[subprocess.Popen[str]]) -> None:
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()


def _publish(events: list[dict[str, Any]]) -> None:
    from segments.services import ingest_events

    for offset in range(0, len(events), BATCH):
        ingest_events(raws=events[offset : offset + BATCH])


def _wait_stored(n: int, since: float) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        while True:
            cursor.execute("SELECT count(*) FROM segments_event")
            if cursor.fetchone()[0] >= n or time.perf_counter() - since > 170:
                return
            time.sleep(0.05)


def _jetstream_rows() -> list[Row]:
    from django.conf import settings
    from django.db import connection
    from django_tenants.utils import schema_context

    from tenants.services import org_create

    binary = Path(sys.executable).parent / "nats-server"
    if not binary.exists():
        return [
            Row(
                workload="segments: JetStream",
                size="-",
                p360="skipped: nats-server not installed",
                baseline="-",
                ratio="-",
                goal="-",
            )
        ]
    rows: list[Row] = []
    n = max(2000, EVENTS // 4)
    for workers in (1, 2):
        store = tempfile.mkdtemp(prefix="bench-nats-")
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        server = subprocess.Popen(
            [str(binary), "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", store],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        token = secrets.token_hex(3)
        org = org_create(slug=f"bench-js-{token}", name="Bench JetStream", ttd_advertiser_id=f"bj{token}")
        procs: list[subprocess.Popen[str]] = []
        try:
            time.sleep(0.5)
            url = f"nats://127.0.0.1:{port}"
            with schema_context(org.schema_name):
                _segments(8)
            env = {
                **os.environ,
                "SEGMENTS_RUNTIME": "jetstream",
                "SEGMENTS_NATS_URL": url,
                "P360_DB_NAME": str(connection.settings_dict["NAME"]),
                "SEGMENTS_PARTITIONS": "8",
            }
            settings.SEGMENTS_RUNTIME, settings.SEGMENTS_NATS_URL = "jetstream", url
            from segments import jetstream

            events = _events(n, f"js{token}", users=max(500, n // 20))
            with schema_context(org.schema_name):
                # 1. The evaluators run while the events are published (end to end).
                procs = _start_evaluators(workers, env)
                t0 = time.perf_counter()
                _publish(events)
                published = time.perf_counter() - t0
                _wait_stored(n, t0)
                elapsed = time.perf_counter() - t0
                # 2. The same events published again under new ids with the evaluators stopped, then drained: the
                # evaluators' own rate, without sharing the 2 cores with the publisher.
                _stop(procs)
                _publish([{**e, "event_id": f"{e['event_id']}-d"} for e in events])
                procs = _start_evaluators(workers, env)
                t1 = time.perf_counter()
                _wait_stored(2 * n, t1)
                drained = time.perf_counter() - t1
            jetstream.shutdown()
            load = _load_avg()
            for how, seconds, note in (
                ("", elapsed, ""),
                (", drain of a published backlog", drained, " (timed from the evaluators' start)"),
            ):
                rows.append(
                    Row(
                        workload=f"segments: JetStream, {workers} evaluator(s){how} ({load})",
                        size=f"{n:,} events",
                        p360=f"{n / seconds:,.0f}/s stored+evaluated{note}",
                        baseline=f"publish only {n / published:,.0f}/s",
                        ratio=fmt_ratio(seconds, published),
                        goal="scales with evaluators",
                    )
                )
        finally:
            settings.SEGMENTS_RUNTIME = "embedded"
            _stop(procs)
            server.terminate()
            server.wait(timeout=5)
            _drop(org)
    return rows
