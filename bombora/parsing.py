"""Parsing and validating a block of a Bombora file's lines with polars: the needed fields, normalised domains,
checked topics, scores, weeks, volumes and surge flags; the bad rows with their line and reason.

Pure polars and no database, so that it runs in the prefetch thread (bombora/reading.py).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO

import numpy as np
import polars as pl

from bombora.layout import Layout, detect_layout, split_line
from bombora.reading import first_content_line, prefetch, read_blocks, refuse_non_table
from p360.core import domains as n
from p360.core.intake.tables import combine_problems

logger = logging.getLogger(__name__)

TOPIC_MAX = 300
RAW_MAX = 500
VOLUME_MAX = 2**31 - 1
SURGE_TRUE = ("true", "t", "yes", "y", "1")
SURGE_FALSE = ("false", "f", "no", "n", "0")
LINE, RAW, REASON = "line", "raw", "reason"
NEWLINE, COMMA = ord("\n"), ord(",")


@dataclass
class Block:
    good: pl.DataFrame  # domain, topic, category, score (UInt8), line
    bad: list[tuple[int, str, str]]
    weeks: pl.Series | None = None  # the Week column's week (Monday) per good row, header layout only


def _wanted(layout: Layout) -> dict[str, int]:
    wanted = {"domain": layout.domain, "topic": layout.topic, "score": layout.score}
    if layout.category is not None:
        wanted["category"] = layout.category
    if layout.week is not None:
        wanted["week"] = layout.week
    if layout.volume is not None:
        wanted["volume"] = layout.volume
    if layout.surge is not None:
        wanted["surge"] = layout.surge
    return wanted


def _volume_ok() -> pl.Expr:
    raw = pl.col("volume").fill_null("").str.strip_chars().str.replace_all(",", "", literal=True)
    return (raw == "") | (raw.str.contains(r"^[0-9]{1,10}$") & (raw.cast(pl.Int64, strict=False) <= VOLUME_MAX))


def _surge_ok() -> pl.Expr:
    raw = pl.col("surge").fill_null("").str.strip_chars().str.to_lowercase()
    return (raw == "") | raw.is_in([*SURGE_TRUE, *SURGE_FALSE])


def _fields_fast(data: bytes, lines: pl.DataFrame, layout: Layout) -> pl.DataFrame | None:
    """The needed fields by polars' CSV reader (all cores), aligned with `lines` (one row per line, blank lines
    included); None when the block has quotes (comma counts need the csv module) or does not align."""
    if b'"' in data:
        return None
    wanted = _wanted(layout)
    try:
        fields = pl.read_csv(
            data,
            has_header=False,
            schema={f"column_{i}": pl.String for i in range(layout.fields)},
            columns=list(wanted.values()),
            truncate_ragged_lines=True,  # field counts are checked separately, on the raw lines
            missing_columns="insert",
            quote_char=None,
            encoding="utf8-lossy",
            raise_if_empty=False,
        )
    except Exception:  # noqa: BLE001 - the exact split handles whatever the reader refuses
        return None
    if fields.height != lines.height:
        return None
    fields = fields.rename({f"column_{i}": name for name, i in wanted.items()})
    counts = pl.col(RAW).str.count_matches(",", literal=True).cast(pl.UInt32) + 1
    return pl.concat([lines.with_columns(counts.alias("nfields")), fields], how="horizontal")


def _fields(lines: pl.DataFrame, layout: Layout) -> pl.DataFrame:
    """Split lines into the needed fields; `nfields` counts them. Lines with quotes go through the csv module."""
    wanted = _wanted(layout)
    quoted = pl.col(RAW).str.contains('"', literal=True)
    plain = lines.filter(~quoted).with_columns(pl.col(RAW).str.split(",").alias("_f"))
    plain = plain.with_columns(
        pl.col("_f").list.len().alias("nfields"),
        *[pl.col("_f").list.get(i, null_on_oob=True).alias(k) for k, i in wanted.items()],
    ).drop("_f")
    tricky = lines.filter(quoted)
    if tricky.height:
        rows = []
        for raw in tricky[RAW].to_list():
            try:
                parts = split_line(raw)
            except csv.Error:
                parts = []
            rows.append([len(parts)] + [parts[i] if i < len(parts) else None for i in wanted.values()])
        extra = pl.DataFrame(rows, schema=["nfields", *wanted], orient="row", schema_overrides={"nfields": pl.UInt32})
        tricky = pl.concat([tricky, extra.with_columns(pl.col(k).cast(pl.String) for k in wanted)], how="horizontal")
        plain = pl.concat([plain, tricky], how="vertical_relaxed").sort(LINE)
    return plain.with_columns(pl.col("nfields").cast(pl.UInt32))


def _normalise_domains(values: pl.Series) -> pl.DataFrame:
    """raw domain -> normalised domain (null when unparseable), exactly the audience records' domain rules."""
    return _normalised(pl.DataFrame({"domain": values.unique()}))


