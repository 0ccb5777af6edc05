"""Same-run A/B of cold builder previews: two checkouts' code over one stored 10M generation (issue 17, session 11).

    python bench/ab_builder.py OLD_CHECKOUT NEW_CHECKOUT [rounds] [runs]

Each round runs each checkout in a process of its own (old, new; then new, old: ABBA), with this checkout's
P360_DATA_DIR, so both load the same stored generation of profile_builder's org; each process previews every tree
of bench_builder.TREES `runs` times with the leaf memo emptied (cold), checks the counts, and reports CPU (every
thread) and wall per preview. Set the org up first: `P360_PROFILE_SETUP_ONLY=1 python -m bench.profile_builder`.
To run the old code beside this one: `git -C /work/main worktree add --detach /work/ab-NAME <commit>`.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

CHILD = "--child"


def child(runs: int) -> None:
    """In a checkout (the working directory): cold previews per tree, one JSON line on stdout."""
    sys.path.insert(0, os.getcwd())  # that checkout's code, not this file's
    from bench.common import setup_database

    setup_database()
    from django_tenants.utils import schema_context

    from audiences import cache, preview
    from bench import bench_builder as bb
    from tenants.models import Organization

    org = Organization.objects.get(slug=f"{bb.ORG_SLUG}-{bb.RECORDS}")
    out: dict[str, Any] = {}
    with schema_context(org.schema_name):
        entry, _ = cache.get()
        entry.settled.wait()
        entry.bombora  # noqa: B018  (the background read and the row indexes after it)
        bb._join_cache_threads()
        counts = {}
        for label, tree in bb.TREES.items():  # topic columns, category matches
            counts[label] = preview.audience_preview(tree=tree, sample=10)["count"]
        for label, tree in bb.TREES.items():
            cpu, wall = [], []
            for _ in range(runs):
                entry.leaf_memo.clear()
                c0, w0 = time.process_time(), time.perf_counter()
                result = preview.audience_preview(tree=tree, sample=10)
                cpu.append(time.process_time() - c0)
                wall.append(time.perf_counter() - w0)
                assert result["count"] == counts[label]
            out[label] = {"cpu": cpu, "wall": wall, "count": counts[label], "load": os.getloadavg()[0]}
    print("RESULT " + json.dumps(out), flush=True)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def main(old: str, new: str, rounds: int, runs: int) -> None:
    sides = {"old": old, "new": new}
    env = {**os.environ, "P360_DATA_DIR": os.environ.get("P360_DATA_DIR", os.path.abspath("var"))}
    results: dict[str, dict[str, dict[str, list[float]]]] = {name: {} for name in sides}
    counts: dict[str, set[int]] = {}
    for round_ in range(rounds):
        order = list(sides.items()) if round_ % 2 == 0 else list(sides.items())[::-1]
        for name, path in order:
            done = subprocess.run(
                [os.path.join(path, ".venv/bin/python"), os.path.abspath(__file__), CHILD, str(runs)],
                cwd=path,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
            if not lines:
                sys.exit(f"{name} ({path}) failed:\n{done.stderr[-3000:]}")
            for label, data in json.loads(lines[0].removeprefix("RESULT ")).items():
                counts.setdefault(label, set()).add(data["count"])
                into = results[name].setdefault(label, {"cpu": [], "wall": [], "load": []})
                into["cpu"] += data["cpu"]
                into["wall"] += data["wall"]
                into["load"].append(data["load"])
                print(
                    f"round {round_} {name} {label}: cpu/preview {statistics.mean(data['cpu']) * 1000:.1f} ms, "
                    f"wall p50 {statistics.median(data['wall']) * 1000:.1f} ms (load {data['load']:.1f})",
                    flush=True,
                )
    for name in sides:
        for label, data in results[name].items():
            print(
                f"{name} {label}: cpu/preview mean {statistics.mean(data['cpu']) * 1000:.1f} ms; wall p50 "
                f"{_percentile(data['wall'], 50) * 1000:.1f} / p95 {_percentile(data['wall'], 95) * 1000:.1f} ms; "
                f"load {min(data['load']):.1f}-{max(data['load']):.1f}"
            )
    print("counts equal:", all(len(found) == 1 for found in counts.values()))


if __name__ == "__main__":
    if sys.argv[1:2] == [CHILD]:
        child(int(sys.argv[2]))
    else:
        main(
            sys.argv[1],
            sys.argv[2],
            int(sys.argv[3]) if len(sys.argv) > 3 else 4,
            int(sys.argv[4]) if len(sys.argv) > 4 else 20,
        )
