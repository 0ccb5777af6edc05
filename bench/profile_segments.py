"""Segments ingest + evaluation profiling with same-run A/B (issue 13, sessions 9 and 10).

    python -m bench.profile_segments [batches] [--ab] [--cprofile] [--statements] [--explain] [--live]

Posts 10K-event batches through POST /events (the test client, as bench_segments does; batches over
SEGMENTS_EVALUATE_INLINE_MAX are queued) and evaluates each one with `evaluate_pending` in this process, measuring
per batch: API Python CPU, API PostgreSQL backend CPU, evaluator Python CPU, evaluator PostgreSQL CPU. With `--ab`
batches alternate between variant A (`segments.api.views.PAUSE_GC = False`; the previous `json_depth`; the id
table in the database's collation, as before migration 0011) and B (the current paths) on the same data, so both
see the same machine. Both sides run the default evaluation path (`CHUNK_COMMITS` is left alone: off, a claim in
one transaction, since session 10's review; until session 11 this script switched B to chunk commits, so its B
figures measured the opt-in path). (Session 10's A/B also ran new ids through the joined STORE_SQL, since
removed; session 9's switched FAST_STORE, the window state fillfactor and the evaluator's previous write paths:
docs/segments.md.)
Session 13: `AB_API` (default `FAST_COLUMNS,FAST_DEPTH,FORGET_BODY`) names the API's flags A switches off as well (`AB_FLAGS=`
empty compares the API paths alone).
`--cprofile` prints the top functions of the API and the evaluator for one batch. `--live` makes each batch just
before posting it (the same 10K users, event times relative to that moment: a user's last_active_at moves by
seconds per batch, as for users active all day; session 12's PROFILE_SLACK A/B).
"""

from __future__ import annotations

import cProfile
import json
import os
import pstats
import secrets
import sys
import time

from bench import bench_segments as bs
from bench.common import backend_cpu_s, setup_database


def _variant(new: bool) -> None:
    """Session 12: A runs the evaluator's previous paths (the AB_FLAGS of segments.evaluator off), B the current ones;
    the API's paths are the current ones on both sides (the collector paused, the current json_depth; sessions 9-11
    switched those: docs/segments.md). Both: the default claim path (CHUNK_COMMITS left alone)."""
    from p360.core import api_parsers
    from segments import evaluator
    from segments import events as events_mod
    from segments.api import views

    views.PAUSE_GC = True
    api_parsers.json_depth = _CURRENT.setdefault("json_depth", api_parsers.json_depth)  # type: ignore[assignment]
    for flag in AB_FLAGS:
        current_flag = _CURRENT.setdefault(flag, getattr(evaluator, flag))
        setattr(evaluator, flag, current_flag if new else False)
    for flag in AB_API:  # session 13: the API's paths (flags of segments.events, segments.api.views, api_parsers)
        module = next(m for m in (events_mod, views, api_parsers) if hasattr(m, flag))
        current_flag = _CURRENT.setdefault(f"api.{flag}", getattr(module, flag))
        setattr(module, flag, current_flag if new else False)


_CURRENT: dict[str, object] = {}  # the functions _variant swaps out, as imported
# segments.evaluator flags A runs switched off (session 13: LEAN_CHUNK; session 12 measured WINDOW_FIRST);
# `AB_FLAGS=X,Y` names others.
AB_FLAGS = [f for f in os.environ.get("AB_FLAGS", "LEAN_CHUNK").split(",") if f]
# The API's flags A runs switched off (session 13: segments.events.FAST_COLUMNS, p360.core.api_parsers.FAST_DEPTH);
# `AB_API=` (empty) leaves the API current on both sides, `AB_FLAGS=` the evaluator.
AB_API = [f for f in os.environ.get("AB_API", "FAST_COLUMNS,FAST_DEPTH,FORGET_BODY").split(",") if f]


def _inflate_states(copies: int) -> None:
    """EXPLAIN_INFLATE=n: before the explain, add n copies of every window state under other user ids (then
    ANALYZE), so the chunk statement is planned against a state table as large as a big org's, not the bench's."""
    if copies <= 0:
        return
    from django.db import connection

    with connection.cursor() as c:
        c.execute(
            "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute "
            "WHERE attrelid = 'segments_windowstate'::regclass AND attnum > 0 AND NOT attisdropped "
            "AND attname NOT IN ('id', 'user_id')"
        )
        columns = c.fetchone()[0]
        c.execute(
            f"INSERT INTO segments_windowstate (user_id, {columns}) SELECT user_id || '~' || g, {columns} "
            "FROM segments_windowstate, generate_series(1, %s) g",
            [copies],
        )
        c.execute("ANALYZE segments_windowstate")
        c.execute("SELECT count(*) FROM segments_windowstate")
        print(f"   window states inflated to {c.fetchone()[0]:,} rows")


