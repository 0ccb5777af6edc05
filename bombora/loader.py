"""Loading a Bombora Company Surge file into one week partition of the score table.

Accepted layouts (CONTRACT "Input files", integrations.md section 4), gzipped or plain, detected from the first line:
- Master Surge, headerless, 9 fields: Company Name, Domain, Size, Industry, Category, Topic, Composite Score,
  <metro list `name[score]|...`>, Domain Origin Country;
- ADAT (All Domains All Topics), headerless, 12 fields: ... Composite Score, Bucket Code, Metro Area,
  Metro Composite Score, Metro Bucket Code, Domain Origin Country;
- a CSV with the header `Domain, Company Name, Topic, Composite Score` (+ optional `Week`, `Category`).

The file is streamed: decompressed in blocks of about P360_BOMBORA_CHUNK_MB, each block split and validated by
polars, deduplicated, and COPYed into a staging table `ingestion_bombora_score_load_<run>` (committed as it goes,
so progress is visible and memory stays flat whatever the file size). Then the staging table is indexed and, in one
short transaction, the week's old partition is dropped and the staging table attached in its place. A crash at any
point before that commit leaves the previous week untouched (the next run drops the orphaned staging table).

Duplicates ((domain, topic) twice in the week, e.g. ADAT's one row per metro) keep the highest score. Bombora files
come grouped by domain, so duplicates are merged per block, holding back the last domain of a block for the next
one; when the file turns out not to be sorted by domain the merge is redone over the whole table in SQL.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import logging
import queue
import re
import threading
import zlib
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import polars as pl
from django.conf import settings
from django.db import connection
from django.utils import timezone

from bombora.models import BomboraTopic, BomboraTopicWeek, BomboraWeek, BomboraWeekStatus
from bombora.store import (
    DOMAIN_QUALIFIED,
    QUALIFIED,
    SURGE_THRESHOLD,
    TABLE,
    domain_partition_name,
    partition_name,
    week_of,
)
from p360.core import domains as n
from p360.core.fault_inject import fault_point
from p360.core.intake import files
from p360.core.intake.tables import FileRejected, combine_problems

if TYPE_CHECKING:
    from ingestion.models import IngestionRun  # a load belongs to an ingestion run (typing only: no upward import)
    from p360.core.jobs.services import JobContext

logger = logging.getLogger(__name__)

STAGING_PREFIX = f"{TABLE}_load_"
TOPIC_MAX = 300
MAX_QUARANTINE_STORED = 100_000  # every bad row is counted; the first ones are kept with line and reason
RAW_MAX = 500
_DATE_IN_NAME = re.compile(r"(?<![0-9])(20[0-9]{2})(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])(?![0-9])")


# --- Layouts -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    name: str
    fields: int
    domain: int
    topic: int
    score: int
    category: int | None = None
    week: int | None = None
    header: bool = False


MASTER_SURGE = Layout("Master Surge", 9, domain=1, topic=5, score=6, category=4)
ADAT = Layout("ADAT (All Domains All Topics)", 12, domain=1, topic=5, score=6, category=4)
_HEADER_NAMES = {
    "domain": ("domain", "company domain", "domain name"),
    "topic": ("topic", "topic name"),
    "score": ("composite score", "score", "compositescore"),
    "category": ("category", "topic category"),
    "week": ("week", "week of", "date"),
}


def _split_line(line: str) -> list[str]:
    return next(csv.reader([line]), [])


def _norm_header(value: str) -> str:
    return " ".join(value.strip().strip('"').lower().replace("_", " ").split())


def detect_layout(first_line: str, name: str) -> Layout:
    """The layout of a file from its first line; a clear refusal for anything else."""
    stripped = first_line.lstrip("\ufeff").strip()
    head = stripped[:200].lower()
    if head.startswith(("<!doctype", "<html", "<?xml", "{", "[")):
        raise FileRejected(f"{name} is not a Bombora file (it looks like HTML/XML/JSON)")
    fields = _split_line(stripped)
    names = [_norm_header(f) for f in fields]
    if "domain" in names or "company domain" in names:
        positions: dict[str, int] = {}
        for key, aliases in _HEADER_NAMES.items():
            for index, header in enumerate(names):
                if header in aliases and key not in positions:
                    positions[key] = index
        missing = [label for key, label in (("domain", "Domain"), ("topic", "Topic"), ("score", "Composite Score"))]
        missing = [
            label for label, key in zip(missing, ("domain", "topic", "score"), strict=True) if key not in positions
        ]
        if missing:
            raise FileRejected(
                f"{name}: the header lacks {', '.join(missing)} "
                "(expected Domain, Company Name, Topic, Composite Score and optional Week)"
            )
        return Layout(
            "CSV with header",
            len(fields),
            domain=positions["domain"],
            topic=positions["topic"],
            score=positions["score"],
            category=positions.get("category"),
            week=positions.get("week"),
            header=True,
        )
    score_looks_right = len(fields) > 6 and fields[6].strip().isdigit()
    if len(fields) == MASTER_SURGE.fields and score_looks_right:
        return MASTER_SURGE
    if len(fields) == ADAT.fields and score_looks_right:
        return ADAT
    raise FileRejected(
        f"{name}: unknown layout (first line has {len(fields)} fields"
        + ("" if score_looks_right or len(fields) <= 6 else f", field 7 is {fields[6][:20]!r}, not a score")
        + "); expected headerless Master Surge (9 fields), ADAT (12 fields) or a CSV with the header "
        "Domain, Company Name, Topic, Composite Score"
    )


def week_from_name(name: str) -> dt.date | None:
    match = _DATE_IN_NAME.search(Path(name).name)
    if not match:
        return None
    try:
        return week_of(dt.date(int(match[1]), int(match[2]), int(match[3])))
    except ValueError:
        return None


# --- Reading -------------------------------------------------------------------------------------


def open_binary(path: Path) -> tuple[IO[bytes], IO[bytes]]:
    """(decompressed stream, raw file for progress); gzip is recognised by its magic bytes."""
    raw = path.open("rb")
    magic = raw.read(2)
    raw.seek(0)
    if magic == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=raw, mode="rb"), raw  # type: ignore[return-value]
    return raw, raw  # type: ignore[return-value]


def read_blocks(stream: IO[bytes], block_bytes: int) -> Iterator[bytes]:
    """Blocks of whole lines (the last may lack a final newline). A truncated/corrupt gzip raises FileRejected."""
    rest = b""
    while True:
        try:
            data = stream.read(block_bytes)
        except (EOFError, OSError, zlib.error) as exc:
            raise FileRejected(f"the gzip file is truncated or corrupt ({exc}); nothing was loaded") from exc
        if not data:
            if rest:
                yield rest
            return
        data = rest + data
        cut = data.rfind(b"\n")
        if cut < 0:
            rest = data
            continue
        rest = data[cut + 1 :]
        yield data[: cut + 1]


LINE, RAW, REASON = "line", "raw", "reason"


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
    return wanted


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
                parts = _split_line(raw)
            except csv.Error:
                parts = []
            rows.append([len(parts)] + [parts[i] if i < len(parts) else None for i in wanted.values()])
        extra = pl.DataFrame(rows, schema=["nfields", *wanted], orient="row", schema_overrides={"nfields": pl.UInt32})
        tricky = pl.concat([tricky, extra.with_columns(pl.col(k).cast(pl.String) for k in wanted)], how="horizontal")
        plain = pl.concat([plain, tricky], how="vertical_relaxed").sort(LINE)
    return plain.with_columns(pl.col("nfields").cast(pl.UInt32))


def _normalise_domains(values: pl.Series) -> pl.DataFrame:
    """raw domain -> normalised domain (null when unparseable), exactly the audience records' domain rules."""
    frame = pl.DataFrame({"domain": values.unique()})
    text = pl.col("domain").str.strip_chars()
    host = text.str.to_lowercase().str.replace(n.SCHEME_RE_TEXT, "").str.replace(n.PATH_RE_TEXT, "")
    host = host.str.replace(n.USERINFO_RE_TEXT, "").str.strip_prefix("www.")
    host = host.str.replace(n.PORT_RE_TEXT, "").str.strip_chars_end(".")
    frame = frame.with_columns(host.alias("_host"))
    ok = (pl.col("_host").str.len_chars() <= n.DOMAIN_MAX) & pl.col("_host").str.contains(n.DOMAIN_RE_TEXT)
    return frame.select("domain", pl.when(ok).then(pl.col("_host")).otherwise(None).alias("domain_v"))


