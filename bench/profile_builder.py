"""Builder preview profiling at a development size (issue 17): per-leaf and per-tree CPU and wall, no SQL baseline.

    P360_BENCH_SCALE=0.2 python -m bench.profile_builder [runs]

Generates the bench org's records and Bombora week once (kept between runs, unlike `python -m bench builder`), so a
second run loads the stored generation instead of rebuilding. Prints, per tree of bench_builder.TREES: each leaf's
wall/CPU when evaluated alone, then cold (every leaf) and editing (one leaf changed) p50/p95 wall and mean CPU per
preview, with the load average beside them.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from bench import bench_builder as bb
from bench.common import percentile


def _cpu() -> float:
    return time.process_time()  # every thread of this process


def _run_delay() -> float:
    """Seconds this process's threads have waited for a core (ready to run, on the run queue: another process held
    it), summed over threads (/proc schedstat; 0 where it cannot be read). Waiting for the GIL is not in it."""
    total = 0
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/schedstat") as handle:
                total += int(handle.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1e9


def _stats(values: list[float]) -> str:
    return f"p50 {percentile(values, 50) * 1000:6.1f} / p95 {percentile(values, 95) * 1000:6.1f} ms"


def _http(slug: str, tree: dict[str, Any], runs: int, entry: Any) -> tuple[list[float], list[float]]:
    """HTTP end to end as bench_builder measures it (test client, session auth, JSON)."""
    from django.db import connection
    from django.test import Client

    from tenants.models import User

    schema = connection.schema_name  # type: ignore[attr-defined]
    client = Client()
    admin = User.objects.filter(role="super_admin").first()
    assert admin is not None, "the demo data's super admin logs in"
    client.force_login(admin, backend="tenants.auth.RoleBackend")
    url = f"/o/{slug}/api/v1/audiences/preview"

    def post(t: dict[str, Any]) -> None:
        response = client.post(url, {"tree": t, "sample": 10}, content_type="application/json")
        assert response.status_code == 200, response.content[:300]

    connection.set_schema_to_public()  # type: ignore[attr-defined]
    try:
        edit = []
        for t in bb._edits(tree, runs * 2)[runs:]:
            t0 = time.perf_counter()
            post(t)
            edit.append(time.perf_counter() - t0)
        cold = []
        for _ in range(runs):
            entry.leaf_memo.clear()
            t0 = time.perf_counter()
            post(tree)
            cold.append(time.perf_counter() - t0)
    finally:
        connection.set_schema(schema)  # type: ignore[attr-defined]
    return cold, edit


def _ab(tree: dict[str, Any], runs: int, entry: Any, timed: Any) -> None:
    """Cold previews with the per-category masks of few-category Enum columns (session 10) and without them (the
    code kernels of session 9), interleaved in rounds over the same entry: CPU and wall per preview."""
    from audiences.logic import polars_engine

    masks, share = polars_engine.BITMAP_MAX_CATEGORIES, polars_engine.SORTED_MAX_SHARE
    variants = {"kernels": (0, 0.0), "+masks": (masks, 0.0), "+masks+sorted": (masks, share)}
    results: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in variants}
    try:
        for _ in range(int(os.environ.get("P360_PROFILE_AB_ROUNDS", "4"))):
            for name, (limit, fraction) in variants.items():
                polars_engine.BITMAP_MAX_CATEGORIES, polars_engine.SORTED_MAX_SHARE = limit, fraction
                walls, cpu = timed([tree] * max(1, runs // 4), before=entry.leaf_memo.clear)
                results[name][0].extend(walls)
                results[name][1].append(cpu)
    finally:
        polars_engine.BITMAP_MAX_CATEGORIES, polars_engine.SORTED_MAX_SHARE = masks, share
    for name, (walls, cpus) in results.items():
        print(
            f"  A/B cold, {name:>13}: {_stats(walls)}  cpu/preview {sum(cpus) / len(cpus) * 1000:6.1f} ms "
            f"(load {os.getloadavg()[0]:.1f})"
        )


def _leaf_path(frame: Any, leaf: Any, entry: Any) -> str:
    """Which of leaf_bits' paths evaluates the leaf (the first that takes it, as leaf_bits tries them)."""
    from audiences.logic import polars_engine as pe

    schema = pe.ColumnTypes(frame)
    if pe._direct(frame, leaf, entry.strings) is not None:
        return "direct"
    if pe._bitmap_leaf(frame, leaf, entry.strings) is not None:
        return "masks"
    if pe._sorted_leaf(frame, leaf, schema, entry.indexes) is not None:
        return "sorted"
    if pe._compare_leaf(frame, leaf, entry.strings, schema) is not None:
        return "compare"
    if pe._kernel(frame, leaf, entry.strings) is not None or pe._integer_kernel(frame, leaf, schema) is not None:
        return "kernel"
    return "polars"


