# INTERIM STUB (lead) — replaced by helper branch issue-4-files
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import polars as pl


class FileRejected(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class FileInfo:
    kind: str
    encoding: str
    delimiter: str | None
    size: int
    sha256: str
    sample_lines: list[str]


def inspect_file(path: Path, *, filename: str, max_bytes: int, max_xlsx_uncompressed: int = 1 << 29) -> FileInfo:
    size = path.stat().st_size
    if size == 0:
        raise FileRejected("empty", "the file is empty")
    if size > max_bytes:
        raise FileRejected("too_large", "too large")
    head = path.open("rb").read(65536)
    if head.startswith(b"\x7fELF") or head.startswith(b"MZ"):
        raise FileRejected("executable", "this is a program, not a CSV or XLSX file")
    d = hashlib.sha256()
    with path.open("rb") as f:
        while c := f.read(1 << 20):
            d.update(c)
    first = head.split(b"\n")[0].decode("utf-8", "replace")
    delim = max([",", ";", "\t", "|"], key=first.count)
    return FileInfo("csv", "utf-8", delim, size, d.hexdigest(), [])


def to_utf8(path: Path, info: FileInfo, dest_dir: Path) -> Path:
    return path


def read_xlsx_strings(path: Path, *, sheet: int | str = 0) -> pl.DataFrame:
    raise FileRejected("xlsx", "no xlsx yet")
