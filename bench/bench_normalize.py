"""Field normalisation (`audiences.normalize_batch.normalize_batch`) on a realistic dirty batch, against the plain Python
loop over the scalar reference functions (the same rules, value by value) on a sample of the same rows."""

from __future__ import annotations

import os
import time

import polars as pl

from bench.common import Row, fmt_s, goal_text

ORDER = 40
ROWS = 1_000_000
LOOP_SAMPLE = 50_000  # the scalar loop is timed on this many rows and scaled up
GOAL_SECONDS = 1.0

MAPPING = {
    "E-mail": "email",
    "Phone Number": "phone",
    "First Name": "first_name",
    "Last Name": "last_name",
    "Company": "company_name",
    "Website": "domain",
    "Annual Revenue": "revenue",
    "Employees": "employee_count",
    "Country": "country",
}
CUSTOM_TYPES = {"Lead Score": "integer", "Notes": "text"}


def _pick(options: list[str], salt: int) -> pl.Expr:
    """A deterministic pseudo-random choice per row (hash of the row number)."""
    index = (pl.col("__row").hash(salt) % len(options)).cast(pl.Int64)
    return pl.lit(pl.Series(options)).get(index)


def make_batch(rows: int = ROWS) -> pl.DataFrame:
    """All-String columns with the dirt real CRM exports carry, plus the Int64 `__row`."""
    base = pl.DataFrame({"__row": pl.arange(1, rows + 1, eager=True).cast(pl.Int64)})
    n = pl.col("__row").cast(pl.String)
    area = ((pl.col("__row").hash(7) % 800) + 200).cast(pl.String)
    exchange = ((pl.col("__row").hash(8) % 800) + 200).cast(pl.String)
    line = ((pl.col("__row").hash(9) % 9000) + 1000).cast(pl.String)
    phone_kind = pl.col("__row").hash(10) % 20
    email_kind = pl.col("__row").hash(11) % 20
    return base.with_columns(
        pl.when(email_kind == 0)
        .then(pl.lit("not an email"))
        .when(email_kind < 4)
        .then(pl.concat_str(pl.lit(" Jane.Doe+news"), n, pl.lit("@GMail.com ")))
        .when(email_kind < 6)
        .then(pl.lit(""))
        .otherwise(
            pl.concat_str(pl.lit("User.Name"), n, pl.lit("@"), _pick(["Example.com", "acme.io", "corp.co.uk"], 1))
        )
        .alias("E-mail"),
        pl.when(phone_kind == 0)
        .then(pl.lit("n/a"))
        .when(phone_kind == 1)
        .then(pl.concat_str(pl.lit("+44 20 7946 "), (pl.col("__row") % 10000).cast(pl.String).str.pad_start(4, "0")))
        .when(phone_kind < 8)
        .then(pl.concat_str(pl.lit("("), area, pl.lit(") "), exchange, pl.lit("-"), line))
        .when(phone_kind < 14)
        .then(pl.concat_str(pl.lit("+1 "), area, pl.lit("."), exchange, pl.lit("."), line))
        .otherwise(pl.concat_str(pl.lit("1"), area, exchange, line))
        .alias("Phone Number"),
        _pick([" Jane", "JOHN ", "María", "Li", "Oluwaseun", ""], 2).alias("First Name"),
        _pick(["Doe", "Smith ", "García", "O'Brien", "Nguyen"], 3).alias("Last Name"),
        _pick(["Acme Inc.", "Globex", "Initech LLC", "=cmd|' /C calc'!A0", "Umbrella"], 4).alias("Company"),
        pl.concat_str(
            _pick(["https://www.", "http://", "", "www."], 5),
            pl.lit("company"),
            (pl.col("__row") % 50_000).cast(pl.String),
            _pick([".com", ".co.uk/about", ".io:8080/", ".de?ref=x"], 6),
        ).alias("Website"),
        _pick(["$1,234,567", "2.5M", "1 234 567", "€ 12.345.678,90", "500000", "n/a", ""], 12).alias("Annual Revenue"),
        _pick(["1,200", "50", "10000", "", "12.5", "250"], 13).alias("Employees"),
        _pick(["USA", "United States", "US", "uk", "Germany", "DEU", "France", "Narnia", ""], 14).alias("Country"),
        (pl.col("__row") % 100).cast(pl.String).alias("Lead Score"),
        _pick(["call back", "", "VIP, prefers email", 'said "no"'], 15).alias("Notes"),
    )


def _scalar_loop(batch: pl.DataFrame) -> int:
    """The straightforward implementation: every value through the scalar reference functions."""
    from audiences.normalize import custom_value, normalize_value

    good = 0
    for row in batch.iter_rows(named=True):
        failed = False
        for header, field in MAPPING.items():
            _, reason = normalize_value(field, row[header])
            failed = failed or reason is not None
        for header, type_name in CUSTOM_TYPES.items():
            _, reason = custom_value(type_name, row[header])
            failed = failed or reason is not None
        good += not failed
    return good


def normalisation() -> Row:
    from audiences.normalize_batch import normalize_batch

    batch = make_batch()
    normalize_batch(batch.head(10_000), MAPPING, custom_types=CUSTOM_TYPES)  # warm-up (regex compilation)
    timings, cpu = [], []
    for _ in range(3):
        started, cpu_started = time.perf_counter(), time.process_time()
        result = normalize_batch(batch, MAPPING, custom_types=CUSTOM_TYPES)
        timings.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)  # all threads: what the batch costs whatever the load
    best = min(timings)
    sample = batch.head(LOOP_SAMPLE)
    started = time.perf_counter()
    _scalar_loop(sample)
    loop = (time.perf_counter() - started) * (ROWS / LOOP_SAMPLE)
    return Row(
        workload="audience field normalisation (11 columns)",
        # The load average says whether other work shared the two cores during the run.
        size=f"{ROWS:,} rows, {result.errors.height:,} errors, load {os.getloadavg()[0]:.1f}",
        p360=f"{fmt_s(best)} ({ROWS / best / 1e6:.1f}M rows/s; {min(cpu):.2f} CPU-s)",
        baseline=f"{fmt_s(loop)} scalar Python loop (scaled from {LOOP_SAMPLE:,})",
        ratio=f"x{loop / best:.0f} faster",
        goal=goal_text(f"<= {GOAL_SECONDS:.0f} s", best <= GOAL_SECONDS),
    )


def run() -> list[Row]:
    return [normalisation()]


if __name__ == "__main__":
    from bench.common import format_table

    print(format_table(run()))
