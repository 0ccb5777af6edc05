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

import contextlib
import datetime as dt
import functools
import gzip
import hashlib
import io
import queue
import re
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
import polars as pl
import pyarrow as pa
from django.conf import settings
from django.db import connection
from django.utils import timezone

from activation.identities import optout_filter_sql, uid2s_sql
from activation.sources import audience_records_sql, schema
from audiences.models import Audience

MIN_ROWS = 25  # LiveRamp: files below 25 rows are refused
HEADER = ["advertising_id", "id_type", "ip_address", "timestamp", "segment_id"]  # split mode: one segment a file
MAX_SEGMENT_COLUMNS = 500  # LiveRamp: at most 500 segment data fields per file (reference 3.5)
MAX_ROW_CHARS = 10_000  # LiveRamp: at most 10,000 characters per row (3.5); the header row is a row too
SEGMENT_HEADER_MAX = 128  # a segment-data header: <= 128 letters, digits and underscores (3.3)
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
    keys: pl.Series | None = field(default=None, repr=False)  # sorted unique member keys of device files

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


def segment_column(audience: Audience) -> str:
    """The audience's segment-data header in the merged (column) layout: its segment id, the value the split
    layout writes in `segment_id`, kept to letters, digits and underscores and 128 characters (reference 3.3).
    The `P360_<id>_` prefix keeps two audiences' columns apart whatever their names."""
    return re.sub(r"[^A-Za-z0-9_]", "", segment_id(audience))[:SEGMENT_HEADER_MAX]


def segment_chunks(columns: list[str], delimiter: str = "|") -> list[range]:
    """The merged file's segment columns cut into consecutive runs, one file each: at most 500 columns, and a
    header row of at most 10,000 characters (500 long names would pass 10,000; a data row stays far below:
    device values plus at most two characters a column). Cut by position in the audiences' id order, so the same
    audience set gives the same files, headers and column order at every delivery."""
    width = len(delimiter.join(DEVICE_COLUMNS))
    chunks, start, used = [], 0, width
    for i, name in enumerate(columns):
        extra = len(delimiter) + len(name)
        if i > start and (i - start == MAX_SEGMENT_COLUMNS or used + extra > MAX_ROW_CHARS):
            chunks.append(range(start, i))
            start, used = i, width
        used += extra
    chunks.append(range(start, len(columns)))
    return chunks


def file_name(org_name: str, label: str, day: dt.date, part: int, ext: str) -> str:
    name = f"{safe_part(org_name, 'Org', 60)}_{label}_{day.isoformat()}_file-part-{part}.{ext}"
    return name[:250]


# --- SQL -------------------------------------------------------------------------------------------------
def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def loaded_at(audience: Audience) -> int:
    """The records' timestamp: when they were loaded or materialised (one value for the whole audience)."""
    loaded = audience.materialized_at or (
        audience.current_version.created_at if audience.current_version is not None else audience.updated_at
    )
    return int(loaded.timestamp())


def records_raw_sql(audience: Audience) -> str | None:
    """The audience's raw device columns (maid, maid_type, ip[, opted-out flag]) or None without records.

    Nothing is computed per row here: PostgreSQL's text functions cost microseconds a row, so validation,
    casing and the id-type mapping happen in polars on the streamed batches (see `device_frame`)."""
    source = audience_records_sql(audience)
    if source is None:
        return None
    optout = optout_clause("r")
    flag = "" if optout == "true" else f", NOT ({optout}) AS optout"
    return f"SELECT r.maid, r.maid_type, r.ip{flag} FROM {source}"


def reds_rows_sql(audience: Audience, *, lookback_days: int | None, today: dt.date) -> str:
    """The audience's REDS `MAID`/`IP` user ids in the lookback window, validated and aggregated in SQL (one row
    per id with its latest event time). A REDS MAID has no type: upper-case hex is IDFA, lower-case AAID."""
    s = schema()
    window = (
        "true"
        if lookback_days is None
        else f"e.event_date >= '{(today - dt.timedelta(days=lookback_days)).isoformat()}'"
    )
    return f"""SELECT
        CASE WHEN e.user_id_type = 'MAID' THEN e.user_id END,
        CASE WHEN e.user_id_type = 'MAID' THEN CASE WHEN e.user_id ~ '[a-f]' THEN 'AAID' ELSE 'IDFA' END END,
        CASE WHEN e.user_id_type = 'IP' THEN e.user_id END,
        max(extract(epoch FROM e.event_timestamp))::bigint
      FROM "{s}".ingestion_store_redsevent e
      WHERE e.audience_id IN ({_literal(str(audience.pk))}, {_literal(f"p360_{audience.pk}")}) AND {window}
        AND ((e.user_id_type = 'MAID' AND {maid_ok_sql("e.user_id")})
             OR (e.user_id_type = 'IP' AND {ip_ok_sql("e.user_id")}))
      GROUP BY 1, 2, 3"""


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


