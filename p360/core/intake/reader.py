"""Read a delimited UTF-8 file as batches of all-text rows, each tagged with its source line number.

Two paths give the same rows:

- the fast path (polars, multi-threaded) for files where every physical line is one record. A first
  pass over the raw lines finds the lines that cannot be loaded (wrong number of fields, NUL bytes,
  bytes that were not valid text, over-long lines, blank lines); the second pass parses records with
  polars' CSV reader and drops those lines. Record i is physical line i + 2 (the header is line 1).
- the careful path (Python's csv module) when a quote opens a field that spans lines, or a quote is
  never closed, or polars refuses the file. It follows quotes across lines, gives up on a quote that
  does not close within `MAX_RECORD_BYTES` (that line is quarantined as "unbalanced quote" and
  reading resumes on the next line), so one stray quote never swallows the rest of the file.

Bad lines are returned as quarantine rows (line, reason, excerpt); nothing is dropped silently.
"""

from __future__ import annotations

import csv
import io
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

csv.field_size_limit(MAX_FIELD := 64 << 20)  # the default (128 KiB) would fail long fields before we judge them

ROW = "__row"  # the source line number of a record (1-based; the header is line 1)
MAX_LINE_BYTES = 1 << 20  # a record longer than 1 MiB is quarantined ("a 10 MB field")
BLOCK_BYTES = 8 << 20  # the fast path parses the file in blocks of whole lines of about this size
MAX_RECORD_BYTES = 16 << 20  # a quoted field that has not closed after 16 MiB is an unbalanced quote
EXCERPT = 200
QUARANTINE_SCHEMA = {ROW: pl.Int64, "column": pl.String, "field": pl.String, "value": pl.String, "reason": pl.String}


class UnreadableFile(Exception):
    """The file has no usable header (empty, or not text)."""


@dataclass
class LineScan:
    lines: int = 0  # physical lines after the header
    blank: set[int] = field(default_factory=set)
    quarantine: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=QUARANTINE_SCHEMA))
    fast: bool = True


def quarantine_rows(rows: list[tuple[int, str, str]]) -> pl.DataFrame:
    """(line, reason, excerpt) tuples -> the quarantine frame shape shared with field validation."""
    return pl.DataFrame(
        {
            ROW: [r[0] for r in rows],
            "column": [""] * len(rows),
            "field": [""] * len(rows),
            "value": [r[2][:EXCERPT] for r in rows],
            "reason": [r[1] for r in rows],
        },
        schema=QUARANTINE_SCHEMA,
    )


def read_header(path: Path, delimiter: str) -> list[str]:
    with path.open(encoding="utf-8", errors="replace", newline="") as handle:
        first = handle.readline(MAX_LINE_BYTES)
    if not first.strip():
        raise UnreadableFile("the file is empty: there is no header row")
    if first.count('"') % 2:
        raise UnreadableFile("the header row has an unbalanced quote")
    header = next(csv.reader([first.rstrip("\r\n")], delimiter=delimiter))
    return [h.replace("\x00", "").strip() for h in header]


class OddQuotes(Exception):
    """A line has an odd number of quotes: a quoted field may span lines, so the careful path reads the file."""


@dataclass
class Block:
    """One block's good rows, its physical lines, and (checked while reading) its blank and quarantined lines."""

    rows: pl.DataFrame
    lines: int
    blank: list[int] = field(default_factory=list)
    quarantine: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=QUARANTINE_SCHEMA))


