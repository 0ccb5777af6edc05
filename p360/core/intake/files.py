"""File-level safety and decoding for audience imports (pure Python, no Django).

The import pipeline calls, in order:

1. ``inspect_file(path, filename=..., max_bytes=...)`` decides from the *content* (never the extension)
   whether the file is a CSV-like text table or an XLSX workbook, and rejects everything else with a
   ``FileRejected(code, message)`` whose message a marketer can act on. For text it detects the encoding
   and the delimiter; for XLSX it checks the zip container (size, ratio, lying headers, DTDs/entities,
   encryption) before any parser sees it.
2. ``to_utf8(path, info, dest_dir)`` streams a text file into clean UTF-8 (what polars' ``scan_csv`` needs)
   in bounded memory, or returns the original path when it already is.
3. ``read_xlsx_strings(path, sheet=...)`` reads one sheet, every cell as text, in a child process with an
   address-space cap and a timeout, so a calamine/polars panic, an abort on allocation failure or a
   pathological workbook can never take the worker down with it.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import json
import logging
import os
import re
import signal
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal
from xml.etree import ElementTree

import polars as pl

logger = logging.getLogger(__name__)

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30

FileKind = Literal["csv", "xlsx"]
Encoding = Literal["utf-8", "utf-8-sig", "utf-16-le", "utf-16-be", "cp1252"]

#: Bytes read from the start of a text file to sniff encoding, markup and delimiter.
SAMPLE_BYTES = 1 * MiB
#: Extra probes (start offsets spread through the file) for the encoding decision, so a file whose
#: first megabyte is plain ASCII but whose later rows are Windows-1252 is still recognised.
PROBE_BYTES = 64 * KiB
CHUNK_BYTES = 1 * MiB
SAMPLE_LINES = 20
SAMPLE_LINE_CHARS = 2000
DELIMITERS = (",", ";", "\t", "|")

#: XLSX container limits. A real workbook has a few dozen parts; deflate cannot exceed about 1032:1, and
#: real spreadsheet XML compresses 5-30:1, so 200:1 on a part over 32 MiB is a bomb, not a sheet.
MAX_ZIP_ENTRIES = 10_000
MAX_CENTRAL_DIRECTORY = 16 * MiB
MAX_PART_RATIO = 200
RATIO_CHECK_MIN_SIZE = 32 * MiB
DEFAULT_MAX_XLSX_UNCOMPRESSED = 512 * MiB
#: Address space the XLSX child may use on top of an idle interpreter with polars and fastexcel loaded.
DEFAULT_XLSX_MEMORY = 2 * GiB
DEFAULT_XLSX_TIMEOUT = 600.0

LINE_COLUMN = "__line"


class FileRejected(Exception):
    """The file cannot be imported. ``code`` is stable (tests, API, quality report); ``message`` is for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class FileInfo:
    kind: FileKind
    encoding: Encoding  # for xlsx always "utf-8" (the XML parts are decoded by the parser)
    delimiter: str | None  # None for xlsx
    size: int
    sha256: str
    sample_lines: list[str] = field(default_factory=list)  # first physical lines of a text file, decoded
    sheets: list[str] = field(default_factory=list)  # xlsx only: sheet names in workbook order


# --------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------


def inspect_file(
    path: Path,
    *,
    filename: str,
    max_bytes: int,
    max_xlsx_uncompressed: int = DEFAULT_MAX_XLSX_UNCOMPRESSED,
) -> FileInfo:
    """Classify and vet an uploaded file by content. Raises ``FileRejected`` for anything not importable.

    A header-only file is accepted (the pipeline reports zero rows); an empty (or blank-only) file is not.
    """
    name = filename or path.name
    size = path.stat().st_size
    if size == 0:
        raise FileRejected("empty", f"“{name}” is empty. Export the list again and upload the file with its rows.")
    if size > max_bytes:
        raise FileRejected(
            "too_large",
            f"“{name}” is larger than the {_human(max_bytes)} limit ({_human(size)}). "
            "Split it into smaller files or remove columns you do not need, then upload again.",
        )
    with path.open("rb") as fh:
        head = fh.read(SAMPLE_BYTES)

    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        sheets = check_xlsx(path, filename=name, max_uncompressed=max_xlsx_uncompressed)
        return FileInfo(kind="xlsx", encoding="utf-8", delimiter=None, size=size, sha256=_sha256(path), sheets=sheets)
    if head.startswith(_CFB_MAGIC):
        _reject_cfb(path, name)
    _reject_by_magic(head, name)

    encoding = detect_encoding(head + b"".join(_probes(path, size)) if size > len(head) else head)
    complete = size <= len(head)
    text = _decode_sample(head, encoding, final=complete)
    if not text.strip():
        raise FileRejected("empty", f"“{name}” contains only blank lines. Export the list again with its rows.")
    _reject_text(text, name, encoding, complete=complete)
    lines = _sample_lines(text, complete=complete)
    return FileInfo(
        kind="csv",
        encoding=encoding,
        delimiter=detect_delimiter(text, complete=complete),
        size=size,
        sha256=_sha256(path),
        sample_lines=lines,
    )