def _normalised(frame: pl.DataFrame) -> pl.DataFrame:
    """frame (domain) -> frame (domain, domain_v): each domain normalised by the audience records' rules."""
    text = pl.col("domain").str.strip_chars()
    host = text.str.to_lowercase().str.replace(n.SCHEME_RE_TEXT, "").str.replace(n.PATH_RE_TEXT, "")
    host = host.str.replace(n.USERINFO_RE_TEXT, "").str.strip_prefix("www.")
    host = host.str.replace(n.PORT_RE_TEXT, "").str.strip_chars_end(".")
    frame = frame.with_columns(host.alias("_host"))
    ok = (pl.col("_host").str.len_chars() <= n.DOMAIN_MAX) & pl.col("_host").str.contains(n.DOMAIN_RE_TEXT)
    return frame.select("domain", pl.when(ok).then(pl.col("_host")).otherwise(None).alias("domain_v"))


def _with_normalised_domains(df: pl.DataFrame) -> pl.DataFrame:
    """df with `domain_v`, the normalised domain. A Bombora file is grouped by domain: each run of equal domains is
    normalised once and spread over its rows by position (no hashing of every row); a block with short runs
    (not grouped) goes through its distinct values and a join instead."""
    values = df["domain"]
    change = (values != values.shift(1)).fill_null(True)
    heads = values.filter(change)
    if len(heads) * 2 > len(values):
        return df.join(_normalise_domains(values), on="domain", how="left", maintain_order="left")
    run = change.cast(pl.UInt32).cum_sum() - 1
    normalised = _normalised(pl.DataFrame({"domain": heads}))["domain_v"]
    return df.with_columns(normalised.gather(run).alias("domain_v"))


def _lines(data: bytes) -> pl.DataFrame:
    """One row per line (blank lines kept as null, so that line numbers stay exact)."""
    expected = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    if b"\x01" in data:  # the fast split uses \x01 as its separator: it would cut such a line short
        return _lines_exact(data)
    try:
        # polars' CSV reader splits lines on all cores; \x01 never occurs in a Bombora file.
        lines = pl.read_csv(
            data,
            has_header=False,
            separator="\x01",
            quote_char=None,
            infer_schema=False,
            new_columns=[RAW],
            truncate_ragged_lines=True,
            encoding="utf8-lossy",
            raise_if_empty=False,
        )
        if lines.height == expected and lines.width == 1:
            return lines.with_columns(pl.col(RAW).fill_null(""))
    except Exception:  # noqa: BLE001 - polars refused an odd block: the plain split below is exact
        logger.debug("fast line split failed; splitting in plain polars")
    return _lines_exact(data)


def _lines_exact(data: bytes) -> pl.DataFrame:
    """The plain split: exact for any byte, slower than polars' CSV reader."""
    expected = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    text = data.decode("utf-8", errors="replace")
    lines = pl.DataFrame({RAW: [text]}).select(pl.col(RAW).str.split("\n")).explode(RAW)
    return lines.slice(0, expected)


def _uniform_lines(data: bytes, fields: int) -> int | None:
    """The number of lines of the block when every line has exactly `fields` - 1 commas (so `fields` fields, as
    the block has no quotes); None otherwise (a line with more or fewer, a blank line).

    Exact with the comma and newline positions: the commas number (fields - 1) per line, and taken (fields - 1) at
    a time in order, each line's share all lies between its newline and the one before. Two numpy scans of the
    block, about the cost of the two `bytes.count` calls it replaces."""
    per_line = fields - 1
    if per_line < 1:
        return None
    block = np.frombuffer(data, np.uint8)
    ends = np.flatnonzero(block == NEWLINE)
    if not data.endswith(b"\n"):
        ends = np.append(ends, len(data))
    commas = np.flatnonzero(block == COMMA)
    lines = len(ends)
    if not lines or len(commas) != per_line * lines:
        return None
    grid = commas.reshape(lines, per_line)
    if not (grid[:, -1] < ends).all() or not (grid[1:, 0] > ends[:-1]).all():
        return None
    return lines


