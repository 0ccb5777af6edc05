"""Device-id files (LiveRamp match-partner layout, reference 3.2-3.5) and the TTD/CSV export files.

Rows come straight out of PostgreSQL with `COPY (SELECT ...) TO STDOUT` and are streamed to disk, split at the
row and size limits, hashed while written: memory stays flat whatever the audience size.

Sources (document 002): the MAIDs and IPs of the audience's records, plus `MAID`/`IP` user ids of REDS events
attributed to the audience (`audience_id` = the audience's id or `p360_<id>`, our assumption: the REDS layout is
ours) inside the lookback window. A REDS MAID has no type: upper-case hex is written as IDFA, lower-case as AAID
(LiveRamp's own casing rules). A GAID is written as AAID. Opted-out people (UID2 opt-outs of their email or
phone) are left out. Only device columns are selected: PII never reaches a device file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from activation.identities import optout_filter_sql, uid2s_sql
from activation.sources import audience_records_sql, schema
from audiences.models import Audience

MIN_ROWS = 25  # LiveRamp: files below 25 rows are refused
HEADER = ["advertising_id", "id_type", "ip_address", "timestamp", "segment_id"]
UUID_RE = r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$"
ZERO_MAID = "00000000-0000-0000-0000-000000000000"
IPV4_RE = r"^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$"
FORMATS = ("liveramp", "ttd", "csv")


class ExportRefused(Exception):
    """The export cannot be written (too few rows, nothing to export); the message names the count."""


@dataclass
class FileInfo:
    name: str
    rows: int
    sha256: str
    bytes: int
    path: Path = field(repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "rows": self.rows, "sha256": self.sha256, "bytes": self.bytes}


@dataclass
class ExportResult:
    rows: int
    files: list[FileInfo]
    skipped: dict[str, int]
    segments: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "files": [f.as_dict() for f in self.files], "skipped": self.skipped}


# --- naming (reference 3.2) -------------------------------------------------------------------------------
def safe_part(text: str, fallback: str = "Segment", limit: int = 60) -> str:
    """ASCII letters, digits and dashes only (no spaces, no ! @ # $ % [ ] : { } ? * \\), CamelCased."""
    words = re.findall(r"[A-Za-z0-9]+", text.encode("ascii", "ignore").decode())
    value = "".join(w[:1].upper() + w[1:] for w in words)[:limit]
    return value or fallback


def segment_id(audience: Audience) -> str:
    """The segment value written in the files and sent to TTD: `P360_<id>_<Name>` (letters, digits, _)."""
    return f"P360_{audience.pk}_{safe_part(audience.name, limit=60)}"


def file_name(org_name: str, label: str, day: dt.date, part: int, ext: str) -> str:
    name = f"{safe_part(org_name, 'Org', 60)}_{label}_{day.isoformat()}_file-part-{part}.{ext}"
    return name[:250]


# --- SQL -------------------------------------------------------------------------------------------------
def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def device_rows_sql(audience: Audience, *, lookback_days: int | None, today: dt.date) -> str | None:
    """SELECT of one segment's device rows (distinct), or None when the audience has no records."""
    source = audience_records_sql(audience)
    if source is None:
        return None
    seg = _literal(segment_id(audience))
    s = schema()
    # One literal timestamp (when the records were loaded or materialised) and each regex evaluated once per row
    # (OFFSET 0 keeps PostgreSQL from inlining the inner SELECT and re-running its expressions).
    loaded = audience.materialized_at or (
        audience.current_version.created_at if audience.current_version is not None else audience.updated_at
    )
    records = f"""SELECT
        CASE WHEN v.mok THEN CASE WHEN v.idfa THEN translate(v.maid, 'abcdef', 'ABCDEF') ELSE translate(v.maid, 'ABCDEF', 'abcdef') END END AS advertising_id,
        CASE WHEN v.mok THEN CASE WHEN v.idfa THEN 'IDFA' ELSE 'AAID' END END AS id_type,
        CASE WHEN v.ipok THEN v.ip END AS ip_address,
        {int(loaded.timestamp())}::bigint AS ts
      FROM ({_validity_sql(source)} WHERE {optout_clause("r")} OFFSET 0) v
      WHERE v.mok OR v.ipok"""
    window = (
        "true"
        if lookback_days is None
        else f"e.event_date >= '{(today - dt.timedelta(days=lookback_days)).isoformat()}'"
    )
    reds = f"""SELECT
        CASE WHEN e.user_id_type = 'MAID' THEN e.user_id END,
        CASE WHEN e.user_id_type = 'MAID' THEN CASE WHEN e.user_id ~ '[a-f]' THEN 'AAID' ELSE 'IDFA' END END,
        CASE WHEN e.user_id_type = 'IP' THEN e.user_id END,
        max(extract(epoch FROM e.event_timestamp))::bigint
      FROM "{s}".ingestion_store_redsevent e
      WHERE e.audience_id IN ({_literal(str(audience.pk))}, {_literal(f"p360_{audience.pk}")}) AND {window}
        AND ((e.user_id_type = 'MAID' AND {maid_ok_sql("e.user_id")})
             OR (e.user_id_type = 'IP' AND {ip_ok_sql("e.user_id")}))
      GROUP BY 1, 2, 3"""
    return f"""SELECT advertising_id, id_type, ip_address, max(ts) AS ts, {seg} AS segment_id
      FROM ({records} UNION ALL {reds}) d GROUP BY advertising_id, id_type, ip_address"""


def maid_ok_sql(col: str) -> str:
    """A UUID-shaped, non-zero MAID, with plain string functions: PostgreSQL's regexes and locale-aware
    lower()/upper() cost microseconds a row, translate() on ASCII hex does not."""
    return (
        f"coalesce(length({col}) = 36 AND translate({col}, '0123456789abcdefABCDEF', '') = '----' "
        f"AND substr({col}, 9, 1) = '-' AND substr({col}, 14, 1) = '-' AND substr({col}, 19, 1) = '-' "
        f"AND substr({col}, 24, 1) = '-' AND {col} <> '{ZERO_MAID}', false)"
    )


def ip_ok_sql(col: str) -> str:
    """A dotted IPv4 with four 1-3 digit parts of at most 255 (CASE orders the checks before the casts)."""
    parts = [f"split_part({col}, '.', {n})" for n in range(1, 5)]
    shape = " AND ".join(f"length({p}) BETWEEN 1 AND 3" for p in parts)
    values = " AND ".join(f"{p}::int <= 255" for p in parts)
    return (
        f"coalesce(CASE WHEN length({col}) BETWEEN 7 AND 15 AND translate({col}, '0123456789', '') = '...' "
        f"THEN CASE WHEN {shape} THEN {values} ELSE false END ELSE false END, false)"
    )


def _validity_sql(source: str) -> str:
    return f"""SELECT r.maid, r.ip, r.email_sha256, r.phone_sha256, upper(r.maid_type) = 'IDFA' AS idfa,
        {maid_ok_sql("r.maid")} AS mok, {ip_ok_sql("r.ip")} AS ipok FROM {source}"""


def optout_clause(alias: str) -> str:
    """The opt-out filter, or `true` when the org has no opt-out at all (the common case: no anti-join)."""
    from activation.models import IdentityStatus, Uid2Identity

    if not Uid2Identity.objects.filter(status=IdentityStatus.OPTOUT).exists():
        return "true"
    return optout_filter_sql(alias)


def skipped_counts(audience: Audience) -> dict[str, int]:
    """Records that give no device row, by reason."""
    source = audience_records_sql(audience)
    if source is None:
        return {}
    sql = f"""SELECT
        count(*) FILTER (WHERE NOT v.keep),
        count(*) FILTER (WHERE v.keep AND v.maid IS NOT NULL AND NOT v.mok),
        count(*) FILTER (WHERE v.keep AND v.ip IS NOT NULL AND NOT v.ipok),
        count(*) FILTER (WHERE v.keep AND NOT v.mok AND NOT v.ipok)
      FROM (SELECT q.*, {optout_clause("q")} AS keep FROM ({_validity_sql(source)}) q OFFSET 0) v"""
    with connection.cursor() as cursor:
        cursor.execute(sql)
        optout, bad_maid, bad_ip, no_device = cursor.fetchone()
    out = {"opted_out": optout, "invalid_maid": bad_maid, "invalid_ip": bad_ip, "no_device_id": no_device}
    return {k: v for k, v in out.items() if v}


# --- streaming writer ------------------------------------------------------------------------------------
class SplitWriter:
    """Writes header + rows into numbered parts, starting a new part at `max_rows` or `max_bytes`."""

    def __init__(self, out_dir: Path, namer: Any, header: bytes, max_rows: int, max_bytes: int) -> None:
        self.out_dir, self.namer, self.header = out_dir, namer, header
        self.max_rows, self.max_bytes = max_rows, max_bytes
        self.files: list[FileInfo] = []
        self._fh: Any = None

    def _open(self) -> None:
        name = self.namer(len(self.files) + 1)
        path = self.out_dir / name
        self._fh = path.open("wb")
        self._hash = hashlib.sha256()
        self._rows = 0
        self._bytes = 0
        self._path, self._name = path, name
        self._put(self.header)

    def _put(self, data: bytes | memoryview) -> None:
        self._fh.write(data)
        self._hash.update(data)
        self._bytes += len(data)

    def _close(self) -> None:
        if self._fh is None:
            return
        self._fh.close()
        self.files.append(FileInfo(self._name, self._rows, self._hash.hexdigest(), self._bytes, self._path))
        self._fh = None

    def write(self, data: bytes) -> None:
        """`data` holds whole lines (COPY yields whole rows per message)."""
        start = 0
        while start < len(data):
            if self._fh is None:
                self._open()
            room = self.max_rows - self._rows
            lines = data.count(b"\n", start)
            if lines <= room and self._bytes + len(data) - start <= self.max_bytes:
                self._put(memoryview(data)[start:])
                self._rows += lines
                return
            # A limit falls inside this block: take the lines the current part can still hold.
            cut, taken, limit = start, 0, start + self.max_bytes - self._bytes
            while taken < room:
                nl = data.find(b"\n", cut)
                if nl < 0 or nl + 1 > limit:
                    break
                cut, taken = nl + 1, taken + 1
            if taken == 0 and self._rows == 0:
                raise ExportRefused("a single row is larger than the file size limit")
            self._put(memoryview(data)[start:cut])
            self._rows += taken
            start = cut
            self._close()

    def finish(self) -> list[FileInfo]:
        self._close()
        return self.files


def _lines(copy: Iterable[Any]) -> Iterable[bytes]:
    """COPY TO data messages end on row boundaries; batch them to ~1 MB writes."""
    pending: list[bytes] = []
    size = 0
    for chunk in copy:
        data = bytes(chunk)
        pending.append(data)
        size += len(data)
        if size >= 1 << 20:
            yield b"".join(pending)
            pending, size = [], 0
    if pending:
        yield b"".join(pending)


def stream_query(sql: str, writer: SplitWriter, *, delimiter: str) -> None:
    copy_sql = f"COPY ({sql}) TO STDOUT (FORMAT csv, DELIMITER '{delimiter}', NULL '')"
    with connection.cursor() as cursor:
        cursor.execute("SET work_mem = '64MB'")  # the de-duplicating hash aggregate stays in memory
        try:
            with cursor.copy(copy_sql) as copy:  # type: ignore[attr-defined]
                for block in _lines(copy):
                    writer.write(block)
        finally:
            cursor.execute("RESET work_mem")


# --- exports ---------------------------------------------------------------------------------------------
def export_files(
    *,
    audiences: list[Audience],
    fmt: str,
    out_dir: Path,
    org_name: str,
    lookback_days: int | None,
    merged: bool = True,
    max_rows: int | None = None,
    max_bytes: int | None = None,
    today: dt.date | None = None,
    tag: str = "",
) -> ExportResult:
    """Write the files a delivery would send into `out_dir`; raise ExportRefused below 25 rows.

    `tag` (a delivery's `-D<id>`) keeps two deliveries of one day from sharing a remote name."""
    if fmt not in FORMATS:
        raise ExportRefused(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    today = today or timezone.localdate()
    max_rows = max_rows or settings.P360_DELIVERY_MAX_ROWS_PER_FILE
    max_bytes = max_bytes or settings.P360_DELIVERY_MAX_FILE_BYTES
    skipped: dict[str, int] = {}
    groups: list[tuple[str, list[str]]] = []  # (file label, [SELECT ...])
    for audience in audiences:
        if fmt == "ttd":
            source = audience_records_sql(audience)
            sql = (
                None
                if source is None
                else (f"SELECT u.uid2, {_literal(segment_id(audience))} FROM ({uid2s_sql(source)}) u")
            )
        else:
            sql = device_rows_sql(audience, lookback_days=lookback_days, today=today)
            for reason, count in skipped_counts(audience).items():
                skipped[reason] = skipped.get(reason, 0) + count
        label = f"{safe_part(audience.name, limit=60)}-{audience.pk}"
        if merged and groups:
            groups[0][1].append(sql or "")
        else:
            groups.append((("P360Merged" if merged else label) + tag, [sql or ""]))
    ext = {"liveramp": "psv", "ttd": "csv", "csv": "csv"}[fmt]
    delimiter = "|" if fmt == "liveramp" else ","
    header = ("UID2,segment_id" if fmt == "ttd" else delimiter.join(HEADER)) + "\n"
    files: list[FileInfo] = []
    for label, parts in groups:
        queries = [p for p in parts if p]
        writer = SplitWriter(
            out_dir,
            lambda n, label=label: file_name(org_name, label, today, n, ext),
            header.encode(),
            max_rows,
            max_bytes,
        )
        for sql in queries:
            stream_query(sql, writer, delimiter=delimiter)
        written = writer.finish()
        total = sum(f.rows for f in written)
        if total < MIN_ROWS:
            for f in written:
                f.path.unlink(missing_ok=True)
            for f in files:
                f.path.unlink(missing_ok=True)
            what = "the merged file" if merged else f"segment {label}"
            raise ExportRefused(
                f"{what} has {total} row(s); LiveRamp and TTD refuse files below {MIN_ROWS} rows, nothing was written"
            )
        files.extend(written)
    return ExportResult(
        rows=sum(f.rows for f in files),
        files=files,
        skipped=skipped,
        segments=[segment_id(a) for a in audiences],
    )
