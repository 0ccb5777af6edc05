"""What the intake modules share: size units, limits, the rejection error, the file description, column names."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

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


def _human(size: int) -> str:
    """Sizes the way Windows Explorer shows them (binary multiples, "MB"/"GB" labels)."""
    if size < KiB:
        return f"{size} bytes"
    for unit, scale in (("GB", GiB), ("MB", MiB), ("KB", KiB)):
        if size >= scale:
            return f"{size / scale:.1f}".removesuffix(".0") + f" {unit}"
    raise AssertionError("unreachable")


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
