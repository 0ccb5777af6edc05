"""Audience import, end to end, against raw PostgreSQL COPY of the same file in the same run.

A generated CSV with a realistic mix of fields and dirt (mixed-case and gmail addresses, invalid emails,
phones in several formats, websites with schemes and paths, revenue with thousands separators, country
names, quoted titles with commas, in-file duplicates, two custom columns). `P360_BENCH_IMPORT_ROWS` sets
the size (default 10,000,000 rows x `P360_BENCH_SCALE`, about 1 GB at full size); the file is generated once under
var/bench/.

Wall-clock figures are inflated on a shared machine, so the rows also print the CPU-seconds of the importing
process and of the PostgreSQL server (all its backends), the per-phase timings the import records, and the
load average at the start and end of the run.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import Row, fmt_s, goal_text

ORDER = 30
SCALE = float(os.environ.get("P360_BENCH_SCALE", "1"))
ROWS = int(int(os.environ.get("P360_BENCH_IMPORT_ROWS", "10000000")) * SCALE)
SMALL_ROWS = 10_000
ROOT = Path(__file__).resolve().parents[1]
GOAL_SHARE_OF_COPY = 0.40
GOAL_PEAK_BYTES = 2 * 1024**3
GOAL_SMALL_SECONDS = 1.0

COLUMNS = [
    "Email",
    "Phone",
    "First Name",
    "Last Name",
    "Job Title",
    "Company",
    "Website",
    "Annual Revenue",
    "Employees",
    "Country",
    "Member ID",
]


def generate(rows: int, path: Path) -> Path:
    """Write the benchmark file with polars (vectorised, seconds for millions of rows)."""
    import polars as pl

    if path.exists() and path.stat().st_size > 0:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    i = pl.int_range(0, rows, dtype=pl.Int64, eager=True).alias("i")
    frame = pl.DataFrame(i)
    n = pl.col("i")
    # 3 % of rows repeat an earlier person (in-file duplicates), 2 % have an invalid email.
    person = pl.when(n % 33 == 7).then(n // 2).otherwise(n)
    email = (
        pl.when(n % 50 == 3)
        .then(pl.lit("not-an-email-") + n.cast(pl.String))
        .when(n % 10 == 1)
        .then(pl.lit(" First.Last") + person.cast(pl.String) + pl.lit("+news@GMail.com "))
        .otherwise(
            pl.lit("U") + person.cast(pl.String) + pl.lit("@Ex") + (person % 997).cast(pl.String) + pl.lit(".com")
        )
    )
    # Exchange 200-999 and a four-digit line: valid NANP numbers in three spellings.
    digits = (person % 800 + 200).cast(pl.String) + (person % 10_000).cast(pl.String).str.zfill(4)
    phone = (
        pl.when(n % 10 == 0)
        .then(pl.lit(""))
        .when(n % 3 == 0)
        .then(pl.lit("(415) ") + digits.str.slice(0, 3) + pl.lit("-") + digits.str.slice(3, 4))
        .when(n % 3 == 1)
        .then(pl.lit("+1 415 ") + digits.str.slice(0, 3) + pl.lit(" ") + digits.str.slice(3, 4))
        .otherwise(pl.lit("415.") + digits.str.slice(0, 3) + pl.lit(".") + digits.str.slice(3, 4))
    )
    countries = ["United States", "USA", "US", "Germany", "DE", "United Kingdom", "France", "Canada"]
    titles = ["VP, Sales", "Head of Marketing", "Engineer", "CFO", "Director, Operations"]
    frame = frame.select(
        email.alias("Email"),
        phone.alias("Phone"),
        (pl.lit("Fn") + (person % 5000).cast(pl.String)).alias("First Name"),
        (pl.lit("Ln") + (person % 7919).cast(pl.String)).alias("Last Name"),
        pl.lit(pl.Series(titles)).get(person % len(titles)).alias("Job Title"),
        (pl.lit("Co ") + (person % 200_000).cast(pl.String)).alias("Company"),
        pl.when(n % 4 == 0)
        .then(pl.lit("https://www.co") + (person % 200_000).cast(pl.String) + pl.lit(".com/"))
        .otherwise(pl.lit("co") + (person % 200_000).cast(pl.String) + pl.lit(".com"))
        .alias("Website"),
        (
            (person % 900 + 1).cast(pl.String)
            + pl.lit(",")
            + (person % 1000).cast(pl.String).str.zfill(3)
            + pl.lit(",")
            + (person * 7 % 1000).cast(pl.String).str.zfill(3)
        ).alias("Annual Revenue"),
        ((person % 5000) + 1).cast(pl.String).alias("Employees"),
        pl.lit(pl.Series(countries)).get(person % len(countries)).alias("Country"),
        (pl.lit("M") + person.cast(pl.String)).alias("Member ID"),
    )
    tmp = path.with_suffix(".tmp")
    frame.write_csv(tmp)
    tmp.rename(path)
    return path


def _copy_baseline(path: Path) -> float:
    """Seconds for raw COPY of the file into a plain text table (client-side, CSV format)."""
    from django.db import connection

    columns = ", ".join(f'"{c}" text' for c in COLUMNS)
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_import_copy")
        cursor.execute(f"CREATE TABLE bench_import_copy ({columns})")
        start = time.perf_counter()
        with path.open("rb") as handle, cursor.copy("COPY bench_import_copy FROM STDIN (FORMAT csv, HEADER)") as copy:  # type: ignore[attr-defined]
            while chunk := handle.read(1 << 20):
                copy.write(chunk)
        elapsed = time.perf_counter() - start
        cursor.execute("DROP TABLE bench_import_copy")
    return elapsed


def server_cpu_seconds() -> float | None:
    """CPU-seconds the PostgreSQL server has used so far (postmaster, live backends, and reaped ones).

    None when the server is not local (DATABASE_URL on another host): then only the client's CPU is shown.
    """
    import psutil
    from django.db import connection

    try:
        with connection.cursor() as cursor:
            cursor.execute("SHOW data_directory")
            data_dir = Path(cursor.fetchone()[0])
        postmaster = psutil.Process(int((data_dir / "postmaster.pid").read_text().split()[0]))
        times = postmaster.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        for child in postmaster.children():
            with contextlib.suppress(psutil.Error):
                child_times = child.cpu_times()
                total += child_times.user + child_times.system
        return total
    except (OSError, ValueError, psutil.Error):
        return None


def _import_in_subprocess(path: Path, name: str) -> tuple[float, dict, int, float]:
    """Seconds, the command's JSON, the peak RSS (bytes) and the CPU-seconds of the importing process."""
    env = {
        **os.environ,
        "P360_DB_NAME": os.environ.get("P360_DB_NAME", "p360_bench"),
        "P360_IMPORT_MAX_BYTES": str(8 * 1024**3),
    }
    args = [sys.executable, str(ROOT / "manage.py"), "import_audience", "--org", "acme", str(path)]
    args += ["--name", name, "--mode", "replace", "--json"]
    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peak = _PeakWatch(proc.pid)
    out, err = _read_both(proc)
    # wait4: this child's own CPU. Not its peak RSS: Linux carries the high-water mark of the memory the child
    # started in (this bench process's, shared until exec) into the child's ru_maxrss, so the 10M run that first
    # generated the file (polars held ~3.3 GB here) reported 3.3 GB for an import that never passed 1.5 GB.
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(err.strip().splitlines()[-1] if err.strip() else "import failed")
    result = json.loads(out)
    return elapsed, result, peak.stop() << 20, usage.ru_utime + usage.ru_stime


