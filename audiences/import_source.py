"""Import step 1, the source: where the file is, whether it is safe, its header and first rows, its rows in batches.

The lowest module of the import: it knows files (p360.core.intake) and nothing of records, versions or
dedupe. `pipeline.py` orchestrates the steps: source -> stage (normalise) -> dedupe -> write -> report.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
from django.conf import settings
from django.core.files.storage import default_storage

from audiences.fields import infer_custom_types, propose_mapping, unique_headers
from audiences.models import AudienceImport
from p360.core.intake.files import FileRejected, inspect_file, read_xlsx_strings, to_utf8
from p360.core.intake.reader import ROW, DelimitedReader, read_header
from p360.core.uploads.services import get_completed_upload
from p360.core.uploads.storage import local_copy

PREVIEW_ROWS = 20
XLSX_CHUNK = 100_000


class ImportFailed(Exception):
    """The import cannot proceed; the message is for the person who started it."""


class ImportRejected(ImportFailed):
    """The file itself is refused (unsafe, unreadable, not a table): nothing will make it load."""


# --- where files are ---------------------------------------------------------------------------------
# org_storage_name: the org's prefix in the storage, shared with reporting (p360/core/tenancy.py)


def work_dir() -> Path:
    base = Path(settings.DATA_DIR) / "tmp"
    base.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="import-", dir=base))


@contextmanager
def source_file(imp: AudienceImport) -> Iterator[Path]:
    """A local path for the import's file, whatever backend holds it."""
    if imp.upload_id:
        with local_copy(get_completed_upload(imp.upload_id)) as path:
            yield Path(path)
        return
    if imp.storage_name.startswith("file:"):
        path = Path(imp.storage_name.removeprefix("file:"))
        if not path.exists():
            raise ImportFailed(f"the source file {path} no longer exists")
        yield path
        return
    if not imp.storage_name:
        raise ImportFailed("the import has no file")
    tmp = work_dir()
    try:
        local = tmp / "source"
        with default_storage.open(imp.storage_name, "rb") as src, local.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        yield local
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def content_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# --- inspection (also used by the mapping page) -------------------------------------------------------
@dataclass
class Inspection:
    kind: str
    encoding: str
    delimiter: str
    size: int
    sha256: str
    headers: list[str]
    preview: pl.DataFrame
    proposed: dict[str, str | None]
    custom_types: dict[str, str]


def inspect(imp: AudienceImport) -> Inspection:
    """Check the file and read its header and first rows, without loading anything."""
    tmp = work_dir()
    try:
        with source_file(imp) as path:
            try:
                info = inspect_file(path, filename=imp.source_name, max_bytes=settings.P360_IMPORT_MAX_BYTES)
            except FileRejected as exc:
                raise ImportFailed(exc.message) from exc
            headers, preview = _preview(path, info, tmp)
        proposed = propose_mapping(headers)
        custom_columns = [h for h in headers if proposed.get(h) is None]
        custom_types = infer_custom_types(preview, custom_columns) if custom_columns else {}
        return Inspection(
            kind=info.kind,
            encoding=info.encoding,
            delimiter=info.delimiter or "",
            size=info.size,
            sha256=info.sha256,
            headers=headers,
            preview=preview,
            proposed=proposed,
            custom_types=custom_types,
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _preview(path: Path, info: Any, tmp: Path) -> tuple[list[str], pl.DataFrame]:
    if info.kind == "xlsx":
        frame = safe_xlsx(path)
        headers = unique_headers([c for c in frame.columns if c != "__line"])
        return headers, frame.head(PREVIEW_ROWS).drop("__line").rename(
            dict(zip(frame.columns[:-1], headers, strict=False))
        )
    text = to_utf8(path, info, tmp)
    headers = unique_headers(read_header(text, info.delimiter or ","))
    reader = DelimitedReader(text, delimiter=info.delimiter or ",", headers=headers, chunk_size=PREVIEW_ROWS)
    reader.scan.fast = False  # the careful reader stops early; no full scan for a preview
    first = next(iter(reader.batches()), None)
    preview = (
        first.drop(ROW).head(PREVIEW_ROWS)
        if first is not None
        else pl.DataFrame(schema=dict.fromkeys(headers, pl.String))
    )
    return headers, preview


def safe_xlsx(path: Path) -> pl.DataFrame:
    try:
        return read_xlsx_strings(path)
    except FileRejected as exc:
        raise ImportRejected(exc.message) from exc


# --- the rows, in batches (read by the stage step) ----------------------------------------------------
def open_batches(path: Path, info: Any, tmp: Path) -> tuple[Iterator[pl.DataFrame], DelimitedReader | None, int]:
    """The file's rows in batches (with their line numbers), the delimited reader if any, and the line count."""
    if info.kind == "xlsx":
        frame = safe_xlsx(path)
        raw = [c for c in frame.columns if c != "__line"]
        headers = unique_headers(raw)
        frame = frame.rename({**dict(zip(raw, headers, strict=True)), "__line": ROW}).with_columns(
            pl.col(ROW).cast(pl.Int64)
        )
        frame = frame.select(ROW, *headers)
        return (frame.slice(i, XLSX_CHUNK) for i in range(0, frame.height, XLSX_CHUNK)), None, frame.height
    text = to_utf8(path, info, tmp)
    headers = unique_headers(read_header(text, info.delimiter or ","))
    reader = DelimitedReader(text, delimiter=info.delimiter or ",", headers=headers)
    return reader.batches(), reader, estimated_lines(text)


def estimated_lines(path: Path) -> int:
    """The file's lines for the progress bar, from its size and the lines in its first MiB (exact for a file that
    small); the lines are counted as they are read, and counting them all first cost a pass over the file."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(1 << 20)
    lines = head.count(b"\n") + (bool(head) and not head.endswith(b"\n"))
    if len(head) >= size or not head:
        return max(lines - 1, 0)  # less the header
    return max(round(lines * size / len(head)) - 1, 1)