def optout_clause(alias: str) -> str:
    """The opt-out filter, or `true` when the org has no opt-out at all (the common case: no anti-join)."""
    from activation.models import IdentityStatus, Uid2Identity

    if not Uid2Identity.objects.filter(status=IdentityStatus.OPTOUT).exists():
        return "true"
    return optout_filter_sql(alias)


# --- device rows in polars ---------------------------------------------------------------------------------
# The same rules as maid_ok_sql / ip_ok_sql, as Rust regexes over whole batches.
MAID_RE = r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$"
OCTET = r"(25[0-5]|2[0-4][0-9]|[01]?[0-9]?[0-9])"  # 1-3 digits, at most 255 (leading zeros as in ip_ok_sql)
IP_RE = rf"^{OCTET}\.{OCTET}\.{OCTET}\.{OCTET}$"
RAW_COLUMNS = ["maid", "maid_type", "ip", "optout"]
DEVICE_COLUMNS = ["advertising_id", "id_type", "ip_address", "timestamp"]
DEVICE_SCHEMA = {"advertising_id": pl.String, "id_type": pl.String, "ip_address": pl.String, "timestamp": pl.Int64}
SKIP_REASONS = ("opted_out", "invalid_maid", "invalid_ip", "no_device_id")


def device_frame(raw: pl.DataFrame, ts: int) -> tuple[pl.DataFrame, dict[str, int]]:
    """Raw record columns -> device rows (GAID as AAID, IDFA upper-case, AAID lower-case) and skip counts."""
    maid, ip = pl.col("maid"), pl.col("ip")
    # The type column holds a handful of spellings: which of them mean IDFA is decided once per spelling, not
    # by upper-casing every row's type.
    idfa_types = [t for t in raw["maid_type"].unique().drop_nulls().to_list() if t.upper() == "IDFA"]
    flags = raw.lazy().with_columns(
        mok=(maid.str.contains(MAID_RE) & (maid != ZERO_MAID)).fill_null(False),
        ipok=ip.str.contains(IP_RE).fill_null(False),
        idfa=pl.col("maid_type").is_in(idfa_types).fill_null(False),
        keep=(pl.col("optout") != "t").fill_null(True) if "optout" in raw.columns else pl.lit(True),
    )
    mok, ipok, idfa, keep = pl.col("mok"), pl.col("ipok"), pl.col("idfa"), pl.col("keep")
    counts, out = pl.collect_all([
        flags.select(
            opted_out=(~keep).sum(),
            invalid_maid=(keep & maid.is_not_null() & ~mok).sum(),
            invalid_ip=(keep & ip.is_not_null() & ~ipok).sum(),
            no_device_id=(keep & ~mok & ~ipok).sum(),
        ),
        flags.filter(keep & (mok | ipok)).select(
            advertising_id=pl.when(mok).then(
                pl.when(idfa).then(maid.str.to_uppercase()).otherwise(maid.str.to_lowercase())
            ),
            id_type=pl.when(mok).then(pl.when(idfa).then(pl.lit("IDFA")).otherwise(pl.lit("AAID"))),
            ip_address=pl.when(ipok).then(ip),
            timestamp=pl.lit(ts, pl.Int64),
        ),
    ])  # fmt: skip
    return out, {k: int(v) for k, v in counts.row(0, named=True).items()}


# MurmurHash3's fmix64 constants, and fixed odd multipliers that spread each part over the 64 bits first
_M1, _M2 = np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53)
_K = [np.uint64(int.from_bytes(hashlib.sha256(f"p360-member-key-{i}".encode()).digest()[:8], "big") | 1)
      for i in range(8)]  # fmt: skip
_S33 = np.uint64(33)


def segment_hash(segment: str) -> int:
    return int.from_bytes(hashlib.sha256(segment.encode()).digest()[:8], "big")


def _words(column: str, width: int, offsets: tuple[int, ...]) -> list[pl.Expr]:
    """The column's ASCII text (null as `~`s), padded to `width`, as 8-byte little-endian words at `offsets`: a
    view of the bytes, not a parse (str.to_integer costs ten times more). The reference for `_fixed_words`."""
    text = pl.col(column).fill_null("").str.pad_end(width, "~")
    return [
        text.str.slice(i, 8).cast(pl.Binary).bin.reinterpret(dtype=pl.UInt64, endianness="little")
        .alias(f"{column}_{i}")
        for i in offsets
    ]  # fmt: skip