def _explain_next() -> None:
    """Backend CPU of the evaluator's chunk statement and of variants with a part cut out (each run 5 times in a
    rolled-back savepoint, interleaved), then EXPLAIN (ANALYZE, BUFFERS) of the real one (`--explain`)."""
    from django.db import connection, transaction

    from segments import evaluator

    real = evaluator._evaluate_table

    def variants_of(sql: str) -> dict[str, str]:
        probe = sql[sql.index("(SELECT m.entered_at FROM segments_membership m") : sql.index(" AS entered_at,")]
        found = {
            "current": sql,
            "wide write (NARROW_WRITE off)": evaluator.WIDE_WRITE_SQL.get(sql, ""),  # of the previous statements
            "no membership lookup": sql.replace(probe, "NULL::timestamptz"),
            "no writes": sql[: sql.index(", me AS MATERIALIZED (")] + " SELECT count(*) FROM j",
            "no update (insert/delete kept)": sql.replace(
                "FROM w CROSS JOIN me WHERE w.existed AND", "FROM w CROSS JOIN me WHERE false AND"
            ),
            "no added agg (all read whole)": sql.replace(
                "k.inc0 AND NOT coalesce(ad.unsure, false) AS forward", "false AS forward"
            ),
        }
        found = {name: text for name, text in found.items() if text}
        for name, text in found.items():  # a variant whose anchor moved would silently measure the current one
            assert name == "current" or text != sql, f"--explain variant {name!r} no longer applies"
        return found

    def explained(cursor, now, timer, touched=False, buckets=None):  # type: ignore[no-untyped-def]
        _inflate_states(int(os.environ.get("EXPLAIN_INFLATE", "0")))
        params = {"now": now, "horizon": now + evaluator.FUTURE_SKEW}
        if buckets is not None:  # window-first (WINDOW_FIRST): the chunk's range of user buckets
            params["low"], params["high"] = buckets
        base = evaluator.EVALUATE_TOUCHED_SQL if buckets is None else evaluator.EVALUATE_WINDOWS_SQL
        sql = evaluator._written(base)  # the statement the flags select (LEAN_CHUNK: session 13's)
        variants = variants_of(sql)
        if sql != base:
            variants["previous (LEAN_CHUNK off)"] = base
        cpu: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(5):
            for name, text in variants.items():
                try:
                    with transaction.atomic(), connection.cursor() as c:
                        c.execute("SET LOCAL enable_sort = off; SET LOCAL work_mem = '64MB'")
                        t0 = backend_cpu_s()
                        c.execute(text, params)
                        c.fetchall()
                        cpu[name].append(backend_cpu_s() - t0)
                        raise RuntimeError("rollback")
                except RuntimeError:
                    pass
        for name, values in cpu.items():
            print(
                f"   {name:32s} {sorted(values)[2] * 1000:6.0f} ms median backend CPU ({[round(v * 1000) for v in values]})"
            )
        try:
            with transaction.atomic(), connection.cursor() as c:
                c.execute("SET LOCAL enable_sort = off; SET LOCAL work_mem = '64MB'")
                c.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params)
                print("\n".join(r[0] for r in c.fetchall()))
                raise RuntimeError("rollback")
        except RuntimeError:
            pass
        return real(cursor, now, timer, touched, buckets)

    evaluator._evaluate_table = explained  # type: ignore[assignment]


def _old_storage(schema: str) -> None:
    """Org A gets the storage settings before this session's migration (reversed by hand for the A/B)."""
    from django.db import connection

    with connection.cursor() as cursor:
        for sql in OLD_STORAGE:
            cursor.execute(sql.format(schema=schema))


OLD_STORAGE: list[str] = [
    'ALTER TABLE "{schema}".segments_event_id ALTER COLUMN event_id TYPE text COLLATE "default"',  # before 0011
]


STATEMENT_CPU: dict[str, float] = {}
LABEL = ["-"]  # the variant running (the statement table is per variant)


def _time_statements() -> None:
    """Backend CPU per statement kind (first words of the SQL), summed over the run (`--statements`)."""
    import psutil
    from django.db import connection
    from django.db.backends import utils

    real = utils.CursorWrapper.execute
    proc: list[psutil.Process] = []

    def timed(self, sql, params=None):  # type: ignore[no-untyped-def]
        if not proc:
            with connection.cursor() as c:
                c.cursor.execute("SELECT pg_backend_pid()")
                proc.append(psutil.Process(c.cursor.fetchone()[0]))
        t0 = sum(proc[0].cpu_times()[:2])
        try:
            return real(self, sql, params)
        finally:
            key = f"{LABEL[0]} " + " ".join(str(sql).split())[:70]
            STATEMENT_CPU[key] = STATEMENT_CPU.get(key, 0.0) + sum(proc[0].cpu_times()[:2]) - t0

    utils.CursorWrapper.execute = timed  # type: ignore[method-assign]


