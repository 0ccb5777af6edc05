"""Reading untrusted CSV/XLSX files into text columns with line numbers, and validating them.

Every value is read as text and validated by us (polars' own casting silently nulls bad values):
a row that fails gets a reason and its line number and is quarantined; the rest load. Rules:
- encodings: UTF-8 (with or without BOM), UTF-16 with BOM, Windows-1252 when no line is UTF-8;
  in a UTF-8 file a line that is not valid UTF-8 is quarantined.
- one record per line: a line with unbalanced quotes, the wrong number of fields, a NUL byte or
  a field over 10,000 characters is quarantined (multi-line quoted fields are not supported).
- numbers may carry thousands separators (`1,250`), a currency sign (`$`), quotes and spaces;
  `1,5` (decimal comma) is refused rather than guessed.
- dates: YYYY-MM-DD, YYYY/MM/DD, MM/DD/YYYY, MM/DD/YY, DD.MM.YYYY, `Nov 20, 2026`, `20-Nov-2026`,
  and date-times (XLSX cells) whose time is dropped.
"""

from __future__ import annotations

import csv
import gzip
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from p360.core.intake import files

MAX_FIELD_CHARS = 10_000
MAX_XLSX_UNCOMPRESSED = 512 * 1024 * 1024  # a zip bomb is refused before parsing
LINE = "__line"
REASON = "__reason"
RAW = "__raw"


class FileRejected(Exception):
    """The whole file is unusable (wrong type, missing columns, empty): the run fails with this message."""


@dataclass
class Table:
    df: pl.DataFrame  # every column text, plus LINE (file line number) and RAW (the original line)
    columns: list[str]  # headers as written in the file
    bad: list[tuple[int, str, str]] = field(default_factory=list)  # (line, reason, raw) found while reading
    notes: list[str] = field(default_factory=list)

    @property
    def rows_read(self) -> int:
        return self.df.height + len(self.bad)


# --- Bytes -> text -------------------------------------------------------------------------------

_LINE_SPLIT = re.compile(r"\r\n|\r|\n")


def load_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise FileRejected(f"the file looks gzipped but cannot be decompressed ({exc})") from exc
    return data


def _reject_non_text(data: bytes, name: str) -> None:
    head = data[:2048].lstrip().lower()
    if data[:2] == b"MZ" or data[:4] == b"\x7fELF" or data[:4] == b"%PDF":
        raise FileRejected(f"{name} is not a CSV file (it looks like an executable or PDF)")
    if head.startswith((b"<!doctype", b"<html", b"<?xml", b"<svg")):
        raise FileRejected(f"{name} is not a CSV file (it looks like HTML/XML)")
    if data[:2] == b"PK":
        raise FileRejected(f"{name} is a zip/XLSX file; name it .xlsx")