def _fixed_words(text: pl.Series, width: int, offsets: tuple[int, ...]) -> list[np.ndarray] | None:
    """The same words as `_words` when every value of `text` (nulls already filled) is exactly `width` bytes:
    strided uint64 views straight into the Arrow value buffer, no per-word string slices (a quarter of the
    CPU). None when a value has another length (the caller falls back to `_words`)."""
    arr = text.to_arrow(compat_level=pl.CompatLevel.oldest())  # large_string: int64 offsets + one value buffer
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    n = len(arr)
    if n == 0 or arr.null_count:
        return None
    _, offsets_buf, values = arr.buffers()
    ends = np.frombuffer(offsets_buf, dtype=np.int64, count=n + 1, offset=arr.offset * 8)
    if not bool(np.all(np.diff(ends) == width)):
        return None
    start = int(ends[0])
    return [np.ndarray((n,), dtype="<u8", buffer=values, offset=start + i, strides=(width,)) for i in offsets]


def member_keys(rows: pl.DataFrame, segment: str) -> pl.Series:
    """A 64-bit key per device row: (advertising id, id type, ip, segment) without the timestamp, for the diff
    against the last delivery and to find duplicate rows. A fixed function in wrapping UInt64 arithmetic
    (numpy), so keys stay comparable across library versions (polars' hash() is only stable within one).
    The id's case is canonical for its type (IDFA upper, AAID lower), so the id's bytes can be used as they are."""
    return pl.Series("key", _mix(key_words(rows), segment_hash(segment), rows.height))


def key_words(rows: pl.DataFrame) -> list[np.ndarray]:
    """The device's part of the member key (id, type, ip) as uint64 words, computed once per batch: the column
    layout mixes them with each segment's seed and with the device seed (see `device_keys`)."""
    kind = np.where((rows["id_type"] == "IDFA").fill_null(False).to_numpy(), np.uint64(1), np.uint64(2))
    ids = _fixed_words(rows["advertising_id"].fill_null("~" * 36), 36, (0, 8, 16, 24, 28))  # a UUID: 5 words
    ips = _fixed_words(rows["ip_address"].fill_null("").str.pad_end(16, "~"), 16, (0, 8))  # <= 15 chars: 2
    if ids is not None and ips is not None:
        return [*ids, *ips, kind]
    # an id of another length (never a checked one): the general (slower) form of the same words
    parts = rows.lazy().select(*_words("advertising_id", 36, (0, 8, 16, 24, 28)),
                               *_words("ip_address", 16, (0, 8))).collect()  # fmt: skip
    return [*(series.to_numpy() for series in parts.iter_columns()), kind]


def _mix(words: list[np.ndarray], seed: int, n: int) -> np.ndarray:
    with np.errstate(over="ignore"):
        z = np.full(n, np.uint64(seed), dtype=np.uint64)
        for word, k in zip(words, _K, strict=True):
            z += word * k
        z ^= z >> _S33  # fmix64: every input bit reaches every output bit
        z *= _M1
        z ^= z >> _S33
        z *= _M2
        z ^= z >> _S33
    return z


DEVICE_SEED = 0  # the device key: the member key's function without a segment (never stored, one export only)


# --- streaming writer ------------------------------------------------------------------------------------
class PartSink(Protocol):
    """Told about each part file while it is written (activation.transport.PartStreamer uploads it meanwhile).
    `opened` gets the open file's descriptor: a reader of the descriptor follows this inode even if the path is
    unlinked and re-created (the duplicate-row rewrite reuses the names)."""

    def opened(self, name: str, fd: int) -> object: ...

    def grew(self, handle: object, size: int, *, done: bool) -> None: ...


