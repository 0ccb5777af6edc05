"""The streamed `first` rule deduplicates and hands batches to the parallel loader on a helper thread, in file order:
the same frames, row ordinals and duplicates as the caller's thread gives; an error on the helper surfaces in the
caller and nothing is handed on after it. The parallel loader's table has its statistics once attached."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from django.db import connection
from django_tenants.utils import schema_context
from hypothesis import given, settings
from hypothesis import strategies as st

from audiences import records
from audiences.import_dedupe import SeenKeys
from audiences.import_stage import KEY, Staged
from audiences.import_write import stream_first
from audiences.models import Audience
from tests.audiences.committed import drop_committed_import


class RecordingLoader:
    """Records what it is given and on which thread (no database)."""

    schema = "unused"

    def __init__(self, *, parallel: bool) -> None:
        self.parallel = parallel
        self.copies: list[tuple[list[dict[str, Any]], int]] = []
        self.threads: set[str] = set()

    def copy_frame(self, frame: pl.DataFrame, first_row: int) -> None:
        self.threads.add(threading.current_thread().name)
        self.copies.append((frame.to_dicts(), first_row))


def _batches(keys: list[list[str | None]]) -> list[pl.DataFrame]:
    line = 2
    out = []
    for batch in keys:
        lines = list(range(line, line + len(batch)))
        line += len(batch)
        out.append(
            pl.DataFrame(
                {"line": lines, "email_normalized": batch, KEY: batch},
                schema_overrides={KEY: pl.String, "email_normalized": pl.String},
            )
        )
    return out


def _stream(keys: list[list[str | None]], *, parallel: bool, tmp: Path) -> tuple[RecordingLoader, int, int]:
    loader = RecordingLoader(parallel=parallel)
    seen = SeenKeys(pl.DataFrame(schema={KEY: pl.String}), tmp / f"keys-{parallel}")
    written, duplicates = stream_first(loader, iter(_batches(keys)), seen, Staged(), None, "email_normalized")  # type: ignore[arg-type]
    return loader, written.loaded, duplicates


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.one_of(st.none(), st.sampled_from(["a", "b", "c", "d", "e"])), max_size=8), max_size=8))
def test_the_helper_thread_hands_on_what_the_callers_thread_does(keys: list[list[str | None]]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        inline, inline_loaded, inline_dupes = _stream(keys, parallel=False, tmp=Path(tmp))
        threaded, loaded, dupes = _stream(keys, parallel=True, tmp=Path(tmp))
    assert threaded.copies == inline.copies
    assert (loaded, dupes) == (inline_loaded, inline_dupes)
    assert loaded + dupes == sum(len(batch) for batch in keys)
    if threaded.copies:
        assert all(name.startswith("import-dedupe") for name in threaded.threads)
        assert inline.threads == {threading.current_thread().name}


def test_an_error_on_the_helper_surfaces_and_stops_the_stream(tmp_path: Path) -> None:
    class Failing(RecordingLoader):
        def copy_frame(self, frame: pl.DataFrame, first_row: int) -> None:
            super().copy_frame(frame, first_row)
            if len(self.copies) == 2:
                raise RuntimeError("the COPY connection went away")

    loader = Failing(parallel=True)
    seen = SeenKeys(pl.DataFrame(schema={KEY: pl.String}), tmp_path / "keys")
    consumed: list[int] = []

    def batches() -> Any:
        for index, batch in enumerate(_batches([[f"k{i}{j}" for j in range(3)] for i in range(6)])):
            consumed.append(index)
            yield batch

    with pytest.raises(RuntimeError, match="went away"):
        stream_first(loader, batches(), seen, Staged(), None, "email_normalized")  # type: ignore[arg-type]
    assert len(loader.copies) == 2  # nothing handed on after the failure
    assert len(consumed) <= 4  # the caller stopped reading within a batch or two of it


@pytest.fixture(scope="module")
def parallel_import(django_db_setup: Any, django_db_blocker: Any, tmp_path_factory: Any) -> Iterator[dict[str, Any]]:
    """One import in autocommit (as the task cluster runs it): the parallel loader, its table attached."""
    from django.core.management import call_command

    path = tmp_path_factory.mktemp("stats") / "stats.csv"
    path.write_text("Email,First Name\n" + "".join(f"u{i}@x.com,N{i % 7}\n" for i in range(300)))
    name = "Analysed before attach"
    with django_db_blocker.unblock():
        try:
            call_command("import_audience", "--org", "acme", str(path), "--name", name, stdout=io.StringIO())
            with schema_context("org_acme"):
                version_id = Audience.objects.get(name=name).current_version_id
                table = f'"org_acme".{records.partition_name(version_id)}'
                with connection.cursor() as cursor:
                    cursor.execute("SELECT count(*) FROM pg_statistic WHERE starelid = %s::regclass", [table])
                    statistics = cursor.fetchone()[0]
                    cursor.execute("SELECT relispartition FROM pg_class WHERE oid = %s::regclass", [table])
                    attached = cursor.fetchone()[0]
                yield {"statistics": statistics, "attached": attached, "rows": records.count_version(version_id)}
        finally:
            drop_committed_import(name)


@pytest.mark.django_db
def test_a_parallel_load_is_attached_with_its_statistics(parallel_import: dict[str, Any]) -> None:
    assert parallel_import["attached"] is True
    assert parallel_import["statistics"] > 0  # analysed before the attach, on the loader's own connection
    assert parallel_import["rows"] == 300