class _PeakWatch:
    """The child's own peak RSS (MB): its VmHWM (the high-water mark of the memory it got at exec), read every
    0.1 s while it runs; the mark only grows, so the last reading misses at most the last 0.1 s."""

    def __init__(self, pid: int) -> None:
        self.path, self.peak, self.done = Path(f"/proc/{pid}/status"), 0, threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        while not self.done.is_set():
            with contextlib.suppress(OSError, ValueError):
                for line in self.path.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        self.peak = max(self.peak, int(line.split()[1]) // 1024)
            self.done.wait(0.1)

    def stop(self) -> int:
        self.done.set()
        self.thread.join()
        return self.peak


def _read_both(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """Drain stdout and stderr without waiting for the process (its status is reaped with wait4)."""
    assert proc.stdout is not None and proc.stderr is not None
    parts: dict[str, str] = {}
    readers = [threading.Thread(target=lambda k=k, f=f: parts.__setitem__(k, f.read()))
               for k, f in (("out", proc.stdout), ("err", proc.stderr))]  # fmt: skip
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join()
    return parts["out"], parts["err"]


def _phases(import_id: int) -> str:
    """The import's recorded phases, costliest first: wall seconds, the process's CPU-seconds while the phase ran
    (helper threads included; COPY workers overlapping it too), the RSS at its end; then the COPY workers' own
    CPU-seconds."""
    from django.db import connection
    from django_tenants.utils import schema_context

    from audiences.models import AudienceImport

    with schema_context("org_acme"):
        quality = AudienceImport.objects.get(pk=import_id).quality
    connection.set_schema_to_public()  # type: ignore[attr-defined]
    timings, cpu = quality.get("timings", {}), quality.get("cpu_seconds", {})
    rss = quality.get("rss_mb", {})
    ordered = sorted(timings.items(), key=lambda item: -cpu.get(item[0], item[1]))
    phases = [
        f"{name} {seconds:.1f} ({cpu.get(name, float('nan')):.1f} CPU, {rss.get(name, 0):,} MB)"
        for name, seconds in ordered
    ]
    if "copy_workers" in cpu:
        phases.append(f"COPY workers' own CPU {cpu['copy_workers']:.1f}")
    peaks = quality.get("peak_rss_mb", {})
    if peaks:  # where the process's high-water mark rose (before / between phases, or in one), and to what
        phases.append(
            "peak RSS reached in " + ", ".join(f"{n} {mb:,} MB" for n, mb in sorted(peaks.items(), key=lambda i: -i[1]))
        )
    return ", ".join(phases)


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f}/{five:.1f}"


def _timed[T](fn: Callable[[], T]) -> tuple[T, float, float]:
    """fn's result, and the PostgreSQL server's CPU-seconds and the wall seconds around it."""
    before = server_cpu_seconds()
    start = time.perf_counter()
    result = fn()
    elapsed = time.perf_counter() - start
    after = server_cpu_seconds()
    return result, (after - before) if before is not None and after is not None else float("nan"), elapsed


def _import_in_process(path: Path, name: str) -> tuple[float, dict]:
    from django.db import connection
    from django_tenants.utils import schema_context

    from audiences.pipeline import summary
    from audiences.services import import_configure, import_create, import_start

    with schema_context("org_acme"):
        start = time.perf_counter()
        imp = import_create(audience_name=name, source_name=path.name, actor=None, path=path)
        imp = import_configure(imp=imp, actor=None, mapping=imp.mapping, mode="replace")
        imp = import_start(imp=imp, actor=None, inline=True)
        elapsed = time.perf_counter() - start
        result = summary(imp)
    connection.set_schema_to_public()  # type: ignore[attr-defined]
    return elapsed, result


def large_import() -> list[Row]:
    path = generate(ROWS, ROOT / "var" / "bench" / f"audience-{ROWS}.csv")
    size_mb = path.stat().st_size / 1e6
    load_start = _load()
    copy_seconds, copy_pg_cpu, _ = _timed(lambda: _copy_baseline(path))
    (seconds, result, peak, cpu), pg_cpu, _ = _timed(lambda: _import_in_subprocess(path, "bench-import-large"))
    load = f"load {load_start} -> {_load()}"
    ours = result["rows_read"] / seconds
    baseline = ROWS / copy_seconds
    share = ours / baseline
    phases = _phases(result["import_id"])
    print(
        f"audience import {ROWS:,} rows ({load}): {seconds:.1f} s wall, {cpu:.1f} CPU-s importer + "
        f"{pg_cpu:.1f} CPU-s PostgreSQL; raw COPY {copy_seconds:.1f} s wall, {copy_pg_cpu:.1f} CPU-s PostgreSQL; "
        f"phases (s): {phases}",
        flush=True,
    )
    return [
        Row(
            workload=f"audience import, end to end, {load}",
            size=f"{ROWS:,} rows, {size_mb:,.0f} MB",
            p360=f"{ours:,.0f} rows/s ({fmt_s(seconds)}; CPU {cpu:.1f} s + PG {pg_cpu:.1f} s)",
            baseline=f"{baseline:,.0f} rows/s raw COPY ({fmt_s(copy_seconds)}; PG CPU {copy_pg_cpu:.1f} s)",
            ratio=f"{share:.0%} of COPY",
            goal=goal_text(f">= {GOAL_SHARE_OF_COPY:.0%} of COPY", share >= GOAL_SHARE_OF_COPY),
        ),
        Row(
            workload=f"audience import, phases (wall s, process CPU s while each ran, RSS MB), {load}",
            size=f"{ROWS:,} rows",
            p360=phases,
            baseline="-",
            ratio="-",
            goal="-",
        ),
        Row(
            workload="audience import, peak memory",
            size=f"{ROWS:,} rows",
            p360=f"{peak / 1024**2:,.0f} MB peak RSS (the import process's own VmHWM)",
            baseline=f"file {size_mb:,.0f} MB",
            ratio=f"{peak / max(path.stat().st_size, 1):.2f}x file",
            goal=goal_text("< 2 GB", peak < GOAL_PEAK_BYTES),
        ),
    ]


def small_import() -> Row:
    path = generate(SMALL_ROWS, ROOT / "var" / "bench" / f"audience-{SMALL_ROWS}.csv")
    copy_seconds = _copy_baseline(path)
    seconds, _ = _import_in_process(path, "bench-import-small")
    return Row(
        workload="audience import, source doc case",
        size=f"{SMALL_ROWS:,} rows",
        p360=fmt_s(seconds),
        baseline=f"{fmt_s(copy_seconds)} raw COPY",
        ratio=f"x{seconds / copy_seconds:.1f}",
        goal=goal_text(f"< {GOAL_SMALL_SECONDS:g} s (doc: 30 s)", seconds < GOAL_SMALL_SECONDS),
    )


def run() -> list[Row]:
    return [small_import(), *large_import()]