class SplitWriter:
    """Writes header + rows into numbered parts, starting a new part at `max_rows` or `max_bytes`."""

    def __init__(
        self, out_dir: Path, namer: Any, header: bytes, max_rows: int, max_bytes: int, sink: PartSink | None = None,
        *, gzip: bool = False,
    ) -> None:  # fmt: skip
        self.out_dir, self.namer, self.header = out_dir, namer, header
        self.max_rows, self.max_bytes = max_rows, max_bytes  # limits on the uncompressed rows (LiveRamp's)
        self.files: list[FileInfo] = []
        self._fh: Any = None
        self._sink, self._handle = sink, cast(object, None)
        self.gzip = gzip

    def _open(self) -> None:
        name = self.namer(len(self.files) + 1)
        path = self.out_dir / name
        self._fh = path.open("w+b")  # readable: the sink reads the bytes back through a dup of the descriptor
        self._hash = hashlib.sha256()
        self._rows = 0
        self._bytes = 0  # uncompressed: what the limits count
        self._out = 0  # on disk: what is hashed, sent and size-checked
        # gzip as a stream (wbits 31: gzip header and trailer); level 1, the file is pushed once
        self._z = zlib.compressobj(1, zlib.DEFLATED, 31) if self.gzip else None
        self._path, self._name = path, name
        if self._sink is not None:
            self._handle = self._sink.opened(name, self._fh.fileno())
        self._put(self.header)

    def _emit(self, data: bytes | memoryview, *, done: bool = False) -> None:
        self._fh.write(data)
        self._hash.update(data)
        self._out += len(data)
        if self._sink is not None:
            self._fh.flush()  # the streamer reads the bytes back through the descriptor
            self._sink.grew(self._handle, self._out, done=done)

    def _put(self, data: bytes | memoryview) -> None:
        self._bytes += len(data)
        self._emit(self._z.compress(data) if self._z is not None else data)

    def _close(self) -> None:
        if self._fh is None:
            return
        self._emit(self._z.flush() if self._z is not None else b"", done=True)  # the streamer dup()ed the fd
        self._fh.close()
        self.files.append(FileInfo(self._name, self._rows, self._hash.hexdigest(), self._out, self._path))
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

    def discard(self) -> None:
        """Remove every part this writer wrote (an export that fails leaves nothing)."""
        self._close()
        for f in self.files:
            f.path.unlink(missing_ok=True)


BATCH_BYTES = 4 << 20  # COPY output handed to polars in ~4 MB blocks: flat memory, few Python iterations


_END = object()


def copy_rows(copy: Any, pgconn: Any) -> Iterator[Any]:
    """The rows of a `COPY ... TO STDOUT`, as psycopg's `for chunk in copy` gives them, at a fraction of its cost.

    psycopg reads each row through its wait loop and generators: at 10M rows that was about 60 % of a device
    file's CPU. Rows already buffered are taken straight from libpq (`get_copy_data` without waiting); when none
    is, psycopg's own `read()` waits for the socket. At the end the final result is read as psycopg does (one
    COMMAND_OK, else its error), and the copy is marked finished so its exit does not read again."""
    from psycopg import errors, pq

    while True:
        nbytes, data = pgconn.get_copy_data(1)
        if nbytes > 0:
            yield data
        elif nbytes == 0:  # nothing buffered: psycopg waits for the socket (and may read the end itself)
            if not (data := copy.read()):
                return
            yield data
        elif nbytes == -1:  # the end of the rows: the statement's result follows
            results = []
            while (result := pgconn.get_result()) is not None:
                results.append(result)
            if not results:
                raise errors.OperationalError("COPY ended without a result")
            if len(results) != 1 or results[0].status != pq.ExecStatus.COMMAND_OK:
                raise errors.error_from_result(results[-1], encoding=pgconn._encoding)
            copy._finished = True  # psycopg 3.3's flag (pinned in requirements.txt): nothing left to read
            return
        else:
            raise errors.OperationalError(f"COPY failed: {pgconn.get_error_message()}")


def copy_blocks(sql: str, *, delimiter: str = ",") -> Iterator[bytes]:
    """`COPY (sql) TO STDOUT` as blocks of whole CSV rows (each COPY data message is one row).

    A reader thread drains the COPY (one Python step per row, the GIL-bound part) while the caller's polars
    work on the previous block runs without the GIL: PostgreSQL, the reader and the checks overlap instead of
    taking turns. At most 3 blocks wait (~12 MB). If the caller stops early the reader drains the rest."""
    copy_sql = f"COPY ({sql}) TO STDOUT (FORMAT csv, DELIMITER '{delimiter}', NULL '')"
    blocks: queue.Queue[Any] = queue.Queue(maxsize=3)
    stop = threading.Event()
    with connection.cursor() as cursor:
        cursor.execute("SET work_mem = '64MB'")  # REDS' de-duplicating hash aggregate stays in memory
        raw = cursor.cursor  # psycopg's cursor: this thread does not touch the connection until the reader ends

        def read() -> None:
            try:
                buf = bytearray()
                with raw.copy(copy_sql) as copy:
                    for chunk in copy_rows(copy, raw.connection.pgconn):
                        buf += chunk  # per row only this and the size test: `stop` is checked per block
                        if len(buf) >= BATCH_BYTES:
                            if not stop.is_set():
                                blocks.put(bytes(buf))
                            buf.clear()
                if buf and not stop.is_set():
                    blocks.put(bytes(buf))
                blocks.put(_END)
            except BaseException as exc:  # noqa: BLE001 - any error is handed to the caller, who would wait forever
                blocks.put(exc)

        reader = threading.Thread(target=read, name="copy-reader", daemon=True)
        reader.start()
        try:
            while (item := blocks.get()) is not _END:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            while reader.is_alive():  # unblock a reader waiting on a full queue
                with contextlib.suppress(queue.Empty):
                    blocks.get(timeout=0.05)
            reader.join()
            cursor.execute("RESET work_mem")


