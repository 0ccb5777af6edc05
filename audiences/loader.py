"""Writing a new version's rows: in the caller's transaction, or over parallel connections.

PostgreSQL parses COPY input on one core per connection, so a big import loads through several
connections at once into a detached table, which one short transaction then attaches as the
version's partition (together with the version row and the audience's pointer). Until that commit
the table is invisible to every reader; if the process dies first, the next attempt drops it.

When the caller already holds a transaction (tests, a script wrapping several imports), other
connections could not see that transaction's work, so rows go through the caller's connection.

The pipeline hands a loader values (frames, a version to copy), never code: the tasks the worker threads
run are built here, from `records`, so the calls go one way: pipeline -> loader -> records.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import polars as pl
import psycopg
from django.conf import settings
from django.db import connection

from audiences import records
from p360.core.db import connection_kwargs

Task = Callable[[Any], None]


class SerialLoader:
    """Rows into an attached partition, through the caller's connection and transaction."""

    parallel = False
    cpu_seconds = 0.0  # the work runs on the caller's thread, inside its phases

    def __init__(self, schema: str, version_id: int) -> None:
        self.schema, self.version_id = schema, version_id

    def __enter__(self) -> SerialLoader:
        records.create_partition(self.version_id)
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def analyzed(self) -> None:
        """Nothing to wait for: an attached partition in the caller's transaction is not analysed here."""

    def _run(self, task: Task) -> None:
        with connection.cursor() as cursor:
            task(cursor)

    def copy_frame(self, frame: pl.DataFrame, first_row: int) -> None:
        if frame.height:
            payload = records.copy_payload_of(self.version_id, frame, first_row=first_row)
            self._run(
                lambda cursor: records.copy_payload(cursor, records.qualified(self.schema, self.version_id), payload)
            )

    def copy_version(self, source_id: int, *, key: str, skip_keys: list[str]) -> None:
        """The rows of version `source_id` (except those whose key is in `skip_keys`) into the new version."""
        self._run(_copy_version_task(self.schema, source_id, self.version_id, key, skip_keys))


class ParallelLoader:
    """Rows into a detached table through `workers` connections; `attach` happens in the caller's commit."""

    parallel = True

    def __init__(self, schema: str, version_id: int, workers: int) -> None:
        self.schema, self.version_id, self.workers = schema, version_id, workers
        self.tasks: queue.Queue[Task | None] = queue.Queue(maxsize=workers * 2)  # bounded: memory stays flat
        self.errors: list[BaseException] = []
        self.threads: list[threading.Thread] = []
        self.cpu_seconds = 0.0  # the workers' own CPU (encoding CSV, sending it): the import reports it apart
        self.lock = threading.Lock()
        self.analyzer: threading.Thread | None = None  # ANALYZE of the loaded table (started on a clean exit)

    def __enter__(self) -> ParallelLoader:
        # The detached table exists already (created and tagged by the pipeline, committed).
        for index in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"import-copy-{index}", daemon=True)
            thread.start()
            self.threads.append(thread)
        return self

    def _work(self) -> None:
        started = time.thread_time()
        try:
            with psycopg.connect(**connection_kwargs()) as conn:
                while (task := self.tasks.get()) is not None:
                    if not self.errors:
                        with conn.cursor() as cursor:
                            task(cursor)
                conn.commit()
        except BaseException as exc:  # noqa: BLE001  (re-raised in the caller, which drops the table)
            self.errors.append(exc)
            while self.tasks.get() is not None:  # drain so the producer never blocks
                pass
        finally:
            with self.lock:
                self.cpu_seconds += time.thread_time() - started

    def _run(self, task: Task) -> None:
        if self.errors:
            raise self.errors[0]
        self.tasks.put(task)

    def copy_frame(self, frame: pl.DataFrame, first_row: int) -> None:
        if frame.height:
            # encoded on the worker thread too (polars releases the GIL): the caller goes on normalising
            self._run(_copy_frame_task(self.schema, self.version_id, frame, first_row))

    def copy_version(self, source_id: int, *, key: str, skip_keys: list[str]) -> None:
        """The rows of version `source_id` (except those whose key is in `skip_keys`) into the new version."""
        self._run(_copy_version_task(self.schema, source_id, self.version_id, key, skip_keys))

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        for _ in self.threads:
            self.tasks.put(None)
        for thread in self.threads:
            thread.join()
        if exc_type is None and self.errors:
            raise self.errors[0]
        if exc_type is None:
            # Every row is committed: the statistics are gathered now, on a connection of their own, while the
            # caller checks the dropped keys and writes the quarantine file (ANALYZE of a 10M-row version was
            # 2.7-3.5 s of wall in the import's serial tail, after ATTACH). Statistics belong to the table, so they
            # stay when it is attached. They are needed at once, not when autovacuum gets round to it: the first
            # exports and match counts join the new partition to the UID2 identities, and without statistics that
            # join is planned as a nested loop (minutes).
            self.analyzer = threading.Thread(target=self._analyze, name="import-analyze", daemon=True)
            self.analyzer.start()

    def _analyze(self) -> None:
        try:
            with psycopg.connect(**connection_kwargs(), autocommit=True) as conn:
                conn.execute(f"ANALYZE {records.qualified(self.schema, self.version_id)}")  # type: ignore[arg-type]
        except BaseException as exc:  # noqa: BLE001  (re-raised by `analyzed`, in the caller)
            self.errors.append(exc)

    def analyzed(self) -> None:
        """Wait for the statistics started when the loader closed (before the table is attached)."""
        if self.analyzer is not None:
            self.analyzer.join()
            self.analyzer = None
        if self.errors:
            raise self.errors[0]


def _copy_version_task(schema: str, source_id: int, target_id: int, key: str, skip_keys: list[str]) -> Task:
    def task(cursor: Any) -> None:
        records.copy_version(cursor, schema, source_id, target_id, key=key, skip_keys=skip_keys)

    return task


def _copy_frame_task(schema: str, version_id: int, frame: pl.DataFrame, first_row: int) -> Task:
    def task(cursor: Any) -> None:
        payload = records.copy_payload_of(version_id, frame, first_row=first_row)
        records.copy_payload(cursor, records.qualified(schema, version_id), payload)

    return task


def loader_for(schema: str, version_id: int) -> SerialLoader | ParallelLoader:
    workers = int(getattr(settings, "P360_IMPORT_COPY_WORKERS", 2))
    if connection.in_atomic_block or workers < 2:
        return SerialLoader(schema, version_id)
    return ParallelLoader(schema, version_id, workers)