def _human(size: int) -> str:
    """Sizes the way Windows Explorer shows them (binary multiples, "MB"/"GB" labels)."""
    if size < KiB:
        return f"{size} bytes"
    for unit, scale in (("GB", GiB), ("MB", MiB), ("KB", KiB)):
        if size >= scale:
            return f"{size / scale:.1f}".removesuffix(".0") + f" {unit}"
    raise AssertionError("unreachable")


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _probes(path: Path, size: int) -> Iterator[bytes]:
    """Small samples from the middle and the end, each starting at a character boundary where possible."""
    with path.open("rb") as fh:
        for fraction in (0.25, 0.5, 0.75):
            offset = max(SAMPLE_BYTES, int(size * fraction) - PROBE_BYTES // 2)
            if offset >= size:
                continue
            fh.seek(offset)
            chunk = fh.read(PROBE_BYTES)
            # Start after the next newline so the probe neither splits a multi-byte character nor a UTF-16
            # code unit pair in a way that changes the verdict (newline is ASCII in every encoding we accept).
            cut = chunk.find(b"\n")
            if cut != -1:
                yield b"\n" + chunk[cut + 1 :]


# --------------------------------------------------------------------------------------------------
# Magic bytes and content sniffing
# --------------------------------------------------------------------------------------------------

_CFB_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"

_EXECUTABLE_MAGIC = (
    (b"\x7fELF", "a Linux program (ELF)"),
    (b"\xfe\xed\xfa\xce", "a macOS program (Mach-O)"),
    (b"\xfe\xed\xfa\xcf", "a macOS program (Mach-O)"),
    (b"\xce\xfa\xed\xfe", "a macOS program (Mach-O)"),
    (b"\xcf\xfa\xed\xfe", "a macOS program (Mach-O)"),
    (b"\xca\xfe\xba\xbe", "a program (Mach-O universal binary or Java class)"),
    (b"\x00asm", "a WebAssembly program"),
)
_PDF_MAGIC = b"%PDF-"
_IMAGE_MAGIC = (
    b"\x89PNG\r\n\x1a\n",
    b"\xff\xd8\xff",
    b"GIF87a",
    b"GIF89a",
    b"II*\x00",
    b"MM\x00*",
    b"\x00\x00\x01\x00",
)
_ARCHIVE_MAGIC = (
    (b"\x1f\x8b", "a gzip archive"),
    (b"\x1f\x9d", "a compressed archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"\x28\xb5\x2f\xfd", "a zstd archive"),
)


def _reject_by_magic(head: bytes, name: str) -> None:
    for magic, what in _EXECUTABLE_MAGIC:
        if head.startswith(magic):
            raise _executable(name, what)
    if head.startswith(b"MZ") and _looks_like_pe(head):
        raise _executable(name, "a Windows program (.exe/.dll)")
    if head.startswith(b"#!"):
        raise _executable(name, "a script")
    if head.lstrip(b"\xef\xbb\xbf\x00 \t\r\n").startswith(_PDF_MAGIC):
        raise FileRejected(
            "pdf", f"“{name}” is a PDF document, not a table. Export the list from its source as CSV or Excel (.xlsx)."
        )
    if head.startswith(_IMAGE_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP") or head[4:12] == b"ftypheic":
        raise FileRejected("image", f"“{name}” is an image, not a table. Upload the list as CSV or Excel (.xlsx).")
    if head.startswith(b"BZh") and head[4:10] == b"1AY&SY":
        raise _archive(name, "a bzip2 archive")
    for magic, what in _ARCHIVE_MAGIC:
        if head.startswith(magic):
            raise _archive(name, what)
    if len(head) > 262 and head[257:262] == b"ustar":
        raise _archive(name, "a tar archive")


def _looks_like_pe(head: bytes) -> bool:
    """``MZ`` alone could start a CSV header; a DOS/PE executable also has binary header fields."""
    if len(head) < 64:
        return False
    (pe_offset,) = struct.unpack_from("<I", head, 0x3C)
    if pe_offset + 4 <= len(head) and head[pe_offset : pe_offset + 4] == b"PE\x00\x00":
        return True
    return b"\x00" in head[:64]


def _executable(name: str, what: str) -> FileRejected:
    return FileRejected(
        "executable",
        f"“{name}” is {what}, not a table, whatever its name says. It was not opened. "
        "Upload the list as CSV or Excel (.xlsx).",
    )


def _archive(name: str, what: str) -> FileRejected:
    return FileRejected(
        "archive", f"“{name}” is {what}. Unpack it and upload the CSV or Excel (.xlsx) file inside instead."
    )


_TAG = re.compile(r"<[A-Za-z][\w:.-]*[\s/>]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")  # tab, LF, FF, CR are normal in text
_BINARY_SHARE = 0.05  # random bytes decode to about 11 % controls; a CSV with a few NULs is far below


def _reject_text(text: str, name: str, encoding: str, *, complete: bool) -> None:
    start = text.lstrip("\ufeff \t\r\n")
    lowered = start[:4096].lower()
    if lowered.startswith(("<!doctype html", "<html", "<head", "<body", "<meta", "<script", "<table", "<div")) or (
        lowered.startswith(("<!--", "<?xml")) and "<html" in text[:65536].lower()
    ):
        raise FileRejected(
            "html",
            f"“{name}” is a web page (HTML), not a table. This often happens when a download link returns a "
            "login or error page. Download the export again and upload the CSV or Excel file itself.",
        )
    if lowered.startswith("<?xml") or (_TAG.match(start[:256]) and ("</" in start[:65536] or "/>" in start[:65536])):
        hint = (
            " It looks like an Excel 2003 XML spreadsheet: open it in Excel and save it as .xlsx."
            if "urn:schemas-microsoft-com:office:spreadsheet" in text[:65536]
            else ""
        )
        raise FileRejected(
            "xml", f"“{name}” is an XML document, not a table.{hint} Upload the list as CSV or Excel (.xlsx)."
        )
    sample = text[:65536]
    controls = len(_CONTROL.findall(sample))
    replaced = sample.count("\ufffd") if encoding.startswith("utf-16") else 0
    if sample and (controls + replaced) / len(sample) > _BINARY_SHARE:
        raise FileRejected(
            "binary",
            f"“{name}” is not a text file (it contains binary data). Upload the list as CSV or Excel (.xlsx).",
        )
    if start.startswith("{\\rtf"):
        raise FileRejected(
            "not_tabular", f"“{name}” is a Word/RTF document, not a table. Upload the list as CSV or Excel (.xlsx)."
        )
    if re.match(r"\[\s*[{\[\"]|\{\s*\"", start):
        raise FileRejected(
            "not_tabular", f"“{name}” is JSON data, not a table. Export the list as CSV or Excel (.xlsx) instead."
        )
    if not complete and re.search(r"[\r\n]", text) is None:
        raise FileRejected(
            "not_tabular",
            f"“{name}” has no line break in its first megabyte, so it is not a table with a header row. "
            "Check that you exported a CSV file.",
        )


# --------------------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------------------

_CODECS: dict[str, str] = {
    "utf-8": "utf-8",
    "utf-8-sig": "utf-8-sig",
    "utf-16-le": "utf-16-le",
    "utf-16-be": "utf-16-be",
    "cp1252": "cp1252",
}


def detect_encoding(sample: bytes) -> Encoding:
    """BOMs first, then UTF-16 by its NUL pattern, then UTF-8 if it is (mostly) valid, else Windows-1252.

    "Mostly" means at least as many valid multi-byte characters as invalid sequences: a UTF-8 export with a
    few corrupt bytes stays UTF-8 (those rows get U+FFFD and are quarantined downstream), while a Windows-1252
    file, whose accented letters are all invalid UTF-8, is read as Windows-1252.
    """
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith(codecs.BOM_UTF16_LE):
        return "utf-16-le"
    if sample.startswith(codecs.BOM_UTF16_BE):
        return "utf-16-be"
    utf16 = _utf16_by_nuls(sample)
    if utf16:
        return utf16
    valid, invalid = _utf8_stats(sample)
    if invalid == 0 or valid >= invalid:
        return "utf-8"
    return "cp1252"


def _utf16_by_nuls(sample: bytes) -> Encoding | None:
    probe = sample[: 64 * KiB]
    pairs = len(probe) // 2
    if pairs < 2:
        return None
    even_nuls = probe[0 : pairs * 2 : 2].count(0) / pairs
    odd_nuls = probe[1 : pairs * 2 : 2].count(0) / pairs
    # ASCII-range text in UTF-16 has a NUL in every code unit's high byte; CSV punctuation and digits keep
    # that share high even for non-Latin scripts. Binary data has NULs on both sides.
    if odd_nuls >= 0.2 and even_nuls <= 0.02:
        return "utf-16-le"
    if even_nuls >= 0.2 and odd_nuls <= 0.02:
        return "utf-16-be"
    return None


def _utf8_stats(sample: bytes) -> tuple[int, int]:
    """(valid multi-byte characters, invalid sequences) in a sample that may end mid-character."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    text = decoder.decode(sample, final=False)
    replaced = text.count("\ufffd") - sample.count("\ufffd".encode())
    non_ascii = len(text) - len(text.encode("ascii", "ignore"))
    return non_ascii - text.count("\ufffd"), max(replaced, 0)


def _decode_sample(head: bytes, encoding: str, *, final: bool) -> str:
    decoder = codecs.getincrementaldecoder(_CODECS[encoding])(errors="replace")
    return decoder.decode(head, final=final).removeprefix("\ufeff")


def _sample_lines(text: str, *, complete: bool) -> list[str]:
    lines = re.split(r"\r\n|\r|\n", text[: SAMPLE_LINES * SAMPLE_LINE_CHARS * 2])
    if not complete and len(lines) > 1:
        lines = lines[:-1]  # the last one may be cut by the sample boundary
    while lines and lines[-1] == "":
        lines.pop()
    return [line[:SAMPLE_LINE_CHARS] for line in lines[:SAMPLE_LINES]]


def to_utf8(path: Path, info: FileInfo, dest_dir: Path) -> Path:
    """Stream ``path`` into UTF-8 without BOM, with lone CRs (old Mac line ends) as LF, in bounded memory.

    CRLF is kept (polars reads it, and rewriting it would cost a pass over every Windows file); every physical
    line stays on its line, so line numbers in quarantine reports match what the user sees in an editor.
    Invalid byte sequences become U+FFFD (the pipeline quarantines those rows); exactly one leading BOM is
    dropped. Returns ``path`` itself when it is already valid UTF-8 without a BOM and without lone CRs.
    Otherwise writes ``dest_dir/<sha256>.utf8.csv`` atomically and returns that path; re-running overwrites it.
    Memory: a few 1 MiB chunks whatever the file size.
    """
    if info.kind != "csv":
        raise ValueError("to_utf8 only handles text files")
    if info.encoding == "utf-8" and _is_clean_utf8(path):
        return path
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / f"{info.sha256}.utf8.csv"
    fd, tmp_name = tempfile.mkstemp(dir=dest_dir, prefix=f".{info.sha256[:16]}-", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with path.open("rb") as src, os.fdopen(fd, "wb") as out:
            if info.encoding.startswith("utf-16"):
                pieces = _utf16_pieces(src, info.encoding)
            else:
                pieces = _byte_pieces(src, utf8=info.encoding != "cp1252")
            for piece in pieces:
                out.write(piece)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return dest


def _byte_pieces(src: IO[bytes], *, utf8: bool) -> Iterator[bytes]:
    """UTF-8 or Windows-1252 in, UTF-8 out, working on bytes so clean stretches are copied, not decoded.

    Lone CRs become LF on bytes (CR and LF never occur inside a UTF-8 or Windows-1252 character).
    Each piece ends on a character boundary and never on a CR, so a CRLF or a multi-byte character split by
    the chunking is handled whole in the next piece.
    """
    carry = b""
    first = True
    while True:
        chunk = src.read(CHUNK_BYTES)
        final = not chunk
        data = carry + chunk
        carry = b""
        if first:
            if len(data) < len(codecs.BOM_UTF8) and not final:
                carry = data  # need three bytes to tell a BOM
                continue
            first = False
            if utf8:
                data = data.removeprefix(codecs.BOM_UTF8)
        if not final:
            cut = _char_boundary(data) if utf8 else len(data)
            if cut and data[cut - 1] == 0x0D:
                cut -= 1
            data, carry = data[:cut], data[cut:]
        if b"\r" in data:
            data = _LONE_CR.sub(b"\n", data)
        if data.isascii():
            yield data
        elif utf8:
            yield data if _valid_utf8(data) else data.decode("utf-8", "replace").encode("utf-8")
        else:
            yield data.decode("cp1252", "replace").encode("utf-8")
        if final:
            return


_LONE_CR = re.compile(b"\r(?!\n)")
_LONE_CR_TEXT = re.compile("\r(?!\n)")


def _char_boundary(data: bytes) -> int:
    """Index where the last, possibly incomplete, UTF-8 character starts (``len(data)`` if it ends on ASCII)."""
    n = len(data)
    for i in range(n - 1, max(n - 5, -1), -1):
        byte = data[i]
        if byte < 0x80:
            return i + 1
        if byte >= 0xC0:
            return i
    return n  # four continuation bytes in a row: invalid anyway, replaced where it stands


def _valid_utf8(data: bytes) -> bool:
    # polars validates with SIMD (about 10 GB/s against CPython's 1.4 GB/s for non-ASCII text).
    try:
        pl.Series([data], dtype=pl.Binary).cast(pl.String)
    except pl.exceptions.PolarsError:
        return False
    return True


def _utf16_pieces(src: IO[bytes], encoding: str) -> Iterator[bytes]:
    decoder = codecs.getincrementaldecoder(_CODECS[encoding])(errors="replace")
    first = True
    carry_cr = False
    while True:
        chunk = src.read(CHUNK_BYTES)
        final = not chunk
        text = decoder.decode(chunk, final=final)
        if first and text:
            text = text.removeprefix("\ufeff")
            first = False
        if carry_cr:
            text = "\r" + text
        # A CR at the end of a chunk may be the first half of a CRLF: decide with the next chunk.
        carry_cr = not final and text.endswith("\r")
        if carry_cr:
            text = text[:-1]
        if "\r" in text:
            text = _LONE_CR_TEXT.sub("\n", text)
        yield text.encode("utf-8")
        if final:
            return


def _is_clean_utf8(path: Path) -> bool:
    """Valid UTF-8, no BOM, no CR that is not followed by LF. Stops at the first problem."""
    with path.open("rb") as fh:
        if fh.read(len(codecs.BOM_UTF8)) == codecs.BOM_UTF8:
            return False
        fh.seek(0)
        carry = b""
        while True:
            chunk = fh.read(CHUNK_BYTES)
            final = not chunk
            data = carry + chunk
            carry = b""
            if not final:
                cut = _char_boundary(data)
                if cut and data[cut - 1] == 0x0D:
                    cut -= 1
                data, carry = data[:cut], data[cut:]
            if b"\r" in data and _LONE_CR.search(data):
                return False
            if not data.isascii() and not _valid_utf8(data):
                return False
            if final:
                return True


# --------------------------------------------------------------------------------------------------
# Delimiter
# --------------------------------------------------------------------------------------------------

_DELIMITER_SAMPLE_CHARS = 256 * KiB
_DELIMITER_RECORDS = 200


def detect_delimiter(text: str, *, complete: bool = True) -> str:
    """Pick the delimiter (``,`` ``;`` tab ``|``) whose field count is most consistent with the header.

    Quotes are honoured the way CSV readers do (only at the start of a field, ``""`` escapes), so commas inside
    quoted fields do not vote. A one-column file gets ``,``. ``complete`` says whether ``text`` is the whole file
    (otherwise its last record may be cut and is ignored).
    """
    text = text.removeprefix("\ufeff")
    cut = len(text) > _DELIMITER_SAMPLE_CHARS
    sample = text[:_DELIMITER_SAMPLE_CHARS]
    best = ","
    best_score: tuple[float, int] = (0.0, 1)
    fallback = ","
    fallback_score: tuple[float, int] = (0.0, 1)
    for delimiter in DELIMITERS:
        widths = _record_widths(sample, delimiter, drop_last=cut or not complete)
        if not widths:
            continue
        header = widths[0]
        if header > 1:
            score = (sum(1 for w in widths if w == header) / len(widths), header)
            if score > best_score:
                best, best_score = delimiter, score
        mode = max(set(widths), key=widths.count)
        if mode > 1:
            alt = (widths.count(mode) / len(widths), mode)
            if alt > fallback_score:
                fallback, fallback_score = delimiter, alt
    if best_score[1] > 1:
        return best
    return fallback  # e.g. a title line above the table: go by the data rows


def _record_widths(text: str, delimiter: str, *, drop_last: bool) -> list[int]:
    """Field counts of the first records; blank lines are skipped like CSV readers do."""
    token = re.compile('["\r\n' + re.escape(delimiter) + "]")
    widths: list[int] = []
    n = len(text)
    i = 0
    record_start = 0
    field_start = 0
    count = 1
    while i < n and len(widths) < _DELIMITER_RECORDS:
        m = token.search(text, i)
        if m is None:
            break
        j = m.start()
        ch = text[j]
        if ch == '"':
            if j != field_start:  # a quote inside an unquoted field is literal
                i = j + 1
                continue
            k = j + 1
            while True:
                k = text.find('"', k)
                if k == -1:
                    k = n
                    break
                if text.startswith('""', k):
                    k += 2
                    continue
                break
            i = k + 1
            continue
        if ch == delimiter:
            count += 1
            i = field_start = j + 1
            continue
        # end of record (CRLF, LF or lone CR)
        if j > record_start:
            widths.append(count)
        i = j + 2 if text.startswith("\r\n", j) else j + 1
        record_start = field_start = i
        count = 1
    if len(widths) < _DELIMITER_RECORDS and not drop_last and text[record_start:].strip():
        widths.append(count)  # the last record has no line ending
    return widths


# --------------------------------------------------------------------------------------------------
# XLSX container checks
# --------------------------------------------------------------------------------------------------

_XML_DANGER = (b"<!doctype", b"<!entity", b"http://www.w3.org/2001/xinclude")
_XML_OVERLAP = max(len(p) for p in _XML_DANGER) - 1


def check_xlsx(
    path: Path, *, filename: str = "", max_uncompressed: int = DEFAULT_MAX_XLSX_UNCOMPRESSED, scan: bool = True
) -> list[str]:
    """Vet an XLSX container without trusting it; return its sheet names.

    Checks, in order: the end-of-central-directory counts (before ``zipfile`` builds one object per entry),
    that it is a workbook, encryption, declared uncompressed size and per-part ratio (from the central
    directory, before anything is decompressed), overlapping entries (the "quoted overlap" bomb), and then,
    when ``scan`` is true, every part decompressed as a stream in 1 MiB pieces with its *declared* size as a
    hard cap (a header that lies about its size is caught after at most one extra megabyte), scanning XML for
    DOCTYPE/ENTITY declarations and XInclude. Nothing is resolved or parsed before the scan passes.
    """
    name = filename or path.name
    size = path.stat().st_size
    with path.open("rb") as fh:
        _check_eocd(fh, size, name)
        try:
            zf = zipfile.ZipFile(fh)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError, struct.error) as exc:
            raise _damaged(name) from exc
        with zf:
            infos = zf.infolist()
            names = {info.filename for info in infos}
            _require_workbook(names, name)
            for info in infos:
                if info.flag_bits & 0x1:
                    raise _encrypted(name)
                if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                    raise FileRejected(
                        "zip_not_xlsx",
                        f"“{name}” uses a compression method Excel does not produce. Open it in Excel, save it "
                        "as .xlsx and upload it again.",
                    )
            declared = sum(info.file_size for info in infos)
            if declared > max_uncompressed:
                raise _bomb(name, f"it would expand to {_human(declared)} (limit {_human(max_uncompressed)})")
            for info in infos:
                ratio = info.file_size // max(info.compress_size, 1)
                if info.file_size > RATIO_CHECK_MIN_SIZE and ratio > MAX_PART_RATIO:
                    raise _bomb(name, f"one part would expand {ratio} times")
            spans = [_data_span(fh, info, size, name) for info in infos]
            _check_overlaps(spans, name)
            if scan:
                for info, (start, _end) in zip(infos, spans, strict=True):
                    _scan_part(fh, info, start, name)
            return _sheet_names(zf, name)


def _check_eocd(fh: IO[bytes], size: int, name: str) -> None:
    tail_len = min(size, 65536 + 22)
    fh.seek(size - tail_len)
    tail = fh.read(tail_len)
    pos = tail.rfind(b"PK\x05\x06")
    if pos == -1 or pos + 22 > len(tail):
        raise _damaged(name)
    entries, cd_size = struct.unpack_from("<HI", tail, pos + 10)
    if entries == 0xFFFF or cd_size == 0xFFFFFFFF:
        locator = pos - 20
        if locator < 0 or tail[locator : locator + 4] != b"PK\x06\x07":
            raise _damaged(name)
        (zip64_offset,) = struct.unpack_from("<Q", tail, locator + 8)
        if zip64_offset + 56 > size:
            raise _damaged(name)
        fh.seek(zip64_offset)
        record = fh.read(56)
        if record[:4] != b"PK\x06\x06":
            raise _damaged(name)
        entries, cd_size = struct.unpack_from("<QQ", record, 32)
    if entries > MAX_ZIP_ENTRIES or cd_size > MAX_CENTRAL_DIRECTORY:
        raise _bomb(name, f"it holds {entries} parts")


def _require_workbook(names: set[str], name: str) -> None:
    if "[Content_Types].xml" in names and "xl/workbook.xml" in names:
        return
    if "xl/workbook.bin" in names:
        what = "a binary Excel workbook (.xlsb)"
        fix = "Open it in Excel and save it as .xlsx (Excel Workbook) or CSV."
    elif "word/document.xml" in names:
        what, fix = "a Word document", "Upload the list as CSV or Excel (.xlsx)."
    elif "ppt/presentation.xml" in names:
        what, fix = "a PowerPoint presentation", "Upload the list as CSV or Excel (.xlsx)."
    elif "content.xml" in names and "mimetype" in names:
        what, fix = "an OpenDocument file (.ods)", "Save it as .xlsx or CSV and upload it again."
    else:
        what, fix = "a zip archive, not an Excel workbook", "Unpack it and upload the CSV or .xlsx file inside."
    raise FileRejected("zip_not_xlsx", f"“{name}” is {what}. {fix}")


def _data_span(fh: IO[bytes], info: zipfile.ZipInfo, size: int, name: str) -> tuple[int, int]:
    """Where the entry's local header starts and its compressed data ends, read from the local header."""
    fh.seek(info.header_offset)
    local = fh.read(30)
    if len(local) != 30 or local[:4] != b"PK\x03\x04":
        raise _damaged(name)
    name_len, extra_len = struct.unpack_from("<HH", local, 26)
    data_start = info.header_offset + 30 + name_len + extra_len
    data_end = data_start + info.compress_size
    if data_end > size:
        raise _damaged(name)
    return data_start, data_end


def _check_overlaps(spans: list[tuple[int, int]], name: str) -> None:
    previous_end = -1
    for start, end in sorted(spans):
        if start < previous_end:
            raise _bomb(name, "its parts overlap (a known zip-bomb construction)")
        previous_end = end


def _scan_part(fh: IO[bytes], info: zipfile.ZipInfo, data_start: int, name: str) -> None:
    scanner = _XmlScanner(name, info.filename)
    produced = 0
    for piece in _inflate(fh, info, data_start, name):
        produced += len(piece)
        if produced > info.file_size:
            raise _bomb(name, f"part {info.filename} expands beyond the size it declares")
        scanner.feed(piece)
    if produced != info.file_size:
        raise _damaged(name)
    scanner.finish()


def _inflate(fh: IO[bytes], info: zipfile.ZipInfo, data_start: int, name: str) -> Iterator[bytes]:
    fh.seek(data_start)
    remaining = info.compress_size
    if info.compress_type == zipfile.ZIP_STORED:
        while remaining:
            piece = fh.read(min(CHUNK_BYTES, remaining))
            if not piece:
                raise _damaged(name)
            remaining -= len(piece)
            yield piece
        return
    inflater = zlib.decompressobj(-15)
    pending = b""
    while not inflater.eof:
        if not pending:
            if not remaining:
                raise _damaged(name)  # stream ends before the deflate end-of-block
            pending = fh.read(min(64 * KiB, remaining))
            if not pending:
                raise _damaged(name)
            remaining -= len(pending)
        try:
            out = inflater.decompress(pending, CHUNK_BYTES)
        except zlib.error as exc:
            raise _damaged(name) from exc
        pending = inflater.unconsumed_tail
        if out:
            yield out


class _XmlScanner:
    """Streaming search for DTD/entity/XInclude markers in one part, in UTF-8 or UTF-16 (both legal for XML)."""

    def __init__(self, name: str, part: str) -> None:
        self.name = name
        self.part = part
        self.decoder: codecs.IncrementalDecoder | None = None
        self.started = False
        self.tail = b""
        self.head = b""

    def feed(self, data: bytes) -> None:
        if not self.started:
            self.head += data
            if len(self.head) < 4:
                return
            data, self.head = self.head, b""
            self._start(data)
        self._scan(data)

    def finish(self) -> None:
        if not self.started:
            data, self.head = self.head, b""
            self._start(data)
            self._scan(data)
        if self.decoder is not None:
            self._scan(b"", final=True)

    def _scan(self, data: bytes, *, final: bool = False) -> None:
        if self.decoder is not None:
            data = self.decoder.decode(data, final=final).encode("utf-8", "replace")
        window = self.tail + data.lower()
        for pattern in _XML_DANGER:
            if pattern in window:
                raise FileRejected(
                    "xml_entities",
                    f"“{self.name}” contains XML declarations (DTD/entities) that Excel never writes and that are "
                    "used in attacks. It was not opened. Open it in Excel, save a new copy and upload that.",
                )
        self.tail = window[-_XML_OVERLAP:]

    def _start(self, head: bytes) -> None:
        self.started = True
        if head.startswith((codecs.BOM_UTF16_LE, b"<\x00")):
            self.decoder = codecs.getincrementaldecoder("utf-16-le")(errors="replace")
        elif head.startswith((codecs.BOM_UTF16_BE, b"\x00<")):
            self.decoder = codecs.getincrementaldecoder("utf-16-be")(errors="replace")
        elif head.startswith((b"\x00\x00", b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
            raise FileRejected(
                "xml_entities", f"“{self.name}” has a part in an encoding Excel never writes. It was not opened."
            )


def _sheet_names(zf: zipfile.ZipFile, name: str) -> list[str]:
    info = zf.getinfo("xl/workbook.xml")
    if info.file_size > 16 * MiB:
        raise _damaged(name)
    try:
        # Safe with expat here: the part passed the scan (no DOCTYPE, so no entities to expand or fetch).
        root = ElementTree.fromstring(zf.read(info))  # noqa: S314
    except (ElementTree.ParseError, zipfile.BadZipFile, zlib.error, ValueError) as exc:
        raise _damaged(name) from exc
    sheets = [el.get("name", "") for el in root.iter() if el.tag.endswith("}sheet") or el.tag == "sheet"]
    if not sheets:
        raise FileRejected("not_tabular", f"“{name}” is an Excel workbook without any sheet.")
    return sheets


def _reject_cfb(path: Path, name: str) -> None:
    names = _cfb_entry_names(path)
    if {"EncryptedPackage", "EncryptionInfo"} & names:
        raise _encrypted(name)
    if {"Workbook", "Book"} & names:
        raise FileRejected(
            "legacy_excel",
            f"“{name}” is an old Excel 97-2003 workbook (.xls). Open it in Excel, save it as .xlsx "
            "(Excel Workbook) or CSV, and upload that.",
        )
    if "WordDocument" in names:
        raise FileRejected("not_tabular", f"“{name}” is a Word document. Upload the list as CSV or Excel (.xlsx).")
    raise FileRejected(
        "binary", f"“{name}” is an old Office file, not a table. Upload the list as CSV or Excel (.xlsx)."
    )


def _cfb_entry_names(path: Path) -> set[str]:
    """Directory entry names of an OLE compound file, following the FAT chain a bounded number of steps."""
    names: set[str] = set()
    with path.open("rb") as fh:
        header = fh.read(512)
        if len(header) < 512:
            return names
        sector_shift = struct.unpack_from("<H", header, 0x1E)[0]
        if sector_shift not in (9, 12):
            return names
        sector = 1 << sector_shift
        first_dir = struct.unpack_from("<I", header, 0x30)[0]
        difat = [s for s in struct.unpack_from("<109I", header, 0x4C) if s < 0xFFFFFFFA]
        fat: list[int] = []
        for fat_sector in difat[:64]:
            fh.seek((fat_sector + 1) * sector)
            raw = fh.read(sector)
            fat.extend(struct.unpack(f"<{len(raw) // 4}I", raw[: len(raw) // 4 * 4]))
        current = first_dir
        for _ in range(1024):
            if current >= 0xFFFFFFFA:
                break
            fh.seek((current + 1) * sector)
            raw = fh.read(sector)
            for offset in range(0, len(raw) - 127, 128):
                length = struct.unpack_from("<H", raw, offset + 64)[0]
                if 2 <= length <= 64:
                    names.add(raw[offset : offset + length - 2].decode("utf-16-le", "replace"))
            current = fat[current] if current < len(fat) else 0xFFFFFFFE
    return names


def _damaged(name: str) -> FileRejected:
    return FileRejected(
        "damaged",
        f"“{name}” looks like an Excel workbook but is damaged or incomplete. Open it in Excel, save it again "
        "and upload the new copy.",
    )


def _encrypted(name: str) -> FileRejected:
    return FileRejected(
        "encrypted",
        f"“{name}” is protected with a password, so it cannot be read. Remove the password in Excel "
        "(File > Info > Protect Workbook) or export the sheet as CSV, then upload again.",
    )


def _bomb(name: str, why: str) -> FileRejected:
    return FileRejected(
        "zip_bomb",
        f"“{name}” cannot be opened safely: {why}. Real spreadsheets do not look like this. "
        "If the file is genuine, save it as CSV and upload that.",
    )


# --------------------------------------------------------------------------------------------------
# XLSX reading in a child process
# --------------------------------------------------------------------------------------------------

_CHILD_CODE = "import sys; from p360.core.intake.files import _xlsx_child; sys.exit(_xlsx_child(sys.argv[1:]))"
_PROJECT_ROOT = Path(__file__).resolve().parents[3]


def read_xlsx_strings(
    path: Path,
    *,
    sheet: int | str = 0,
    info: FileInfo | None = None,
    max_uncompressed: int = DEFAULT_MAX_XLSX_UNCOMPRESSED,
    memory_limit: int = DEFAULT_XLSX_MEMORY,
    timeout: float = DEFAULT_XLSX_TIMEOUT,
) -> pl.DataFrame:
    """Read one sheet: every column String, named by the header row, plus Int64 ``__line`` (spreadsheet row).

    The header is the first non-blank row. Blank rows are dropped (like blank lines in a CSV) but keep their
    numbers out of ``__line``. Numbers are rendered as typed (``42``, ``3.14``, ``4915112345678``, without the
    cell's display format), dates as ``2024-01-31`` (with `` HH:MM:SS`` when there is a time), booleans as
    ``true``/``false``; error cells (``#N/A``) and empty cells are null. Duplicate or empty header names are
    made unique the way polars' CSV reader does (``email``, ``email_duplicated_0``), so both paths agree.

    The container checks of ``check_xlsx`` run first unless ``info`` (from ``inspect_file`` on this file) says
    they already passed. Parsing runs in a child interpreter rather than behind ``except BaseException``:
    a pyo3 panic is catchable, but an abort is not, and calamine aborts on ordinary-looking files (a single
    cell at XFD1048576 makes it allocate the dense 16,384 x 1,048,576 range; see ``hostile.xlsx_far_cell``).
    The child gets ``memory_limit`` bytes of address space on top of its idle size (Linux) and ``timeout``
    seconds; any failure becomes ``FileRejected``. Cost: about 0.5 s of interpreter start-up per sheet.
    """
    if info is None or info.kind != "xlsx":
        check_xlsx(path, max_uncompressed=max_uncompressed)
    with tempfile.TemporaryDirectory(prefix="p360-xlsx-") as tmp:
        out = Path(tmp) / "sheet.arrow"
        result = Path(tmp) / "result.json"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_PROJECT_ROOT), env.get("PYTHONPATH", "")) if p)
        # Under an address-space cap every glibc per-thread arena reserves 64 MiB up front, which made small
        # caps fail at random; two arenas and two polars threads keep the reservation small and predictable.
        env["POLARS_MAX_THREADS"] = "2"
        env["MALLOC_ARENA_MAX"] = "2"
        command = [
            sys.executable,
            "-c",
            _CHILD_CODE,
            str(path),
            json.dumps(sheet),
            str(out),
            str(result),
            str(memory_limit),
        ]
        try:
            proc = subprocess.run(  # noqa: S603 - our own interpreter and module, arguments are paths
                command, env=env, capture_output=True, timeout=timeout, check=False, cwd=tmp
            )
        except subprocess.TimeoutExpired as exc:
            raise FileRejected(
                "too_complex",
                f"“{path.name}” took longer than {timeout:g} seconds to read and was stopped. Save the sheet as CSV "
                "and upload that instead.",
            ) from exc
        outcome: dict[str, str] = {}
        with contextlib.suppress(OSError, ValueError):
            outcome = json.loads(result.read_text("utf-8"))
        if proc.returncode == 0 and out.exists():
            return pl.read_ipc(out)
        logger.warning(
            "xlsx child failed",
            extra={"returncode": proc.returncode, "stderr": proc.stderr[-2000:].decode("utf-8", "replace")},
        )
        if outcome.get("code"):
            raise FileRejected(outcome["code"], outcome.get("message", ""))
        died = f" (stopped by signal {signal.Signals(-proc.returncode).name})" if proc.returncode < 0 else ""
        raise FileRejected(
            "unreadable",
            f"“{path.name}” could not be read{died}: it is damaged or needs more memory than an import may use. "
            "Open it in Excel and save the sheet as CSV, then upload that.",
        )


def _xlsx_child(argv: list[str]) -> int:
    """Runs in the child interpreter: parse, write Arrow IPC, report through a small JSON file."""
    path, sheet_json, out, result, limit = argv
    import fastexcel  # noqa: F401 - loaded before the cap so the cap measures parsing, not imports

    _cap_address_space(int(limit))
    outcome: dict[str, str]
    try:
        frame = _load_sheet(Path(path), json.loads(sheet_json))
        frame.write_ipc(out)
        Path(result).write_text(json.dumps({"ok": "1"}), "utf-8")
        return 0
    except FileRejected as exc:
        outcome = {"code": exc.code, "message": exc.message}
    except MemoryError:
        outcome = {
            "code": "too_complex",
            "message": f"“{Path(path).name}” needs more memory than an import may use. Save it as CSV and upload that.",
        }
    except BaseException as exc:  # noqa: BLE001 - a pyo3 PanicException is a BaseException; report, never re-raise
        outcome = {
            "code": "unreadable",
            "message": f"“{Path(path).name}” could not be read ({type(exc).__name__}). Open it in Excel, save the "
            "sheet as CSV and upload that.",
        }
    Path(result).write_text(json.dumps(outcome), "utf-8")
    return 2


def _cap_address_space(extra: int) -> None:
    if not sys.platform.startswith("linux"):
        return
    import resource

    current = 0
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmSize:"):
                current = int(line.split()[1]) * KiB
    cap = current + extra
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


_MIDNIGHT = r"^(\d{4}-\d{2}-\d{2}) 00:00:00$"


def _load_sheet(path: Path, sheet: int | str) -> pl.DataFrame:
    import fastexcel

    name = path.name
    try:
        reader = fastexcel.read_excel(path)
        sheet_names = reader.sheet_names
    except fastexcel.FastExcelError as exc:
        raise _damaged(name) from exc
    known = 0 <= sheet < len(sheet_names) if isinstance(sheet, int) else sheet in sheet_names
    if not known:
        listed = ", ".join(f"“{s}”" for s in sheet_names)
        raise FileRejected("sheet_not_found", f"“{name}” has no sheet {sheet!r}. Its sheets are: {listed}.")
    # header_row=None + skip_rows=0: row i of the frame is spreadsheet row i + 1 (calamine starts at row 1);
    # every column as String so a stray "n/a" in a numeric column is never silently nulled.
    raw = reader.load_sheet(sheet, header_row=None, skip_rows=0, dtypes="string").to_polars()
    raw = raw.with_columns(pl.int_range(1, raw.height + 1, dtype=pl.Int64).alias(LINE_COLUMN))
    cells = [c for c in raw.columns if c != LINE_COLUMN]
    if not cells:
        raise FileRejected("empty", f"The sheet in “{name}” is empty.")
    filled = pl.any_horizontal([pl.col(c).is_not_null() & (pl.col(c).str.strip_chars() != "") for c in cells])
    raw = raw.filter(filled)
    if raw.height == 0:
        raise FileRejected("empty", f"The sheet in “{name}” is empty.")
    header = ["" if v is None else str(v) for v in raw.row(0)[: len(cells)]]
    data = raw.slice(1)
    keep = [
        (column, title)
        for column, title in zip(cells, header, strict=True)
        if title.strip() or data.get_column(column).drop_nulls().len() > 0
    ]
    # LINE_COLUMN goes first so a header literally called "__line" is the one that gets renamed.
    names = unique_names([LINE_COLUMN] + [title for _, title in keep])[1:]
    # calamine renders a date cell as "2024-01-31 00:00:00"; show it as the date the user typed. The regex only
    # runs on columns that hold such a value at all (it costs about as much as parsing the sheet otherwise).
    midnight = data.select(pl.col(c).str.ends_with(" 00:00:00").any() for c, _ in keep).row(0) if keep else ()
    return data.select(
        *[
            (pl.col(column).str.replace(_MIDNIGHT, "$1") if has_dates else pl.col(column)).alias(new)
            for (column, _), new, has_dates in zip(keep, names, midnight, strict=True)
        ],
        pl.col(LINE_COLUMN),
    )


def unique_names(names: list[str]) -> list[str]:
    """Make names unique like polars' CSV reader: the second ``a`` becomes ``a_duplicated_0``, and so on."""
    seen: set[str] = set()
    counters: dict[str, int] = {}
    result: list[str] = []
    for name in names:
        candidate = name
        while candidate in seen:
            k = counters.get(name, 0)
            counters[name] = k + 1
            candidate = f"{name}_duplicated_{k}"
        seen.add(candidate)
        result.append(candidate)
    return result