def _refuse_non_table(data: bytes, name: str) -> None:
    """The core intake's content rule on the (decompressed) start of the file: no program, PDF, image, archive."""
    try:
        files.reject_non_table(data, name)
    except files.FileRejected as exc:
        raise FileRejected(exc.message) from None


def _first_content_line(data: bytes) -> tuple[int, str] | None:
    """(index, text) of the first non-blank line of a block."""
    for index, line in enumerate(data.split(b"\n")):
        text = line.decode("utf-8", errors="replace").strip()
        if text.lstrip("\ufeff"):
            return index, text
    return None


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


def parse_block(data: bytes, first_line: int, layout: Layout, skip: int | None) -> tuple[Block, int]:
    """Validate one block of lines. Returns (block, number of lines in it)."""
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
        pl.col("domain").fill_null("").str.strip_chars(),
        pl.col("topic").fill_null("").str.strip_chars(),
        pl.col("score").fill_null("").str.strip_chars(),
    )
    domains = _normalise_domains(df["domain"])
    df = df.join(domains, on="domain", how="left", maintain_order="left")
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
    df = df.with_columns(pl.all_horizontal(checks).alias("_ok"))
    bad = _bad_rows(df.filter(~pl.col("_ok")), layout, week_expr)
    good = df.filter(pl.col("_ok"))
    category = (
        pl.col("category").fill_null("").str.strip_chars().str.slice(0, 300)
        if layout.category is not None
        else pl.lit("")
    )
    columns = [
        pl.col("domain_v").alias("domain"),
        topic.alias("topic"),
        category.alias("category"),
        score.cast(pl.UInt8).alias("score"),
        pl.col(LINE),
    ]
    if week_expr is not None:  # rows of another week are quarantined later: keep their text
        columns += [pl.col(RAW), (week_expr - pl.duration(days=week_expr.dt.weekday() - 1)).alias("week")]
    return Block(good.select(columns), bad), n_lines