def stream_query(sql: str, writer: SplitWriter, *, delimiter: str) -> None:
    """Rows that need no work in Python (the TTD UID2 file) go from COPY straight into the writer."""
    for block in copy_blocks(sql, delimiter=delimiter):
        writer.write(block)


def device_batches(
    audience: Audience, *, lookback_days: int | None, today: dt.date, skipped: dict[str, int]
) -> Iterator[pl.DataFrame]:
    """The audience's device rows (DEVICE_COLUMNS) in batches: its records' ids checked in polars (skip counts
    added to `skipped` in the same pass), then its REDS ids. No PII column is ever selected."""
    raw_sql = records_raw_sql(audience)
    if raw_sql is not None:
        ts = loaded_at(audience)
        columns = RAW_COLUMNS if "AS optout" in raw_sql else RAW_COLUMNS[:3]
        schema_ = dict.fromkeys(columns, pl.String)
        for block in copy_blocks(raw_sql):
            raw = pl.read_csv(io.BytesIO(block), has_header=False, schema=schema_)
            rows, counts = device_frame(raw, ts)
            for reason, count in counts.items():
                if count:
                    skipped[reason] = skipped.get(reason, 0) + count
            yield rows
    for block in copy_blocks(reds_rows_sql(audience, lookback_days=lookback_days, today=today)):
        yield pl.read_csv(io.BytesIO(block), has_header=False, schema=DEVICE_SCHEMA)


def _csv(rows: pl.DataFrame, delimiter: str) -> bytes:
    buf = io.BytesIO()
    rows.write_csv(buf, include_header=False, separator=delimiter, null_value="", line_terminator="\n")
    return buf.getvalue()


def _stamps(column: pl.Series) -> np.ndarray | tuple[int, int]:
    """A batch's timestamps, kept only for a possible duplicate rewrite: a record batch has one value (the load
    time), kept as (value, rows) instead of 8 bytes a row (80 MB at 10M rows)."""
    low, high = column.min(), column.max()
    if low is not None and low == high and column.null_count() == 0:
        return int(low), column.len()  # type: ignore[arg-type]
    return column.to_numpy()


def _all_stamps(parts: list[np.ndarray | tuple[int, int]]) -> np.ndarray:
    return np.concatenate(
        [np.full(p[1], p[0], dtype=np.int64) if isinstance(p, tuple) else p.astype(np.int64) for p in parts]
    )


def _dedupe(
    files: list[FileInfo], keys: np.ndarray, stamps: np.ndarray, *, delimiter: str, writer: SplitWriter
) -> tuple[list[FileInfo], pl.Series]:
    """Rare path: the same device row more than once (in two records, or in the records and REDS). Rewrite the
    one-segment group's files with one row per (id, type, ip) and its latest timestamp, in first-seen order.

    Decided from the rows' keys and timestamps in write order (numpy, 16 bytes a row plus a sort), then the files
    are streamed through in ~4 MB blocks: memory does not grow with the files (a whole-file group_by held every
    row: over 1 GB at 10M rows)."""
    order = np.argsort(keys, kind="stable")  # stable: the first index of each key is its first-seen row
    ordered = keys[order]
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    unique = ordered[starts]
    latest = np.maximum.reduceat(stamps[order], starts)
    keep = np.zeros(len(keys), dtype=bool)
    keep[order[starts]] = True
    del order, ordered
    segment_column = writer.header.decode().rstrip("\n").split(delimiter)[-1]  # `segment_id` or the segment's
    schema_ = {**DEVICE_SCHEMA, segment_column: pl.String}
    offset = 0
    for f in files:
        source = f.path.rename(f.path.with_name(f.path.name + ".dup"))  # the rewrite reuses the part names
        with gzip.open(source, "rb") if writer.gzip else source.open("rb") as fh:
            fh.readline()  # the header
            while block := fh.read(BATCH_BYTES):
                block += fh.readline()  # whole lines (device values hold no quotes or newlines)
                rows = pl.read_csv(io.BytesIO(block), has_header=False, schema=schema_, separator=delimiter)
                n = rows.height
                mask = keep[offset : offset + n]
                stamp = latest[np.searchsorted(unique, keys[offset : offset + n][mask])]
                rows = rows.filter(pl.Series(mask)).with_columns(timestamp=pl.Series(stamp, dtype=pl.Int64))
                writer.write(_csv(rows, delimiter))
                offset += n
        source.unlink()
    return writer.finish(), pl.Series("key", unique)


