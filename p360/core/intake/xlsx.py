"""XLSX intake: the zip container vetted by its real spans (never the sizes it declares), then one sheet read in a
child interpreter with an address-space cap and a timeout (a calamine abort or a pathological workbook cannot take
the worker down). Part of the one hostile-file reader (p360.core.intake.files.inspect_file calls check_xlsx).
"""

from __future__ import annotations

import codecs
import contextlib
import json
import logging
import os
import signal
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO
from xml.etree import ElementTree

import polars as pl

from p360.core.intake.base import (
    CHUNK_BYTES,
    DEFAULT_MAX_XLSX_UNCOMPRESSED,
    DEFAULT_XLSX_MEMORY,
    DEFAULT_XLSX_TIMEOUT,
    LINE_COLUMN,
    MAX_CENTRAL_DIRECTORY,
    MAX_PART_RATIO,
    MAX_ZIP_ENTRIES,
    RATIO_CHECK_MIN_SIZE,
    FileInfo,
    FileRejected,
    KiB,
    MiB,
    _human,
    unique_names,
)

logger = logging.getLogger(__name__)


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

_CHILD_CODE = "import sys; from p360.core.intake.xlsx import _xlsx_child; sys.exit(_xlsx_child(sys.argv[1:]))"
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