def _bad_rows(df: pl.DataFrame, layout: Layout, week_expr: pl.Expr | None) -> list[tuple[int, str, str]]:
    """(line, reason, raw) of the rows that failed a check; several problems are joined by '; '."""
    if df.is_empty():
        return []
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
    # A row with the wrong number of fields has misplaced values: that is its one reason.
    wrong_count = pl.format(f"expected {layout.fields} fields, found {{}}", pl.col("nfields"))
    reason = pl.when(pl.col("nfields") != layout.fields).then(wrong_count).otherwise(combine_problems(problems))
    out = df.select(pl.col(LINE), reason.alias(REASON), pl.col(RAW).str.slice(0, RAW_MAX))
    return list(zip(out[LINE].to_list(), out[REASON].to_list(), out[RAW].to_list(), strict=True))


def prefetch[T](items: Iterator[T], depth: int = 2) -> Generator[T]:
    """Run `items` in a thread, `depth` ahead: the next block is parsed (polars, no GIL) while this one is COPYed
    (PostgreSQL on the other core). Errors are re-raised here; stopping early stops the thread."""
    box: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                box.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put(("item", item)):
                    return
            put(("done", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            put(("error", exc))

    thread = threading.Thread(target=work, name="bombora-parse", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = box.get()
            if kind == "done":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        thread.join(timeout=30)


# --- Topics --------------------------------------------------------------------------------------


class Topics:
    """Topic name (case-insensitive) -> id; new topics are created as they appear (committed: ids feed the COPY)."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {n.lower(): i for n, i in BomboraTopic.objects.values_list("name", "id")}
        self.seen: set[int] = set()

    def resolve(self, names: pl.DataFrame) -> pl.DataFrame:
        """names (topic, category) -> frame (topic as written, topic_id); case variants map to one topic."""
        # A block has a few thousand distinct spellings at most: work on those, never on every row.
        spelled = names.unique(subset="topic", keep="first", maintain_order=True)
        spelled = spelled.with_columns(pl.col("topic").str.to_lowercase().alias("key"))
        unique = spelled.unique(subset="key", keep="first", maintain_order=True).select("key", "topic", "category")
        new = [(t, c) for k, t, c in unique.iter_rows() if k not in self.ids]
        if new:
            with connection.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO public.ingestion_bomboratopic (name, category) VALUES (%s, %s) "
                    "ON CONFLICT ((lower(name))) DO NOTHING",
                    new,
                )
            keys = [t.lower() for t, _ in new]
            for name, pk in BomboraTopic.objects.filter(name__in=[t for t, _ in new]).values_list("name", "id"):
                self.ids[name.lower()] = pk
            missing = [k for k in keys if k not in self.ids]
            if missing:  # a case variant created by another load: look it up case-insensitively
                for key in missing:
                    topic = BomboraTopic.objects.filter(name__iexact=key).first()
                    if topic is not None:
                        self.ids[key] = topic.pk
        mapping = pl.DataFrame(
            {"key": list(self.ids), "topic_id": list(self.ids.values())},
            schema={"key": pl.String, "topic_id": pl.Int32},
        )
        resolved = spelled.join(mapping, on="key", how="left").select("topic", "topic_id")
        self.seen.update(int(t) for t in resolved["topic_id"].drop_nulls().to_list())
        return resolved


# --- Loading -------------------------------------------------------------------------------------


@dataclass
class LoadStats:
    rows_read: int = 0
    quarantined: int = 0
    duplicates: int = 0
    loaded: int = 0
    domains: int = 0
    surging: int = 0
    sorted_by_domain: bool = True
    last_domain: str | None = None
    bad: list[tuple[int, str, str]] = field(default_factory=list)

    def add_bad(self, bad: list[tuple[int, str, str]]) -> None:
        self.quarantined += len(bad)
        room = MAX_QUARANTINE_STORED - len(self.bad)
        if room > 0:
            self.bad.extend(bad[:room])


def staging_name(run_id: int) -> str:
    return f"{STAGING_PREFIX}{run_id}"


LOCK_CLASS = 53_005  # advisory lock namespace of Bombora loads: (LOCK_CLASS, run id), held while a run loads


def hold_run_lock(run_id: int) -> None:
    """Mark this run's staging tables as alive: a session lock, released on unlock or when the process dies."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s, %s)", [LOCK_CLASS, run_id])


def release_run_lock(run_id: int) -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [LOCK_CLASS, run_id])
    except Exception:  # a lost connection released it already
        logger.warning("could not release the Bombora load lock of run %s", run_id, exc_info=True)


def drop_orphan_staging(keep_run: int | None = None) -> None:
    """Staging tables whose run holds no load lock (its worker died) are dropped; live loads are left alone."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE %s",
            [STAGING_PREFIX.replace("_", r"\_") + "%"],
        )
        names = [row[0] for row in cursor.fetchall()]
        for name in names:
            match = re.match(r"[0-9]+", name.removeprefix(STAGING_PREFIX))  # <run>, <run>_d, <run>_m
            run_id = int(match[0]) if match else None
            if run_id == keep_run:
                continue
            if run_id is not None:
                cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [LOCK_CLASS, run_id])
                if not cursor.fetchone()[0]:
                    continue  # another worker is loading it right now
            cursor.execute(f"DROP TABLE IF EXISTS public.{name}")
            if run_id is not None:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [LOCK_CLASS, run_id])


def _create_staging(name: str, week: dt.date, like: str = QUALIFIED) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS public.{name}")
        cursor.execute(f"CREATE TABLE public.{name} (LIKE {like} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        # The partition bound as a CHECK: ATTACH then skips its validation scan.
        cursor.execute(
            f"ALTER TABLE public.{name} ALTER COLUMN week SET DEFAULT DATE '{week.isoformat()}', "
            f"ADD CONSTRAINT {name}_week CHECK (week = DATE '{week.isoformat()}')"
        )
        cursor.execute(f"ALTER TABLE public.{name} SET (autovacuum_enabled = false)")


SCORE_COLUMNS = ("domain", "topic_id", "score")
DOMAIN_COLUMNS = ("domain", "topics", "surging", "max_score")


def _copy_rows(name: str, rows: pl.DataFrame, columns: tuple[str, ...] = SCORE_COLUMNS) -> None:
    """COPY the columns (CSV made by polars); the week is the table's default."""
    if rows.is_empty():
        return
    buffer = io.BytesIO()
    rows.select(columns).write_csv(buffer, include_header=False)
    view = buffer.getbuffer()
    with (
        connection.cursor() as cursor,
        cursor.copy(  # type: ignore[attr-defined]
            f"COPY public.{name} ({', '.join(columns)}) FROM STDIN (FORMAT csv)"
        ) as copy,
    ):
        for start in range(0, len(view), 1 << 20):
            copy.write(view[start : start + (1 << 20)])


def domain_summary(rows: pl.DataFrame) -> pl.DataFrame:
    return rows.group_by("domain").agg(
        pl.len().alias("topics"),
        (pl.col("score") >= SURGE_THRESHOLD).sum().alias("surging"),
        pl.col("score").max().alias("max_score"),
    )


def _merge(rows: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Duplicate (domain, topic_id) rows merged keeping the highest score; returns (rows, duplicates)."""
    # A hash per key is cheap; a collision only sends us to the exact merge below, never skips it.
    keys = rows.select((pl.col("domain").hash(seed=7) ^ pl.col("topic_id").hash(seed=11)).n_unique()).item()
    if keys == rows.height:
        return rows, 0
    merged = rows.group_by("domain", "topic_id", maintain_order=True).agg(pl.col("score").max())
    return merged, rows.height - merged.height


class WeekUnknown(FileRejected):
    pass


@dataclass
class Loader:
    run: IngestionRun
    path: Path
    name: str
    week: dt.date | None
    ctx: JobContext | None = None
    block_bytes: int = 32 << 20
    stats: LoadStats = field(default_factory=LoadStats)
    topic_ids: set[int] = field(default_factory=set)
    topic_counts: dict[int, list[int]] = field(default_factory=dict)  # topic id -> [domains, surging]

    def load(self) -> LoadStats:
        stream, raw = open_binary(self.path)
        size = max(1, self.path.stat().st_size)
        table = staging_name(self.run.pk)
        topics = Topics()
        carry: pl.DataFrame | None = None
        seen_content = False
        created = False
        blocks = prefetch(self._blocks(stream, raw))
        try:
            for _layout, block, position in blocks:
                seen_content = True
                self.stats.rows_read += block.good.height + len(block.bad)
                self.stats.add_bad(block.bad)
                good = block.good
                if good.is_empty():
                    continue
                if not created:
                    self._settle_week(good)
                    assert self.week is not None
                    _create_staging(table, self.week)
                    _create_staging(f"{table}_d", self.week, like=DOMAIN_QUALIFIED)
                    created = True
                good = self._restrict_week(good)
                ids = topics.resolve(good.select("topic", "category"))
                rows = good.join(ids, on="topic", how="left", maintain_order="left").select(
                    "domain", "topic_id", "score"
                )
                if carry is not None:
                    rows = pl.concat([carry, rows])
                if rows.is_empty():  # every row of the block was of another week
                    continue
                # Hold back the last domain: its rows may continue in the next block.
                last = rows["domain"][-1]
                carry = rows.filter(pl.col("domain") == last)
                rows = rows.filter(pl.col("domain") != last)
                self._write(table, rows)
                if self.ctx:
                    self.ctx.progress(position, size, rows_read=self.stats.rows_read)
            if carry is not None:
                self._write(table, carry)
            if not seen_content or self.stats.rows_read == 0:
                raise FileRejected(f"{self.name} is empty (no Bombora rows)")
            if self.stats.loaded == 0:  # nothing valid (or only rows of other weeks): never swap in an empty week
                exc = FileRejected(
                    f"no row of {self.name} could be loaded ({self.stats.quarantined:,} quarantined): "
                    + "; ".join(sorted({r for _, r, _ in self.stats.bad})[:3])
                )
                exc.bad = self.stats.bad  # type: ignore[attr-defined]
                raise exc
            fault_point("bombora:after_copy")
            self._finish_table(table)
            self.topic_ids = set(self.topic_counts)
            return self.stats
        except BaseException:
            if created:
                self._drop(table)
            raise
        finally:
            blocks.close()  # stops the parsing thread before its file is closed
            stream.close()
            raw.close()

    def _blocks(self, stream: IO[bytes], raw: IO[bytes]) -> Iterator[tuple[Layout, Block, int]]:
        """(layout, validated block, compressed bytes read): pure polars, so it can run in a thread."""
        layout: Layout | None = None
        line_no = 1
        for data in read_blocks(stream, self.block_bytes):
            skip: int | None = None
            if layout is None:
                if line_no == 1:
                    _refuse_non_table(data, self.name)
                found = _first_content_line(data)
                if found is None:  # only blank lines so far
                    line_no += data.count(b"\n")
                    continue
                offset, first = found
                layout = detect_layout(first, self.name)
                skip = line_no + offset if layout.header else None
            block, n_lines = parse_block(data, line_no, layout, skip)
            line_no += n_lines
            yield layout, block, raw.tell()

    def _settle_week(self, good: pl.DataFrame) -> None:
        if self.week is not None:
            return
        if "week" in good.columns:
            weeks = good["week"].drop_nulls()
            if len(weeks):
                self.week = weeks[0]
                check_not_too_old(self.week)  # as for a week from --date or the file name
                return
        raise WeekUnknown(
            f"{self.name}: no week: put the date (YYYYMMDD) in the file name, pass --date YYYY-MM-DD, "
            "or add a Week column"
        )

    def _restrict_week(self, good: pl.DataFrame) -> pl.DataFrame:
        if "week" not in good.columns:
            return good
        other = good.filter(pl.col("week").is_not_null() & (pl.col("week") != self.week))
        if other.height:
            assert self.week is not None
            self.stats.add_bad(
                [
                    (line, f"week {week:%Y-%m-%d} is not the file's week ({self.week:%Y-%m-%d})", raw[:RAW_MAX])
                    for line, week, raw in other.select(LINE, "week", RAW).iter_rows()
                ]
            )
            good = good.filter(pl.col("week").is_null() | (pl.col("week") == self.week))
        return good

    def _write(self, table: str, rows: pl.DataFrame) -> None:
        if rows.is_empty():
            return
        rows, duplicates = _merge(rows)
        self.stats.duplicates += duplicates
        first, last = rows["domain"].min(), rows["domain"].max()
        if self.stats.last_domain is not None and first is not None and str(first) <= self.stats.last_domain:
            self.stats.sorted_by_domain = False
        if last is not None and (self.stats.last_domain is None or str(last) > self.stats.last_domain):
            self.stats.last_domain = str(last)
        summary = domain_summary(rows)
        self.stats.loaded += rows.height
        self.stats.domains += summary.height
        self.stats.surging += int(summary["surging"].sum())
        _copy_rows(table, rows)
        _copy_rows(f"{table}_d", summary, DOMAIN_COLUMNS)
        per_topic = rows.group_by("topic_id").agg(pl.len(), (pl.col("score") >= SURGE_THRESHOLD).sum())
        for topic_id, domains, surging in per_topic.iter_rows():
            counts = self.topic_counts.setdefault(int(topic_id), [0, 0])
            counts[0] += int(domains)
            counts[1] += int(surging)

    def _finish_table(self, table: str) -> None:
        with connection.cursor() as cursor:
            if not self.stats.sorted_by_domain:
                # Blocks overlapped in domains: merge duplicates across the whole week in SQL.
                merged = f"{table}_m"
                _create_staging(merged, self.week)  # type: ignore[arg-type]
                cursor.execute(
                    f"INSERT INTO public.{merged} (domain, topic_id, score) "
                    f"SELECT domain, topic_id, max(score) FROM public.{table} GROUP BY domain, topic_id"
                )
                kept = cursor.rowcount
                self.stats.duplicates += self.stats.loaded - kept
                self.stats.loaded = kept
                cursor.execute(f"DROP TABLE public.{table}")
                cursor.execute(f"ALTER TABLE public.{merged} RENAME TO {table}")
                cursor.execute(f"ALTER TABLE public.{table} RENAME CONSTRAINT {merged}_week TO {table}_week")
                cursor.execute(f"TRUNCATE public.{table}_d")
                cursor.execute(
                    f"INSERT INTO public.{table}_d ({', '.join(DOMAIN_COLUMNS)}) SELECT domain, count(*), "
                    f"count(*) FILTER (WHERE score >= {SURGE_THRESHOLD}), max(score) FROM public.{table} GROUP BY domain"
                )
                self.stats.domains = cursor.rowcount
                cursor.execute(f"SELECT count(*) FILTER (WHERE score >= {SURGE_THRESHOLD}) FROM public.{table}")
                self.stats.surging = cursor.fetchone()[0]
                cursor.execute(
                    f"SELECT topic_id, count(*), count(*) FILTER (WHERE score >= {SURGE_THRESHOLD}) "
                    f"FROM public.{table} GROUP BY topic_id"
                )
                self.topic_counts = {int(t): [int(n), int(k)] for t, n, k in cursor.fetchall()}
            # Sorting 20-60M keys: in memory, not in many temporary files (session setting, reset right after).
            cursor.execute("SET maintenance_work_mem = '512MB'")
            try:
                cursor.execute(f"CREATE INDEX {table}_td ON public.{table} (topic_id, domain)")
                cursor.execute(f"CREATE INDEX {table}_d_domain ON public.{table}_d (domain)")
            finally:
                cursor.execute("RESET maintenance_work_mem")
            cursor.execute(f"ANALYZE public.{table}")
            cursor.execute(f"ANALYZE public.{table}_d")

    @staticmethod
    def _drop(table: str) -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"DROP TABLE IF EXISTS public.{table}")
                cursor.execute(f"DROP TABLE IF EXISTS public.{table}_m")
                cursor.execute(f"DROP TABLE IF EXISTS public.{table}_d")
        except Exception:  # the connection may be gone (that is why we are here): the next run cleans up
            logger.warning("could not drop Bombora staging table %s", table, exc_info=True)


# --- Swap and history ----------------------------------------------------------------------------


def history_weeks() -> int:
    return max(1, int(getattr(settings, "P360_BOMBORA_HISTORY_WEEKS", 12)))


def check_not_too_old(week: dt.date) -> None:
    newer = BomboraWeek.objects.filter(status=BomboraWeekStatus.READY, week__gt=week).count()
    if newer >= history_weeks():
        raise FileRejected(
            f"week {week:%Y-%m-%d} is older than the {history_weeks()} weeks kept (P360_BOMBORA_HISTORY_WEEKS)"
        )


def _partition_exists(cursor: object, name: str) -> bool:
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [f"public.{name}"])  # type: ignore[attr-defined]
    return bool(cursor.fetchone()[0])  # type: ignore[attr-defined]


def swap_in(run: IngestionRun, week: dt.date, stats: LoadStats, topic_counts: dict[int, list[int]]) -> list[dt.date]:
    """Replace the week's partition by the staging table and prune history (the caller's transaction)."""
    table = staging_name(run.pk)
    with connection.cursor() as cursor:
        # One swap at a time (two loads of one week: the later one wins, whole).
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext('p360:bombora:swap'))")
        for staged, target, parent, index in (
            (table, partition_name(week), QUALIFIED, "td"),
            (f"{table}_d", domain_partition_name(week), DOMAIN_QUALIFIED, "domain"),
        ):
            if _partition_exists(cursor, target):
                cursor.execute(f"DROP TABLE public.{target}")
            fault_point("bombora:after_drop_old")
            cursor.execute(f"ALTER TABLE public.{staged} RENAME TO {target}")
            cursor.execute(
                f"ALTER INDEX public.{table}_{'d_domain' if index == 'domain' else 'td'} RENAME TO {target}_{index}"
            )
            cursor.execute(f"ALTER TABLE public.{target} RENAME CONSTRAINT {staged}_week TO {target}_week")
            cursor.execute(
                f"ALTER TABLE {parent} ATTACH PARTITION public.{target} FOR VALUES IN (DATE '{week.isoformat()}')"
            )
            cursor.execute(f"ALTER TABLE public.{target} ALTER COLUMN week DROP DEFAULT")
            cursor.execute(f"ALTER TABLE public.{target} RESET (autovacuum_enabled)")
    topic_ids = set(topic_counts)
    BomboraTopicWeek.objects.filter(week=week).delete()
    BomboraTopicWeek.objects.bulk_create(
        [BomboraTopicWeek(week=week, topic_id=t, domains=n, surging=k) for t, (n, k) in topic_counts.items()],
        batch_size=2000,
    )
    BomboraTopic.objects.filter(pk__in=topic_ids, first_seen_week__isnull=True).update(first_seen_week=week)
    BomboraTopic.objects.filter(pk__in=topic_ids, first_seen_week__gt=week).update(first_seen_week=week)
    BomboraTopic.objects.filter(pk__in=topic_ids).exclude(last_seen_week__gte=week).update(last_seen_week=week)
    BomboraWeek.objects.update_or_create(
        week=week,
        defaults={
            "status": BomboraWeekStatus.READY,
            "run": run,
            "rows": stats.loaded,
            "domains": stats.domains,
            "topics": len(topic_ids),
            "surging_rows": stats.surging,
            "file_name": run.file_name[:500],
            "loaded_at": timezone.now(),
        },
    )
    fault_point("bombora:before_commit")
    return prune_history()


def prune_history() -> list[dt.date]:
    """Drop the partitions of ready weeks beyond the newest P360_BOMBORA_HISTORY_WEEKS; mark them pruned."""
    ready = list(BomboraWeek.objects.filter(status=BomboraWeekStatus.READY).order_by("-week"))
    pruned = []
    with connection.cursor() as cursor:
        for week in ready[history_weeks() :]:
            for name in (partition_name(week.week), domain_partition_name(week.week)):
                if _partition_exists(cursor, name):
                    cursor.execute(f"DROP TABLE public.{name}")
            BomboraTopicWeek.objects.filter(week=week.week).delete()
            week.status = BomboraWeekStatus.PRUNED
            week.save(update_fields=["status"])
            pruned.append(week.week)
    return pruned