def _phases(entry: Any, tree: dict[str, Any], runs: int) -> None:
    """A cold preview's CPU by phase, as audience_preview does them (session 11: where the time outside the
    leaves goes)."""
    from audiences.logic import bits
    from audiences.logic.polars_engine import _combine, leaf_bits
    from audiences.logic.tree import conditions, parse
    from audiences.preview import _frame_for, _has_hash_bits, sample_records

    names = ("parse", "frame", "leaves", "combine", "uid2", "sample")
    spent = dict.fromkeys(names, 0.0)
    for _ in range(runs):
        marks = [_cpu()]
        node = parse(tree, entry.resolver(), audience_ids=set())
        marks.append(_cpu())
        frame = _frame_for(entry, node, {})
        marks.append(_cpu())
        leaves = conditions(node)
        words = leaf_bits(frame, leaves, entry.strings, entry.indexes)
        marks.append(_cpu())
        nodes: dict[str, dict[str, int]] = {}
        mask, _ = _combine(node, {leaf.path: w for leaf, w in zip(leaves, words, strict=True)}, frame.height, nodes)
        marks.append(_cpu())
        hashed = _has_hash_bits(entry)
        if hashed is not None:
            bits.count(mask & hashed)
        marks.append(_cpu())
        sample_records(entry, bits.positions(mask, 10), wait=False)
        marks.append(_cpu())
        for name, start, end in zip(names, marks, marks[1:], strict=True):
            spent[name] += end - start
    print("  cold phases, cpu/preview: " + ", ".join(f"{k} {v / runs * 1000:.2f} ms" for k, v in spent.items()))