def _fields_direct(data: bytes, first_line: int, layout: Layout) -> pl.DataFrame | None:
    """The needed fields of a plain block (no quotes or CR; no header), one read of polars' CSV reader and no
    per-line text: exact when every line has the layout's number of fields, which `_uniform_lines` proves from
    the comma and newline positions. None (use the general path) otherwise.
    A bad row's text, the only per-line text needed, is cut from the block later (`_with_raw`)."""
    if layout.week is not None or b'"' in data or b"\r" in data:
        return None
    expected = _uniform_lines(data, layout.fields)
    if expected is None:
        return None
    wanted = _wanted(layout)
    try:
        # Only the needed columns are materialised (issue 17: all 9 of Master Surge's read as strings were 11 of
        # the load's 26 Python CPU-s at 20M rows, the unused company names and metros most of it). A projecting
        # reader ignores extra fields: `_uniform_lines` has ruled them out. Strict UTF-8: a block with an invalid
        # byte goes the general path, which replaces it as the reader would have.
        fields = pl.read_csv(
            data,
            has_header=False,
            schema={f"column_{i}": pl.String for i in range(layout.fields)},
            columns=sorted(wanted.values()),
            quote_char=None,
            raise_if_empty=False,
        )
    except Exception:  # noqa: BLE001 - whatever the reader refuses, the general path handles
        return None
    if fields.height != expected:
        return None
    return fields.select(
        pl.int_range(first_line, first_line + expected, dtype=pl.Int64).alias(LINE),
        pl.lit(layout.fields, dtype=pl.UInt32).alias("nfields"),
        *[pl.col(f"column_{i}").alias(name) for name, i in wanted.items()],
    )


def _with_raw(bad: pl.DataFrame, data: bytes, first_line: int) -> pl.DataFrame:
    """The bad rows of a block read by `_fields_direct`, with their line's text."""
    if RAW in bad.columns or bad.is_empty():
        return bad
    raw = _lines(data)[RAW].gather(bad[LINE] - first_line)
    return bad.with_columns(raw.alias(RAW))


def parse_block(data: bytes, first_line: int, layout: Layout, skip: int | None) -> tuple[Block, int]:
    """Validate one block of lines. Returns (block, number of lines in it)."""
    df = _fields_direct(data, first_line, layout) if skip is None else None
    if df is not None:
        n_lines = df.height
    else:
        lines = _lines(data)
        n_lines = lines.height
        lines = lines.with_row_index(LINE, offset=first_line).with_columns(pl.col(LINE).cast(pl.Int64))
        if b"\r" in data:
            lines = lines.with_columns(pl.col(RAW).str.strip_suffix("\r"))
        fast = _fields_fast(data, lines, layout)
        if skip is not None:  # the header line
            lines = lines.filter(pl.col(LINE) != skip)
            fast = fast.filter(pl.col(LINE) != skip) if fast is not None else None
        # Blank lines are skipped (not rows); a line of spaces is a row with one field (quarantined).
        df = fast.filter(pl.col(RAW) != "") if fast is not None else _fields(lines.filter(pl.col(RAW) != ""), layout)
    if df.is_empty():
        return Block(pl.DataFrame(schema={"domain": pl.String}), []), n_lines
    df = df.with_columns(
        # The domain is stripped once per run of equal domains by the normalisation (and for the bad rows'
        # reasons in `_bad_rows`), never on every row.
        pl.col("domain").fill_null(""),
        pl.col("topic").fill_null("").str.strip_chars(),
        pl.col("score").fill_null("").str.strip_chars(),
    )
    df = _with_normalised_domains(df)
    topic, score = pl.col("topic"), pl.col("score")
    # Cheap checks on every row; the reason texts are built for the few bad rows only.
    score_ok = score.str.contains(r"^[0-9]{1,3}$") & (score.cast(pl.Int32, strict=False) <= 100)
    checks = [
        pl.col("nfields") == layout.fields,
        pl.col("domain_v").is_not_null(),
        (topic != "") & (topic.str.len_chars() <= TOPIC_MAX),
        score_ok,
    ]
    week_expr = None
    if layout.week is not None:
        raw_week = pl.col("week").fill_null("").str.strip_chars().str.slice(0, 10)
        week_expr = pl.coalesce(
            raw_week.str.to_date("%Y-%m-%d", strict=False), raw_week.str.to_date("%m/%d/%Y", strict=False)
        )
        checks.append((raw_week == "") | week_expr.is_not_null())
    if layout.volume is not None:
        checks.append(_volume_ok())
    if layout.surge is not None:
        checks.append(_surge_ok())
    df = df.with_columns(pl.all_horizontal(checks).alias("_ok"))
    bad = _bad_rows(_with_raw(df.filter(~pl.col("_ok")), data, first_line), layout, week_expr)
    good = df.filter(pl.col("_ok"))
    # As written: `Topics.resolve` cleans the categories of the few distinct topics, not of every row.
    category = pl.col("category") if layout.category is not None else pl.lit("")
    columns = [
        pl.col("domain_v").alias("domain"),
        topic.alias("topic"),
        category.alias("category"),
        score.cast(pl.UInt8).alias("score"),
        pl.col(LINE),
    ]
    if week_expr is not None:  # rows of another week are quarantined later: keep their text
        columns += [pl.col(RAW), (week_expr - pl.duration(days=week_expr.dt.weekday() - 1)).alias("week")]
    if layout.volume is not None:
        volume = pl.col("volume").fill_null("").str.strip_chars().str.replace_all(",", "", literal=True)
        columns.append(pl.when(volume == "").then(None).otherwise(volume).cast(pl.Int32).alias("volume"))
    if layout.surge is not None:
        surge = pl.col("surge").fill_null("").str.strip_chars().str.to_lowercase()
        columns.append(
            pl.when(surge.is_in(list(SURGE_TRUE))).then(True).when(surge.is_in(list(SURGE_FALSE))).then(False)
            .otherwise(None).alias("surging")
        )  # fmt: skip
    return Block(good.select(columns), bad), n_lines