# --- the merged file's segment columns ------------------------------------------------------------------------
@dataclass
class _Memberships:
    """Which rows of a multi-segment spill are written and with what: computed from 64-bit keys in numpy (about
    40 bytes a row, no strings held), so memory does not grow with the rows' text."""

    keep: np.ndarray  # per spilled row: the first row of its device (the one written)
    device: np.ndarray  # per spilled row: its device's index
    latest: np.ndarray  # per device: its latest timestamp over every segment and duplicate
    start: np.ndarray  # per device (+1): where its memberships begin in `segment`
    segment: np.ndarray  # the (device, segment) memberships' segment index, by device then segment


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """np.unique by a sort: numpy 2.3's np.unique hashes instead, 7x slower on millions of 64-bit keys."""
    ordered = np.sort(values)
    return ordered[np.concatenate(([True], ordered[1:] != ordered[:-1]))] if len(ordered) else ordered


def _memberships(device_keys: np.ndarray, segments: np.ndarray, stamps: np.ndarray, count: int) -> _Memberships:
    order = np.argsort(device_keys, kind="stable")  # stable: the first index of each key is its first-seen row
    ordered = device_keys[order]
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    devices = len(starts)
    latest = np.maximum.reduceat(stamps[order], starts)
    device = np.empty(len(device_keys), dtype=np.int64)
    device[order] = np.repeat(np.arange(devices), np.diff(np.append(starts, len(device_keys))))
    keep = np.zeros(len(device_keys), dtype=bool)
    keep[order[starts]] = True
    del order, ordered
    pairs = sorted_unique(device * count + segments)  # (device, segment): a duplicate row counts once
    start = np.searchsorted(pairs // count, np.arange(devices + 1))
    return _Memberships(keep, device, latest, start, (pairs % count).astype(np.int64))


def segment_flags(m: _Memberships, devices: np.ndarray, columns: range) -> np.ndarray:
    """A (devices x columns) 0/1 matrix: is each device in each of these segments (vectorised over the
    memberships of the devices, no Python loop per row)."""
    begin = m.start[devices]
    counts = m.start[devices + 1] - begin
    total = int(counts.sum())
    row = np.repeat(np.arange(len(devices)), counts)
    index = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts) + np.repeat(begin, counts)
    segment = m.segment[index]
    inside = (segment >= columns.start) & (segment < columns.stop)
    flags = np.zeros((len(devices), len(columns)), dtype=np.uint8)
    flags[row[inside], segment[inside] - columns.start] = 1
    return flags


def _write_columns(
    spill: Path, m: _Memberships, names: list[str], columns: range, writer: SplitWriter, *, delimiter: str
) -> list[FileInfo]:
    """One file of the merged layout: the spilled device rows streamed back in ~4 MB blocks, each device once
    (its first row, with its latest timestamp) if it is in one of `columns`' segments, a `1` under each of them."""
    offset = 0
    with spill.open("rb") as fh:
        while block := fh.read(BATCH_BYTES):
            block += fh.readline()  # whole lines (device values hold no quotes or newlines)
            rows = pl.read_csv(io.BytesIO(block), has_header=False, schema=DEVICE_SCHEMA, separator=delimiter)
            n = rows.height
            keep = m.keep[offset : offset + n].copy()
            devices = m.device[offset : offset + n][keep]
            offset += n
            flags = segment_flags(m, devices, columns)
            inside = flags.any(axis=1)
            keep[np.flatnonzero(keep)[~inside]] = False
            if not inside.any():
                continue
            flagged = pl.from_numpy(flags[inside], schema=dict.fromkeys(names[columns.start : columns.stop],
                                                                         pl.UInt8))  # fmt: skip
            out = rows.filter(pl.Series(keep)).with_columns(
                timestamp=pl.Series(m.latest[devices[inside]], dtype=pl.Int64)
            )
            # 0 -> empty field, 1 -> `1`: an empty (null) value is "not in this segment"
            out = pl.concat([out, flagged.select(pl.when(pl.all() != 0).then(pl.all()))], how="horizontal")
            writer.write(_csv(out, delimiter))
    return writer.finish()