def decode_lines(data: bytes) -> tuple[list[str | None], list[str]]:
    """Split into lines and decode; a line that cannot be decoded is None. Returns (lines, notes)."""
    notes: list[str] = []
    for bom, codec in ((b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be")):
        if data.startswith(bom):
            notes.append(f"decoded as {codec.upper()}")
            return list(_LINE_SPLIT.split(data[len(bom) :].decode(codec, errors="replace"))), notes
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return list(_LINE_SPLIT.split(data.decode("utf-8"))), notes
    except UnicodeDecodeError:
        pass
    raw_lines = re.split(rb"\r\n|\r|\n", data)
    decoded: list[str | None] = []
    utf8_non_ascii = 0
    for raw in raw_lines:
        try:
            text = raw.decode("utf-8")
            utf8_non_ascii += not raw.isascii()
            decoded.append(text)
        except UnicodeDecodeError:
            decoded.append(None)
    if utf8_non_ascii == 0:  # nothing says UTF-8: a Windows-1252 export
        notes.append("decoded as Windows-1252 (the file is not UTF-8)")
        return [raw.decode("cp1252", errors="replace") for raw in raw_lines], notes
    return decoded, notes


def sniff_delimiter(header: str, allowed: str = ",|\t;") -> str:
    counts = {d: header.count(d) for d in allowed}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


# --- Text -> table ---------------------------------------------------------------------------------


def _fast_table(text: str, delimiters: str) -> Table | None:
    """Vectorised split for the common clean file: UTF-8, no quotes, no NUL, no CR, no blank lines,
    header on line 1. Anything else returns None and takes the careful line-by-line path."""
    if '"' in text or "\x00" in text or "\r" in text:
        return None
    header, _, body = text.partition("\n")
    if not header.strip():
        return None
    delimiter = sniff_delimiter(header, delimiters)
    columns = _unique_names([c.strip().lstrip("\ufeff") for c in header.split(delimiter)])
    width = len(columns)
    lines = pl.Series("line", body.split("\n"), dtype=pl.String)
    if lines.len() and lines[-1] == "":
        lines = lines.head(lines.len() - 1)
    if lines.len() == 0 or (lines.str.len_bytes() == 0).any() or (lines.str.len_chars() > MAX_FIELD_CHARS).any():
        return None
    frame = pl.DataFrame({RAW: lines}).with_row_index(LINE, offset=2).with_columns(pl.col(LINE).cast(pl.Int64))
    frame = frame.with_columns(pl.col(RAW).str.count_matches(delimiter, literal=True).alias("__fields"))
    ragged = frame.filter(pl.col("__fields") != width - 1)
    bad = [
        (line, f"expected {width} fields, found {fields + 1}", raw[:2000])
        for line, fields, raw in zip(ragged[LINE], ragged["__fields"], ragged[RAW], strict=True)
    ]
    good = frame.filter(pl.col("__fields") == width - 1)
    split = good[RAW].str.split_exact(delimiter, width - 1).struct.rename_fields(columns).struct.unnest()
    df = split.with_columns(good[LINE], good[RAW])
    return Table(df=df, columns=columns, bad=bad)


def read_csv_bytes(data: bytes, name: str, *, delimiters: str = ",|\t;") -> Table:
    _reject_non_text(data, name)
    try:
        text = (data[3:] if data.startswith(b"\xef\xbb\xbf") else data).decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        fast = _fast_table(text, delimiters)
        if fast is not None:
            return fast
    lines, notes = decode_lines(data)
    header_index = next((i for i, line in enumerate(lines) if line is not None and line.strip()), None)
    if header_index is None:
        raise FileRejected(f"{name} is empty (no header row)")
    header_line = lines[header_index]
    assert header_line is not None
    delimiter = sniff_delimiter(header_line, delimiters)
    columns = next(csv.reader([header_line], delimiter=delimiter))
    columns = [c.strip().lstrip("\ufeff") for c in columns]
    width = len(columns)
    bad: list[tuple[int, str, str]] = []
    good_lines: list[str] = []
    line_numbers: list[int] = []
    for number, line in enumerate(lines[header_index + 1 :], start=header_index + 2):
        if line is None:
            bad.append((number, "the line is not valid UTF-8", ""))
            continue
        if not line.strip():
            continue
        if "\x00" in line:
            bad.append((number, "the line contains a NUL byte", line.replace("\x00", "\\0")[:2000]))
            continue
        if line.count('"') % 2:
            bad.append((number, "unbalanced quotes", line[:2000]))
            continue
        good_lines.append(line)
        line_numbers.append(number)
    rows: list[list[str]] = []
    kept_lines: list[int] = []
    kept_raw: list[str] = []
    for number, line, row in zip(line_numbers, good_lines, csv.reader(good_lines, delimiter=delimiter), strict=True):
        if len(row) != width:
            bad.append((number, f"expected {width} fields, found {len(row)}", line[:2000]))
        elif any(len(value) > MAX_FIELD_CHARS for value in row):
            bad.append((number, f"a field is longer than {MAX_FIELD_CHARS:,} characters", line[:200] + "…"))
        else:
            rows.append(row)
            kept_lines.append(number)
            kept_raw.append(line)
    names = _unique_names(columns)
    data_columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    df = pl.DataFrame(
        {name: pl.Series(name, values, dtype=pl.String) for name, values in zip(names, data_columns, strict=True)}
    )
    df = (
        df.with_columns(pl.Series(LINE, kept_lines, dtype=pl.Int64), pl.Series(RAW, kept_raw, dtype=pl.String))
        if rows
        else df.with_columns(pl.lit(None, pl.Int64).alias(LINE), pl.lit(None, pl.String).alias(RAW)).clear()
    )
    bad.sort()
    return Table(df=df, columns=names, bad=bad, notes=notes)


def _unique_names(columns: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for index, column in enumerate(columns):
        name = column or f"column_{index + 1}"
        if name in seen:
            seen[name] += 1
            name = f"{name}_{seen[name]}"
        else:
            seen[name] = 0
        out.append(name)
    return out


def read_xlsx_bytes(data: bytes, name: str) -> Table:
    """An XLSX media file through the one hostile-file reader (p360.core.intake.files): the zip container is
    checked by its real spans (not the sizes it declares), then the sheet is parsed in a memory-capped child."""
    if data[:2] != b"PK":
        raise FileRejected(f"{name} is not an XLSX file")
    with tempfile.TemporaryDirectory(prefix="p360-xlsx-") as tmp:
        path = Path(tmp) / "upload.xlsx"
        path.write_bytes(data)
        try:
            files.check_xlsx(path, filename=name, max_uncompressed=MAX_XLSX_UNCOMPRESSED)
            df = files.read_xlsx_strings(path, max_uncompressed=MAX_XLSX_UNCOMPRESSED)
        except files.FileRejected as exc:
            raise FileRejected(f"{name}: {exc.message}") from None
    names = [c for c in df.columns if c != LINE]
    df = df.select(*names, pl.col(LINE).cast(pl.Int64))  # LINE: the spreadsheet row (blank rows keep theirs)
    df = df.with_columns(pl.concat_str([pl.col(n).fill_null("") for n in names], separator=",").alias(RAW))
    return Table(df=df, columns=names)


def read_table(path: Path, name: str | None = None, *, delimiters: str = ",|\t;") -> Table:
    name = name or path.name
    data = load_bytes(path)
    if not data.strip():
        raise FileRejected(f"{name} is empty")
    if name.lower().endswith((".xlsx", ".xlsm")) or data[:2] == b"PK":
        return read_xlsx_bytes(data, name)
    try:  # the core intake's content rule: no program, script, PDF, image or archive, whatever the name says
        files.reject_non_table(data, name)
    except files.FileRejected as exc:
        raise FileRejected(exc.message) from None
    return read_csv_bytes(data, name, delimiters=delimiters)


# --- Header mapping --------------------------------------------------------------------------------

_CURRENCY_SUFFIX = re.compile(r"\s*\(([A-Z]{3})\)\s*$")


def normalise_header(header: str) -> str:
    text = _CURRENCY_SUFFIX.sub("", header.strip().lstrip("\ufeff"))
    return re.sub(r"\s+", " ", text.replace("_", " ")).strip().lower()


def map_columns(
    columns: list[str], spec: dict[str, list[str]], *, optional: frozenset[str] = frozenset(), file_name: str = ""
) -> dict[str, str]:
    """{canonical: file column} by the first alias present; a clear error names what is missing."""
    by_norm: dict[str, str] = {}
    for column in columns:
        by_norm.setdefault(normalise_header(column), column)
    mapping: dict[str, str] = {}
    missing = []
    for canonical, aliases in spec.items():
        found = next((by_norm[a] for a in aliases if a in by_norm), None)
        if found is not None:
            mapping[canonical] = found
        elif canonical not in optional:
            missing.append(
                f"{aliases[0]!r}" + (f" (or {', '.join(repr(a) for a in aliases[1:3])})" if len(aliases) > 1 else "")
            )
    if missing:
        raise FileRejected(
            f"{file_name or 'the file'} is missing required columns: {'; '.join(missing)}. "
            f"Columns found: {', '.join(columns) or '(none)'}"
        )
    return mapping


# --- Value validation (vectorised) -----------------------------------------------------------------

_NUMBER = r"^(\d{1,3}(,\d{3})+|\d+)(\.\d+)?$|^\.\d+$"
DATE_FORMATS = ["%Y-%m-%d", "%Y/%m/%d", "%m/%d/%Y", "%m/%d/%y", "%d.%m.%Y", "%b %d, %Y", "%d-%b-%Y", "%Y%m%d"]


def _clean_number(column: str) -> pl.Expr:
    return (
        pl.col(column)
        .fill_null("")
        .str.strip_chars()
        .str.strip_chars('"')
        .str.replace(r"^[$€£]\s*", "")
        .str.replace(r"\s*%$", "")
        .str.strip_chars()
    )


BIGINT_MAX = 2**63 - 1  # PostgreSQL bigint: impressions, clicks, conversions
DECIMAL_INTEGER_DIGITS = 14  # numeric(18, 4): revenue and conversion values; REDS cost_usd is (18, 6): 12


def too_large(text: pl.Expr, *, whole: bool, integer_digits: int = DECIMAL_INTEGER_DIGITS) -> pl.Expr:
    """True when a well-formed non-negative number (text) does not fit its column: compared as text, so a
    value past any machine integer is refused exactly rather than wrapped or nulled by a cast (issue 15)."""
    integer = text.str.replace_all(",", "").str.replace(r"\..*$", "").str.replace(r"^0+", "")
    if not whole:
        return integer.str.len_chars() > integer_digits
    limit = str(BIGINT_MAX)
    digits = integer.str.len_chars()
    return (digits > len(limit)) | ((digits == len(limit)) & (integer > pl.lit(limit)))


def number_problem(
    column: str, label: str, *, whole: bool, empty_is_zero: bool = True, integer_digits: int = DECIMAL_INTEGER_DIGITS
) -> pl.Expr:
    """A reason (text) when the column's value is not a valid non-negative number that fits its column."""
    text = _clean_number(column)
    negative = text.str.starts_with("-") | (text.str.starts_with("(") & text.str.ends_with(")"))
    wellformed = text.str.contains(_NUMBER)
    not_whole = text.str.replace_all(",", "").str.contains(r"\.\d*[1-9]")
    shown = pl.col(column).fill_null("").str.slice(0, 40)
    bound = f"{BIGINT_MAX:,}" if whole else f"{integer_digits} digits before the decimal point"
    return (
        pl.when((text == "") & pl.lit(empty_is_zero))
        .then(None)
        .when(text == "")
        .then(pl.lit(f"{label} is empty"))
        .when(negative)
        .then(pl.format(f"{label} is negative ('{{}}')", shown))
        .when(~wellformed)
        .then(pl.format(f"{label} is not a number ('{{}}')", shown))
        .when(pl.lit(whole) & not_whole)
        .then(pl.format(f"{label} is not a whole number ('{{}}')", shown))
        .when(too_large(text, whole=whole, integer_digits=integer_digits))
        .then(pl.format(f"{label} is too large to store ('{{}}'; at most {bound})", shown))
        .otherwise(None)
    )


def number_value(column: str, *, whole: bool) -> pl.Expr:
    text = _clean_number(column).str.replace_all(",", "")
    text = pl.when(text == "").then(pl.lit("0")).otherwise(text)
    if whole:
        return text.str.replace(r"\.0*$", "").cast(pl.Int64, strict=False)
    return text.cast(pl.Decimal(18, 4), strict=False)


def date_value(column: str) -> pl.Expr:
    text = pl.col(column).fill_null("").str.strip_chars()
    date_part = text.str.replace(r"[T ]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$", "")
    return pl.coalesce([date_part.str.to_date(fmt, strict=False) for fmt in DATE_FORMATS])


def date_problem(column: str, label: str) -> pl.Expr:
    return (
        pl.when(date_value(column).is_null())
        .then(
            pl.format(f"{label} '{{}}' is not a date (use YYYY-MM-DD)", pl.col(column).fill_null("").str.slice(0, 40))
        )
        .otherwise(None)
    )


def name_problem(column: str, label: str, max_length: int = 255) -> pl.Expr:
    text = pl.col(column).fill_null("").str.strip_chars()
    return (
        pl.when(text == "")
        .then(pl.lit(f"{label} is empty"))
        .when(text.str.len_chars() > max_length)
        .then(pl.lit(f"{label} is longer than {max_length} characters"))
        .otherwise(None)
    )


def combine_problems(problems: list[pl.Expr]) -> pl.Expr:
    """One reason text (problems joined by '; ') or null when the row is fine."""
    joined = pl.concat_str(problems, separator="; ", ignore_nulls=True)
    return pl.when(joined == "").then(None).otherwise(joined)