def _bad_rows(df: pl.DataFrame, layout: Layout, week_expr: pl.Expr | None) -> list[tuple[int, str, str]]:
    """(line, reason, raw) of the rows that failed a check; several problems are joined by '; '."""
    if df.is_empty():
        return []
    df = df.with_columns(pl.col("domain").str.strip_chars())
    topic, score = pl.col("topic"), pl.col("score")
    score_ok = score.str.contains(r"^[0-9]{1,3}$") & (score.cast(pl.Int32, strict=False) <= 100)
    problems = [
        pl.when(pl.col("domain") == "")
        .then(pl.lit("domain is empty"))
        .when(pl.col("domain_v").is_null())
        .then(pl.format("domain '{}' is not a domain name", pl.col("domain").str.slice(0, 80)))
        .otherwise(None),
        pl.when(topic == "")
        .then(pl.lit("topic is empty"))
        .when(topic.str.len_chars() > TOPIC_MAX)
        .then(pl.lit(f"topic is longer than {TOPIC_MAX} characters"))
        .otherwise(None),
        pl.when(~score_ok)
        .then(pl.format("composite score '{}' is not a whole number from 0 to 100", score.str.slice(0, 20)))
        .otherwise(None),
    ]
    if week_expr is not None:
        raw_week = pl.col("week").fill_null("").str.strip_chars().str.slice(0, 10)
        problems.append(
            pl.when((raw_week != "") & week_expr.is_null())
            .then(pl.format("week '{}' is not a date (YYYY-MM-DD)", raw_week))
            .otherwise(None)
        )
    if layout.volume is not None:
        problems.append(
            pl.when(~_volume_ok())
            .then(pl.format("research volume '{}' is not a whole number", pl.col("volume").str.slice(0, 20)))
            .otherwise(None)
        )
    if layout.surge is not None:
        problems.append(
            pl.when(~_surge_ok())
            .then(pl.format("surge '{}' is not true/false (or yes/no, 1/0)", pl.col("surge").str.slice(0, 20)))
            .otherwise(None)
        )
    # A row with the wrong number of fields has misplaced values: that is its one reason.
    wrong_count = pl.format(f"expected {layout.fields} fields, found {{}}", pl.col("nfields"))
    reason = pl.when(pl.col("nfields") != layout.fields).then(wrong_count).otherwise(combine_problems(problems))
    out = df.select(pl.col(LINE), reason.alias(REASON), pl.col(RAW).str.slice(0, RAW_MAX))
    return list(zip(out[LINE].to_list(), out[REASON].to_list(), out[RAW].to_list(), strict=True))


def validated_blocks(
    stream: IO[bytes], raw: IO[bytes], name: str, block_bytes: int
) -> Iterator[tuple[Layout, Block, int]]:
    """(layout, validated block, compressed bytes read): pure polars, so it can run in a thread."""
    layout: Layout | None = None
    line_no = 1
    # Decompression in a thread of its own (zlib releases the GIL): it overlaps the parsing of the previous block.
    for data in prefetch(read_blocks(stream, block_bytes)):
        skip: int | None = None
        if layout is None:
            if line_no == 1:
                refuse_non_table(data, name)
            found = first_content_line(data)
            if found is None:  # only blank lines so far
                line_no += data.count(b"\n")
                continue
            offset, first = found
            layout = detect_layout(first, name)
            skip = line_no + offset if layout.header else None
        block, n_lines = parse_block(data, line_no, layout, skip)
        line_no += n_lines
        yield layout, block, raw.tell()