def main() -> int:
    args = sys.argv[1:]
    batches = int(next((a for a in args if a.isdigit()), "20"))
    ab, prof = "--ab" in args, "--cprofile" in args
    setup_database()
    if "--statements" in args:
        _time_statements()
    from django.db import connection
    from django_tenants.utils import schema_context

    from segments.evaluator import evaluate_pending
    from tenants.services import org_create

    token = secrets.token_hex(3)
    labels = ["A", "B"] if ab else ["B"]
    orgs = {
        label: org_create(
            slug=f"prof-seg-{token}-{label.lower()}", name=f"Prof {label}", ttd_advertiser_id=f"ps{token}{label}"
        )
        for label in labels
    }
    if ab and "--old-storage" in args:  # session 10's A/B: org A's id table in the database's collation
        _old_storage(orgs["A"].schema_name)
    events = bs._events(batches * bs.BATCH, "p", users=10_000)
    bodies = [json.dumps({"events": events[o : o + bs.BATCH]}) for o in range(0, len(events), bs.BATCH)]
    live = "--live" in args  # each batch made just before it is posted: a user's events move forward by seconds
    sums: dict[str, list[float]] = {label: [0.0] * 5 for label in labels}
    try:
        client = bs._client(orgs[labels[0]])
        for org in orgs.values():
            with schema_context(org.schema_name):
                bs._segments(8)
        for n, body in enumerate(bodies):
            if live:
                body = json.dumps({"events": bs._events(bs.BATCH, f"p{n}", users=10_000)})
            for label in labels if n % 2 == 0 else labels[::-1]:
                org = orgs[label]
                _variant(label == "B")
                LABEL[0] = label
                last = n == int(os.environ.get("PROFILE_BATCH", len(bodies) - 1)) and label == "B"
                if "--explain" in args and last:
                    _explain_next()
                profiler = cProfile.Profile() if prof and last else None
                connection.set_schema_to_public()  # type: ignore[attr-defined]
                wall0, cpu0, pg0 = time.perf_counter(), time.process_time(), backend_cpu_s()
                if profiler:
                    profiler.enable()
                response = client.post(f"/o/{org.slug}/api/v1/events", body, content_type="application/json")
                if profiler:
                    profiler.disable()
                assert response.status_code == 202, response.content[:300]
                cpu1, pg1 = time.process_time(), backend_cpu_s()
                eprof = cProfile.Profile() if profiler else None
                with schema_context(org.schema_name):
                    if eprof:
                        eprof.enable()
                    outcome = evaluate_pending()
                    if eprof:
                        eprof.disable()
                    cpu2, pg2 = time.process_time(), backend_cpu_s()
                wall = time.perf_counter() - wall0
                parts = [cpu1 - cpu0, pg1 - pg0, cpu2 - cpu1, pg2 - pg1, wall]
                if n >= 2:  # the first batches create partitions and window states: warm-up
                    sums[label] = [a + b for a, b in zip(sums[label], parts, strict=True)]
                print(
                    f"{n:3d} {label} api py {parts[0] * 1000:6.0f} pg {parts[1] * 1000:6.0f} | eval py "
                    f"{parts[2] * 1000:6.0f} pg {parts[3] * 1000:6.0f} | wall {wall * 1000:6.0f} ms "
                    f"| {len(outcome.transitions)} transitions, {outcome.pairs} pairs | load {os.getloadavg()[0]:.2f}",
                    flush=True,
                )
                if profiler and eprof:
                    for name, p in (("API", profiler), ("evaluator", eprof)):
                        print(f"--- {name}")
                        pstats.Stats(p).sort_stats("tottime").print_stats(25)
        count = max(0, len(bodies) - 2)
        for label, values in sums.items():
            if count:
                per = [v / count * 1000 for v in values]
                print(
                    f"{label} mean of {count}: api py {per[0]:.0f} + pg {per[1]:.0f} | eval py {per[2]:.0f} + pg "
                    f"{per[3]:.0f} = {sum(per[:4]):.0f} ms CPU per 10K; wall {per[4]:.0f} ms"
                )
        print(f"load {os.getloadavg()}")
        for key, cpu in sorted(STATEMENT_CPU.items(), key=lambda kv: -kv[1])[:25]:
            print(f"  {cpu * 1000 / max(1, len(bodies)):7.1f} ms/batch  {key}")
        connection.set_schema_to_public()  # type: ignore[attr-defined]
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT schemaname, relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del FROM pg_stat_user_tables "
                "WHERE schemaname = ANY(%s) AND n_tup_upd + n_tup_del > 0 ORDER BY relname, schemaname",
                [[org.schema_name for org in orgs.values()]],
            )
            for row in cursor.fetchall():
                print("  ", row)
    finally:
        for org in orgs.values():
            bs._drop(org)
    return 0


if __name__ == "__main__":
    sys.exit(main())