# --- exports ---------------------------------------------------------------------------------------------
def _check_rows(written: list[FileInfo], what: str) -> None:
    total = sum(f.rows for f in written)
    if total < MIN_ROWS:
        raise ExportRefused(
            f"{what} has {total} row(s); LiveRamp and TTD refuse files below {MIN_ROWS} rows, nothing was written"
        )


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
    sink: PartSink | None = None,
    compress: bool = False,
) -> ExportResult:
    """Write the files a delivery would send into `out_dir`; raise ExportRefused below 25 rows.

    Device files (liveramp, csv) follow LiveRamp's column-based layout in merged mode: one row per device
    (advertising id or IP row) and one column per segment, named by its segment id, `1` where the device is in
    it (more than 500 segments, or a header over 10,000 characters: the columns are cut over several files, see
    `segment_chunks`). Split mode writes one file per segment with a `segment_id` column.

    One segment in a file (split mode, or a merged delivery of one audience) takes one streamed pass: raw columns
    out of PostgreSQL, checked, mapped and counted in polars, written, split and hashed as they go. Several
    segments in a merged file are grouped per device: their device rows are spilled to a scratch file with a
    64-bit device key each, the grouping is done on the keys in numpy, and the spill is streamed back as the
    column-layout files. Either way every (device, segment) pair gets a 64-bit member key (the result's sorted
    `keys`, for the delivery's diff). `tag` (a delivery's `-D<id>`) keeps two deliveries of one day from sharing
    a remote name. `sink` is told about every part file as it grows (the SFTP pre-upload). `compress`: gzip
    each part (`<name>.psv.gz`; LiveRamp accepts gzip and reads the name without `.gz`)."""
    if fmt not in FORMATS:
        raise ExportRefused(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    today = today or timezone.localdate()
    max_rows = max_rows or settings.P360_DELIVERY_MAX_ROWS_PER_FILE
    max_bytes = max_bytes or settings.P360_DELIVERY_MAX_FILE_BYTES
    skipped: dict[str, int] = {}
    groups: list[tuple[str, list[Audience]]] = []  # (file label, its audiences)
    # In id order: the merged file's columns (and the files they are cut into) stay the same between deliveries.
    for audience in sorted(audiences, key=lambda a: a.pk):
        label = f"{safe_part(audience.name, limit=60)}-{audience.pk}"
        if merged and groups:
            groups[0][1].append(audience)
        else:
            groups.append((("P360Merged" if merged else label) + tag, [audience]))
    ext = {"liveramp": "psv", "ttd": "csv", "csv": "csv"}[fmt] + (".gz" if compress else "")
    delimiter = "|" if fmt == "liveramp" else ","
    files: list[FileInfo] = []
    all_keys: list[pl.Series] = []
    writers: list[SplitWriter] = []
    spills: list[Path] = []

    def writer_for(label: str, header: list[str]) -> SplitWriter:
        namer = lambda n: file_name(org_name, label, today, n, ext)  # noqa: E731
        line = (delimiter.join(header) + "\n").encode()
        writers.append(SplitWriter(out_dir, namer, line, max_rows, max_bytes, sink=sink, gzip=compress))
        return writers[-1]

    try:
        for label, members in groups:
            what = "the merged file" if merged else f"segment {label}"
            if fmt == "ttd":
                writer = writer_for(label, ["UID2", "segment_id"])
                for audience in members:
                    source = audience_records_sql(audience)
                    if source is not None:
                        stream_query(f"SELECT u.uid2, {_literal(segment_id(audience))} FROM ({uid2s_sql(source)}) u",
                                     writer, delimiter=delimiter)  # fmt: skip
                written = writer.finish()
                _check_rows(written, what)
                files.extend(written)
                continue
            batches = {"lookback_days": lookback_days, "today": today, "skipped": skipped}
            if len(members) == 1:
                (audience,) = members
                # Merged: the column layout with this segment's column; split: the `segment_id` column.
                column, value = (segment_column(audience), "1") if merged else ("segment_id", segment_id(audience))
                written, keys = _one_segment(
                    audience, functools.partial(writer_for, label, [*DEVICE_COLUMNS, column]), value=value,
                    delimiter=delimiter, batches=batches,
                )  # fmt: skip
                _check_rows(written, what)
                files.extend(written)
            else:
                spill = out_dir / f".{label}.spill"
                spills.append(spill)
                names = [segment_column(a) for a in members]
                chunks = segment_chunks(names, delimiter)
                m, keys = _spill_segments(members, spill, delimiter=delimiter, batches=batches)
                for n, columns in enumerate(chunks, 1):
                    part_label = label if len(chunks) == 1 else f"P360Merged-S{n}{tag}"
                    header = [*DEVICE_COLUMNS, *names[columns.start : columns.stop]]
                    written = _write_columns(spill, m, names, columns, writer_for(part_label, header),
                                             delimiter=delimiter)  # fmt: skip
                    _check_rows(written, what if len(chunks) == 1 else f"the merged file {part_label}")
                    files.extend(written)
                spill.unlink()
            if keys is not None:
                all_keys.append(keys)
    except BaseException:
        for f in files:  # nothing half-written stays behind
            f.path.unlink(missing_ok=True)
        for w in writers:
            w.discard()
        raise
    finally:
        for spill in spills:
            spill.unlink(missing_ok=True)
    keys_all = pl.concat(all_keys).sort() if all_keys else None
    return ExportResult(
        rows=sum(f.rows for f in files),
        files=files,
        skipped=skipped,
        segments=[segment_id(a) for a in audiences],
        keys=keys_all,
    )


def _one_segment(
    audience: Audience, new_writer: Callable[[], SplitWriter], *, value: str, delimiter: str, batches: dict[str, Any]
) -> tuple[list[FileInfo], pl.Series | None]:
    """One segment's device file, streamed as it is read (no grouping: each device is on one row already, unless
    it came twice, which the keys reveal and the rare rewrite fixes). Returns the files and sorted unique keys."""
    seg = segment_id(audience)
    writer = new_writer()
    keys: list[pl.Series] = []
    stamps: list[np.ndarray | tuple[int, int]] = []  # per batch; (value, rows) when constant
    for rows in device_batches(audience, **batches):
        if rows.height:
            keys.append(member_keys(rows, seg))
            stamps.append(_stamps(rows["timestamp"]))
            writer.write(_csv(rows.with_columns(pl.lit(value).alias("segment")), delimiter))
    written = writer.finish()
    if not keys:
        return written, None
    group_keys = pl.concat(keys).sort()
    ordered = group_keys.to_numpy()
    if bool(np.any(ordered[1:] == ordered[:-1])):
        del ordered, group_keys
        written, group_keys = _dedupe(written, pl.concat(keys).to_numpy(), _all_stamps(stamps),
                                      delimiter=delimiter, writer=new_writer())  # fmt: skip
    return written, group_keys


def _spill_segments(
    members: list[Audience], spill: Path, *, delimiter: str, batches: dict[str, Any]
) -> tuple[_Memberships, pl.Series]:
    """Several segments' device rows, in the audiences' order, into a scratch file (device columns only), with
    each row's device key, segment index and timestamp kept in numpy; then the per-device grouping on the keys.
    Returns the grouping and the sorted unique member keys of every (device, segment) pair."""
    device_keys: list[np.ndarray] = []
    member: list[np.ndarray] = []
    segments: list[np.ndarray] = []
    stamps: list[np.ndarray | tuple[int, int]] = []
    with spill.open("wb") as fh:
        for index, audience in enumerate(members):
            seed = segment_hash(segment_id(audience))
            for rows in device_batches(audience, **batches):
                if rows.height:
                    words = key_words(rows)
                    device_keys.append(_mix(words, DEVICE_SEED, rows.height))
                    member.append(_mix(words, seed, rows.height))
                    segments.append(np.full(rows.height, index, dtype=np.int32))
                    stamps.append(_stamps(rows["timestamp"]))
                    fh.write(_csv(rows, delimiter))
    if not device_keys:  # nothing to write: the caller refuses the empty file
        none = np.empty(0, dtype=np.int64)
        return _Memberships(none.astype(bool), none, none, np.zeros(1, dtype=np.int64), none), pl.Series(
            "key", np.empty(0, dtype=np.uint64)
        )
    keys = pl.Series("key", sorted_unique(np.concatenate(member)))
    member.clear()  # the per-batch arrays go as soon as their whole copy exists: the peak stays one copy
    all_devices, all_segments, all_stamps = np.concatenate(device_keys), np.concatenate(segments), _all_stamps(stamps)
    device_keys.clear()
    segments.clear()
    stamps.clear()
    return _memberships(all_devices, all_segments, all_stamps, len(members)), keys
