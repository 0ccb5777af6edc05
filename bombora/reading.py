"""Reading a Bombora file: the decompressed stream, blocks of whole lines, the first checks on its content, and a
thread that parses the next block while the current one is COPYed."""

from __future__ import annotations

import gzip
import importlib
import queue
import threading
import zlib
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import IO, Any

from p360.core.intake import files
from p360.core.intake.tables import FileRejected


def _gzip_module() -> tuple[Any, tuple[type[BaseException], ...]]:
    """(the gzip module to inflate with, the errors of a corrupt stream). ISA-L's igzip (the `isal` package)
    inflates about twice as fast as zlib (a 20M-row week: ~4 CPU-s less); the standard library's when it is absent."""
    try:
        igzip = importlib.import_module("isal.igzip")
        isal_zlib = importlib.import_module("isal.isal_zlib")
    except ImportError:
        return gzip, (EOFError, OSError, zlib.error)
    return igzip, (EOFError, OSError, zlib.error, isal_zlib.error)


GZIP, GZIP_ERRORS = _gzip_module()


def open_binary(path: Path) -> tuple[IO[bytes], IO[bytes]]:
    """(decompressed stream, raw file for progress); gzip is recognised by its magic bytes."""
    raw = path.open("rb")
    magic = raw.read(2)
    raw.seek(0)
    if magic == b"\x1f\x8b":
        return GZIP.GzipFile(fileobj=raw, mode="rb"), raw  # type: ignore[no-any-return]
    return raw, raw  # type: ignore[return-value]


def read_blocks(stream: IO[bytes], block_bytes: int) -> Iterator[bytes]:
    """Blocks of whole lines (the last may lack a final newline). A truncated/corrupt gzip raises FileRejected.

    A block is what one read returns plus the rest of its last line (one copy at most; cutting the block at its
    last newline and carrying the rest into the next would copy every block twice)."""
    while True:
        try:
            data = stream.read(block_bytes)
            if data and not data.endswith(b"\n"):
                tail = stream.readline()
                if tail:
                    data += tail
        except GZIP_ERRORS as exc:
            raise FileRejected(f"the gzip file is truncated or corrupt ({exc}); nothing was loaded") from exc
        if not data:
            return
        yield data


def refuse_non_table(data: bytes, name: str) -> None:
    """The core intake's content rule on the (decompressed) start of the file: no program, PDF, image, archive."""
    try:
        files.reject_non_table(data, name)
    except files.FileRejected as exc:
        raise FileRejected(exc.message) from None


def first_content_line(data: bytes) -> tuple[int, str] | None:
    """(index, text) of the first non-blank line of a block."""
    for index, line in enumerate(data.split(b"\n")):
        text = line.decode("utf-8", errors="replace").strip()
        if text.lstrip("\ufeff"):
            return index, text
    return None


def prefetch[T](items: Iterator[T], depth: int = 2) -> Generator[T]:
    """Run `items` in a thread, `depth` ahead: the next block is parsed (polars, no GIL) while this one is COPYed
    (PostgreSQL on the other core). Errors are re-raised here; stopping early stops the thread."""
    box: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                box.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put(("item", item)):
                    return
            put(("done", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            put(("error", exc))

    thread = threading.Thread(target=work, name="bombora-parse", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = box.get()
            if kind == "done":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        thread.join(timeout=30)