def main() -> None:
    from bench.common import setup_database

    setup_database()
    from django.db import connection
    from django_tenants.utils import schema_context

    from audiences import cache
    from audiences.logic.polars_engine import leaf_bits, leaf_masks
    from audiences.logic.tree import conditions, parse
    from audiences.preview import _frame_for, audience_preview
    from bombora.models import BomboraWeek
    from tenants.models import Organization
    from tenants.services import org_create

    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    # The org's size apart from the Bombora week's (P360_BENCH_SCALE): one week serves orgs of several sizes, so a
    # 10M org and a 2M org for iterating keep their stored generations.
    records = int(os.environ.get("P360_PROFILE_RECORDS", bb.RECORDS))
    slug = bb.ORG_SLUG if records == 2_000_000 else f"{bb.ORG_SLUG}-{records}"
    org = Organization.objects.filter(slug=slug).first() or org_create(slug=slug, name=f"Builder bench {records}")
    week_domains = bb.DOMAINS
    bb.RECORDS, bb.DOMAINS = records, max(100, records // 5)
    with schema_context(org.schema_name):
        bb._ensure_records()
    bb.DOMAINS = week_domains
    if not BomboraWeek.objects.filter(week=bb.WEEK, rows=bb.SCORES).exists():
        bb._load_bombora()
    with schema_context(org.schema_name):
        started = time.perf_counter()
        entry, _ = cache.get()
        # A first build serves counts before its second pass (identifiers) is read and the generation stored: wait
        # for it (else previews are timed beside that pass, and a set-up run exits before anything is stored).
        entry.settled.wait()
        entry.bombora  # noqa: B018  (wait for the background read: steady state)
        bb._join_cache_threads()  # and for the row indexes built after it (Entry.warm_indexes)
        print(f"indexes: {sorted(entry.indexes)}, {entry.nbytes() / 2**20:.0f} MB heap", flush=True)
        print(
            f"cache: {entry.height:,} people in {time.perf_counter() - started:.1f} s "
            f"({entry.stats.get('build_phases')})",
            flush=True,
        )
        if os.environ.get("P360_PROFILE_SETUP_ONLY"):
            return
        only = set(sys.argv[2:])
        for label, tree in bb.TREES.items():
            if only and label.split()[0] not in only:
                continue
            audience_preview(tree=tree, sample=10)  # topic columns, category scans
            node = parse(tree, entry.resolver(), audience_ids=set())
            frame = _frame_for(entry, node, {})
            print(f"\n== {label} ({os.getloadavg()[0]:.1f} load)")
            for leaf in conditions(node):
                walls, cpus = [], []
                for _ in range(5):
                    t0, c0 = time.perf_counter(), _cpu()
                    leaf_bits(frame, [leaf], entry.strings, entry.indexes)  # the preview's path (row indexes)
                    walls.append(time.perf_counter() - t0)
                    cpus.append(_cpu() - c0)
                print(
                    f"  leaf {leaf.field.column:>16} {leaf.operator:>11} ({_leaf_path(frame, leaf, entry):>7}): "
                    f"wall {min(walls) * 1000:6.1f} ms cpu {min(cpus) * 1000:6.1f} ms"
                )
            _phases(entry, tree, runs)

            for threads in ("1", "2"):
                os.environ["P360_BUILDER_THREADS"] = threads
                walls, cpus = [], []
                for _ in range(10):
                    t0, c0 = time.perf_counter(), _cpu()
                    leaf_masks(frame, conditions(node), entry.strings)
                    walls.append(time.perf_counter() - t0)
                    cpus.append(_cpu() - c0)
                print(f"  every leaf, {threads} thread(s): wall {_stats(walls)}, cpu min {min(cpus) * 1000:.1f} ms")
            os.environ.pop("P360_BUILDER_THREADS")

            delays: list[float] = []

            def timed(
                trees: list[dict[str, Any]], before: Any = None, delays: list[float] = delays
            ) -> tuple[list[float], float]:
                walls: list[float] = []
                cpu = delay = 0.0
                for t in trees:
                    if before is not None:
                        before()
                    t0, c0, d0 = time.perf_counter(), _cpu(), _run_delay()
                    audience_preview(tree=t, sample=10)
                    walls.append(time.perf_counter() - t0)
                    cpu += _cpu() - c0
                    delay += _run_delay() - d0
                delays[:] = [delay / len(trees)]
                return walls, cpu / len(trees)

            cold, cold_cpu = timed([tree] * runs, before=entry.leaf_memo.clear)
            cold_delay = delays[0]
            edit, edit_cpu = timed(bb._edits(tree, runs))
            load = os.getloadavg()[0]
            print(
                f"  cold    {_stats(cold)}  cpu/preview {cold_cpu * 1000:6.1f} ms  waiting for a core "
                f"{cold_delay * 1000:6.1f} ms/preview  (load {load:.1f})"
            )
            print(f"  editing {_stats(edit)}  cpu/preview {edit_cpu * 1000:6.1f} ms  (load {load:.1f})")
            if os.environ.get("P360_PROFILE_AB"):
                _ab(tree, runs, entry, timed)
            if os.environ.get("P360_PROFILE_HTTP"):
                http_cold, http_edit = _http(slug, tree, runs, entry)
                print(f"  HTTP cold    {_stats(http_cold)}  (load {os.getloadavg()[0]:.1f})")
                print(f"  HTTP editing {_stats(http_edit)}  (load {os.getloadavg()[0]:.1f})")
            if os.environ.get("P360_PROFILE"):
                import cProfile
                import pstats

                profiler = cProfile.Profile()
                for t in bb._edits(tree, runs)[:10] if os.environ["P360_PROFILE"] == "edit" else [tree] * 10:
                    if os.environ["P360_PROFILE"] != "edit":
                        entry.leaf_memo.clear()
                    profiler.enable()
                    audience_preview(tree=t, sample=10)
                    profiler.disable()
                pstats.Stats(profiler).sort_stats("tottime").print_stats(22)
    connection.set_schema_to_public()  # type: ignore[attr-defined]


if __name__ == "__main__":
    main()
