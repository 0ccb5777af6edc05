"""The builder's built frame on disk, one directory per org and data generation (issue 17).

`P360_DATA_DIR/builder-cache/<database>/<schema>/<generation key>/` holds (the database is named too: two databases
sharing one data directory, test workers or a staging copy, have orgs with the same schema names):

- `frame.arrow`: the columns kept on the heap (numbers, masks, and Enum columns as their physical codes), copied
  back into memory on load;
- `categories.arrow`: every Enum column's categories, one after another (polars' own IPC dictionaries took seconds
  per column to read back: 4.6 s for 200k company names at 1M rows; codes + categories take a gather);
- `mapped.arrow`: near-unique strings (emails, hashes), uncompressed Arrow IPC with string views, opened with a
  memory map: polars reads them zero-copy, so they stay in the page cache (shared by every worker, reclaimable)
  instead of each process's heap. Previews seldom read them (a condition on an email, a sample's rows);
- `meta.json`: what the cache needs besides the columns, and the stamp the directory was built for.

A restart or another worker of the same generation loads the directory instead of rebuilding (seconds instead of
minutes). The directory is written under a temporary name and renamed, so a crash leaves no half-written
generation; older generations of the org are removed when a new one is stored (a process that still maps them
keeps its pages: Linux frees a deleted file when its last mapping goes).
"""

from __future__ import annotations

import fcntl
import json
import logging
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc
from django.conf import settings

logger = logging.getLogger(__name__)

FORMAT = 1
RESIDENT_FILE = "frame.arrow"
MAPPED_FILE = "mapped.arrow"
CATEGORIES_FILE = "categories.arrow"
META_FILE = "meta.json"


def enabled() -> bool:
    return bool(getattr(settings, "P360_BUILDER_PERSIST", False))


def root() -> Path:
    return Path(settings.DATA_DIR) / "builder-cache"


def org_root(schema: str) -> Path:
    """The org's folder: under its database too, so two databases' orgs of one schema name never share it."""
    from django.db import connection

    return root() / str(connection.settings_dict["NAME"]) / schema


def directory(schema: str, key: str) -> Path:
    return org_root(schema) / key


@dataclass(frozen=True)
class Stored:
    frame: pl.DataFrame  # every column in the built order; the `mapped` ones are backed by the memory-mapped file
    mapped: frozenset[str]
    meta: dict[str, Any]
    categories: dict[str, pl.Series]  # Enum column -> its categories (index = code)


def map_file(path: Path) -> pl.DataFrame:
    """An uncompressed Arrow IPC file as a polars frame over a memory map (zero-copy: string views, numbers)."""
    source = pa.memory_map(str(path), "r")
    table = ipc.open_file(source).read_all()
    return pl.DataFrame(pl.from_arrow(table, rechunk=False))


def save(
    schema: str,
    key: str,
    frame: pl.DataFrame,
    mapped: list[str],
    categories: dict[str, pl.Series],
    meta: dict[str, Any],
) -> Path | None:
    """Write the generation's directory atomically; None if it could not be written (the cache serves from memory).

    `frame` holds every column (the caller adds its masks as columns); `mapped` names those to memory-map;
    `categories` the Enum columns' categories (from the cache's record: an Enum's dtype is slow to read)."""
    final = directory(schema, key)
    if final.exists():
        return final
    tmp = org_root(schema) / f".tmp-{uuid.uuid4().hex}"
    try:
        tmp.mkdir(parents=True)
        resident = [c for c in frame.columns if c not in mapped]
        codes = [pl.col(c).to_physical() if c in categories else pl.col(c) for c in resident]
        frame.select(codes).write_ipc(tmp / RESIDENT_FILE, compression="uncompressed")
        enums = list(categories)
        values = [categories[c].cast(pl.String) for c in enums]
        pl.DataFrame({"value": pl.concat(values) if values else pl.Series([], dtype=pl.String)}).write_ipc(
            tmp / CATEGORIES_FILE, compression="uncompressed"
        )
        # Uncompressed, so that the file can be mapped as it is (a compressed buffer must be decoded to the heap).
        frame.select(mapped).write_ipc(tmp / MAPPED_FILE, compression="uncompressed")
        sizes = {c: categories[c].len() for c in enums}
        body = {**meta, "format": FORMAT, "columns": frame.columns, "mapped": mapped, "enums": sizes}
        (tmp / META_FILE).write_text(json.dumps(body, default=str))
        try:
            tmp.rename(final)
        except OSError:  # another worker stored the same generation first: theirs is as good
            shutil.rmtree(tmp, ignore_errors=True)
        _prune(schema, keep=key)
        return final
    except OSError:
        logger.exception("builder cache: could not store %s's frame under %s", schema, final)
        shutil.rmtree(tmp, ignore_errors=True)
        return None


def _prune(schema: str, keep: str) -> None:
    """Remove the org's other generations and their lock files."""
    for path in org_root(schema).iterdir():
        if path.name != keep and path.is_dir() and not path.name.startswith(".tmp-"):
            shutil.rmtree(path, ignore_errors=True)
        elif path.name.startswith(".lock-") and path.name != f".lock-{keep}":
            path.unlink(missing_ok=True)


@contextmanager
def build_lock(schema: str, key: str) -> Iterator[None]:
    """Across processes: one worker builds a generation, the others wait for it and then load what it stored."""
    if not enabled():
        yield
        return
    folder = org_root(schema)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f".lock-{key}", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def load(schema: str, key: str, stamp: str) -> Stored | None:
    """The stored generation, or None if there is none (or it is of another format or stamp, or unreadable)."""
    path = directory(schema, key)
    if not (path / META_FILE).exists():
        return None
    try:
        meta = json.loads((path / META_FILE).read_text())
        if meta.get("format") != FORMAT or meta.get("stamp") != stamp:
            return None
        resident = map_file(path / RESIDENT_FILE).rechunk()  # copied to the heap: previews scan these columns
        mapped = map_file(path / MAPPED_FILE) if meta["mapped"] else pl.DataFrame()
        values = map_file(path / CATEGORIES_FILE).get_column("value").rechunk()
        categories: dict[str, pl.Series] = {}
        offset = 0
        for name, size in meta["enums"].items():
            categories[name] = values.slice(offset, size).alias(name)
            offset += size
        # codes -> Enum: the categories cast to their own Enum (code i = category i), gathered by the codes
        enums = [cats.cast(pl.Enum(cats)).gather(resident.get_column(name)) for name, cats in categories.items()]
    except (OSError, ValueError, KeyError, pl.exceptions.PolarsError, pa.ArrowException):
        logger.warning("builder cache: stored frame %s is unreadable; building again", path, exc_info=True)
        return None
    frame = pl.concat([resident.with_columns(enums), mapped], how="horizontal").select(meta["columns"])
    return Stored(frame=frame, mapped=frozenset(meta["mapped"]), meta=meta, categories=categories)


def remap(path: Path, frame: pl.DataFrame, mapped: list[str]) -> pl.DataFrame:
    """The frame with its `mapped` columns replaced by the stored file's (the heap copies can then be freed)."""
    if not mapped:
        return frame
    columns = map_file(path / MAPPED_FILE)
    return frame.with_columns(columns.get_columns()).select(frame.columns)