def line_problems(lines: pl.LazyFrame, delimiter: str, width: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(totals: `n` lines and `odd` lines with an odd number of quotes, bad lines: `i`, `reason`, `text` excerpt)
    of numbered raw lines (`i`, `line`). A line gets its first reason; blank lines are `blank`."""
    d = delimiter
    text = pl.col("text")
    base = lines.select(pl.col("i").cast(pl.Int64), text=pl.col("line").str.strip_chars_end("\r"))
    quotes = text.str.count_matches('"', literal=True)
    # Fields = delimiters outside quoted fields + 1. Only lines with quotes need the regex; a line with an odd
    # number of quotes is flagged before this is looked at (and sends the whole file to the careful path).
    # One query, not a cheap-checks query plus a quoted-lines query over a second filtered copy of the lines:
    # -0.3 CPU-s per 1M rows when every line has a quote. A line gets its first reason, as before.
    fields = (
        pl.when(quotes == 0)
        .then(text.str.count_matches(d, literal=True))
        .otherwise(text.str.replace_all(r'"(?:[^"]|"")*"', "").str.count_matches(d, literal=True))
        + 1
    )
    flagged = base.with_columns(
        reason=pl.when(text == "")
        .then(pl.lit("blank"))
        .when(text.str.len_bytes() > MAX_LINE_BYTES)
        .then(pl.lit(f"line longer than {MAX_LINE_BYTES // (1 << 20)} MiB"))
        .when(quotes % 2 == 1)
        .then(pl.lit("odd quotes"))
        .when(text.str.contains("\x00", literal=True))
        .then(pl.lit("contains NUL bytes"))
        .when(text.str.contains("\ufffd", literal=True))
        .then(pl.lit("contains bytes that are not valid text in the file's encoding"))
        .when(fields != width)
        .then(pl.format("expected {} fields, found {}", pl.lit(width), fields))
    )
    totals_q = flagged.select(pl.len().alias("n"), (pl.col("reason") == "odd quotes").sum().alias("odd"))
    excerpt = text.str.slice(0, EXCERPT)
    bad_q = flagged.filter(pl.col("reason").is_not_null()).select("i", "reason", excerpt.alias("text"))
    # One pass over the lines for both answers (polars shares the scan).
    totals, bad = pl.collect_all([totals_q, bad_q])
    return totals, bad.sort("i", maintain_order=True)


def _quarantine_of(bad: pl.DataFrame) -> pl.DataFrame:
    real = bad.filter(pl.col("reason") != "blank")
    return quarantine_rows(
        list(zip(real["i"].to_list(), real["reason"].to_list(), real["text"].to_list(), strict=True))
    )


class DelimitedReader:
    """Batches of good rows (all columns text, plus `__row`) and a quarantine frame of the bad lines."""

    def __init__(self, path: Path, *, delimiter: str, headers: list[str], chunk_size: int = 100_000) -> None:
        self.path = path
        self.delimiter = delimiter
        self.headers = headers
        self.width = len(headers)
        self.chunk_size = chunk_size
        self.scan = LineScan()
        self.block_bytes = BLOCK_BYTES
        # Each block's lines are checked as the block is parsed, on the reader's thread, instead of a pass over the
        # whole file before the first batch (that pass was 5.1 s of wall and 9.8 CPU-s of a 10M-row import, all of
        # it before normalising could start). Same reasons and lines; the counts (`scan.lines`, `scan.blank`,
        # `scan.quarantine`) are complete once the batches are. A line with an odd number of quotes still sends the
        # whole file to the careful path: at once when it is in the first block, else by `RestartCarefully`.
        # `scan_lines` (the whole-file check first) turns it off.
        self.checks_blocks = True

    # -- pass 1: what is wrong with which line -------------------------------------------------
    def scan_lines(self) -> LineScan:
        """The whole file's line check in one pass before any batch, instead of block by block while reading (the
        default); both give the same reasons (tests/audiences/test_reader.py compares them)."""
        self.checks_blocks = False
        lines = pl.scan_lines(self.path).with_row_index("i", offset=1).filter(pl.col("i") > 1)
        totals, bad = line_problems(lines, self.delimiter, self.width)
        scan = LineScan(lines=int(totals["n"][0]))
        if int(totals["odd"][0] or 0) > 0:
            scan.fast = False
            self.scan = scan
            return scan
        scan.blank = set(bad.filter(pl.col("reason") == "blank")["i"].to_list())
        scan.quarantine = _quarantine_of(bad)
        self.scan = scan
        return scan

    # -- pass 2: the records ------------------------------------------------------------------------
    def batches(self) -> Iterator[pl.DataFrame]:
        """Good rows in order. Raises RestartCarefully if the fast path fails after yielding rows:
        the caller discards what it kept and iterates again (the reader is then on the careful path)."""
        if self.scan.fast:
            yielded = False
            try:
                for batch in self._fast_batches():
                    yielded = True
                    yield batch
                return
            except (pl.exceptions.PolarsError, OddQuotes):
                # polars refused something the line scan let through (or a block has a line with an odd number of
                # quotes, so quoted fields may span lines): read carefully instead.
                self.scan = LineScan(lines=self.scan.lines, fast=False)
                if yielded:
                    raise RestartCarefully from None
        yield from self._careful_batches()

    def _fast_batches(self) -> Iterator[pl.DataFrame]:
        """Batches of `chunk_size` rows, parsed block by block (whole lines, about `block_bytes` each).

        polars' streaming reader (`scan_csv(...).collect_batches()`) parsed ahead of a slow consumer without a
        bound (a 4M-row file: +400 MB while its batches waited to be normalised), the likely cause of the 10M
        import's unexplained peaks. Here the next block is parsed on one helper thread while the caller works on
        the current one (polars releases the GIL), so at most two blocks' rows are alive at a time.
        """
        skip = pl.Series(ROW, sorted(set(self.scan.blank) | set(self.scan.quarantine[ROW].to_list())), dtype=pl.Int64)
        found: list[pl.DataFrame] = []  # the quarantine rows of the blocks checked while reading
        with ThreadPoolExecutor(1, thread_name_prefix="csv-block") as pool:
            blocks = self._blocks()
            first = next(blocks, None)
            pending = pool.submit(self._read_block, *first, skip) if first is not None else None
            # Rows are handed on in batches of exactly `chunk_size` (the last one shorter) whatever the blocks hold:
            # normalising costs a fixed amount per batch, so smaller batches cost CPU.
            held: list[pl.DataFrame] = []
            count = 0
            while pending is not None:
                block = pending.result()
                following = next(blocks, None)
                pending = pool.submit(self._read_block, *following, skip) if following is not None else None
                frame = block.rows
                if self.checks_blocks:
                    self.scan.lines += block.lines
                    self.scan.blank.update(block.blank)
                    if block.quarantine.height:
                        found.append(block.quarantine)
                held.append(frame)
                count += frame.height
                del frame, block
                while count >= self.chunk_size:
                    rows = pl.concat(held) if len(held) > 1 else held[0]
                    yield rows.slice(0, self.chunk_size)
                    rest = rows.slice(self.chunk_size)
                    held, count = ([rest] if rest.height else []), rest.height
                    del rows, rest
            if count:
                yield pl.concat(held) if len(held) > 1 else held[0]
        if self.checks_blocks and found:
            self.scan.quarantine = pl.concat(found)

    def _blocks(self) -> Iterator[tuple[bytes, int, int]]:
        """(bytes, line number of its first line, physical lines in it): whole lines after the header."""
        line = 2
        with self.path.open("rb") as handle:
            handle.readline()  # the header line (binary: up to its LF, as scan_lines counts lines)
            size = self.block_bytes
            while data := handle.read(size):
                cut = data.rfind(b"\n") + 1
                if cut == 0 and len(data) == size:  # a line longer than the block: read it whole
                    handle.seek(-len(data), io.SEEK_CUR)
                    size *= 2
                    continue
                if 0 < cut < len(data):  # the partial last line is read again with the next block
                    handle.seek(cut - len(data), io.SEEK_CUR)
                    data = data[:cut]
                lines = data.count(b"\n") + (not data.endswith(b"\n"))
                yield data, line, lines
                line += lines
                size = self.block_bytes

    def _read_block(self, data: bytes, first_line: int, lines: int, skip: pl.Series) -> Block:
        """The block's good rows (without the lines in `skip`, found by the whole-file scan), or, when checking while
        reading, its lines checked first on this thread and its bad lines left out."""
        if not self.checks_blocks:
            return Block(self._parse_block(data, first_line, lines, skip), lines)
        numbered = pl.scan_lines(data).with_row_index("i", offset=first_line)
        totals, bad = line_problems(numbered, self.delimiter, self.width)
        if int(totals["odd"][0] or 0) > 0:
            raise OddQuotes(f"a line from line {first_line} has an odd number of quotes")
        if int(totals["n"][0]) != lines:  # the line numbers rest on the two splits agreeing
            raise pl.exceptions.ComputeError(f"{totals['n'][0]} lines in a block of {lines} from line {first_line}")
        blank = bad.filter(pl.col("reason") == "blank")["i"].to_list()
        rows = self._parse_block(data, first_line, lines, bad["i"])
        if len(blank) == bad.height:
            return Block(rows, lines, blank)
        return Block(rows, lines, blank, _quarantine_of(bad))

    def _parse_block(self, data: bytes, first_line: int, lines: int, skip: pl.Series) -> pl.DataFrame:
        """The block's good rows, numbered from `first_line`, parsed as the whole-file reader did."""
        names = [f"c{i}" for i in range(self.width + 1)]  # one spare column soaks up extra fields
        frame = pl.read_csv(
            data,
            has_header=False,
            separator=self.delimiter,
            schema=dict.fromkeys(names, pl.String),
            truncate_ragged_lines=True,
            missing_columns="insert",
            # (a block's first line may be a quarantined one with extra fields; polars judges the width by it)
            extra_columns="ignore",
            empty_string_is_null=False,
            quote_char='"',
            encoding="utf8-lossy",
        )
        if frame.height != lines:
            # One record per physical line is what the line numbers rest on: read carefully instead.
            raise pl.exceptions.ComputeError(f"{frame.height} records in {lines} lines from line {first_line}")
        return (
            frame.lazy()
            .with_row_index(ROW, offset=first_line)
            .with_columns(pl.col(ROW).cast(pl.Int64))
            .filter(~pl.col(ROW).is_in(skip.implode()))
            .select(ROW, *[pl.col(n).alias(h) for n, h in zip(names, self.headers, strict=False)])
            .collect()
        )

    def _careful_batches(self) -> Iterator[pl.DataFrame]:
        bad: list[tuple[int, str, str]] = []
        blank: set[int] = set()
        rows: list[list[str]] = []
        for first_line, text, forced in self._records():
            body = text.rstrip("\r\n")
            reason = forced or self._record_problem(body)
            if reason == "blank":
                blank.add(first_line)
                continue
            if reason is not None:
                bad.append((first_line, reason, body))
                continue
            fields = next(csv.reader(io.StringIO(body), delimiter=self.delimiter, strict=False), [])
            if len(fields) != self.width:
                bad.append((first_line, f"expected {self.width} fields, found {len(fields)}", body))
                continue
            rows.append([str(first_line), *fields])
            if len(rows) >= self.chunk_size:
                yield self._frame(rows)
                rows = []
        if rows:
            yield self._frame(rows)
        self.scan.blank = blank
        self.scan.quarantine = quarantine_rows(bad)

    def _record_problem(self, body: str) -> str | None:
        if body == "":
            return "blank"
        if len(body.encode("utf-8", errors="replace")) > MAX_LINE_BYTES:
            return f"line longer than {MAX_LINE_BYTES // (1 << 20)} MiB"
        if "\x00" in body:
            return "contains NUL bytes"
        if "\ufffd" in body:
            return "contains bytes that are not valid text in the file's encoding"
        return None

    def _frame(self, rows: list[list[str]]) -> pl.DataFrame:
        columns = list(zip(*rows, strict=True))
        data: dict[str, pl.Series] = {ROW: pl.Series(ROW, [int(x) for x in columns[0]], dtype=pl.Int64)}
        for index, header in enumerate(self.headers, start=1):
            data[header] = pl.Series(header, columns[index], dtype=pl.String)
        return pl.DataFrame(data)

    def _records(self) -> Iterator[tuple[int, str, str | None]]:
        """(first line number, record text, reason it is bad or None), following quoted fields across lines.

        A quote opens a quoted field only at the start of a field (`O"Brien` is literal text, as in
        spreadsheets). A quoted field that has not closed after MAX_RECORD_BYTES is an unbalanced quote:
        its first line is quarantined and the lines after it are read again on their own.
        """
        with self.path.open(encoding="utf-8", errors="replace", newline="") as handle:
            handle.readline()  # the header
            numbered = ((n, line) for n, line in enumerate(handle, start=2))
            pending: deque[tuple[int, str]] = deque()
            taken: list[tuple[int, str]] = []
            size = 0
            inside = False
            while True:
                item = pending.popleft() if pending else next(numbered, None)
                if item is None:
                    if not taken:
                        break
                    # The file ended inside a quoted field: the quote is unbalanced (same as below).
                    yield taken[0][0], taken[0][1], UNBALANCED
                    pending.extend(taken[1:])
                    taken, size, inside = [], 0, False
                    continue
                taken.append(item)
                size += len(item[1])
                inside = ends_inside_quotes(item[1].rstrip("\r\n"), self.delimiter, inside)
                if not inside:
                    yield taken[0][0], "".join(text for _, text in taken), None
                    taken, size = [], 0
                elif size > MAX_RECORD_BYTES:
                    yield taken[0][0], taken[0][1], UNBALANCED
                    pending.extendleft(reversed(taken[1:]))
                    taken, size, inside = [], 0, False


UNBALANCED = "unbalanced quote (a quoted field never closes)"


def ends_inside_quotes(text: str, delimiter: str, inside: bool) -> bool:
    """Whether a physical line ends inside a quoted field, given whether it started inside one."""
    i, n = 0, len(text)
    while True:
        if inside:
            j = text.find('"', i)
            while j != -1 and j + 1 < n and text[j + 1] == '"':  # "" is an escaped quote
                j = text.find('"', j + 2)
            if j == -1:
                return True
            inside = False
            k = text.find(delimiter, j + 1)
            if k == -1:
                return False
            i = k + 1
        elif i < n and text[i] == '"':
            inside, i = True, i + 1
        else:
            k = text.find(delimiter, i)
            if k == -1:
                return False
            i = k + 1


class RestartCarefully(Exception):
    """The fast path gave up part-way; the caller must discard what it staged and read again."""
