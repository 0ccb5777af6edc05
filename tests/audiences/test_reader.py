"""The reader: rows keep their source line numbers; every bad line is quarantined with a reason; the
fast (polars) and careful (csv module) paths agree."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from p360.core.intake.reader import ROW, DelimitedReader, RestartCarefully, read_header


def read(
    path: Path,
    *,
    careful: bool = False,
    chunk_size: int = 1000,
    block_bytes: int | None = None,
    scan_first: bool = False,
) -> tuple[pl.DataFrame, dict[int, str], set[int], bool]:
    """Rows, bad lines, blank lines and whether the fast path read the file. By default the lines are checked
    block by block while reading (the import's way); `scan_first` checks the whole file first."""
    headers = read_header(path, ",")
    reader = DelimitedReader(path, delimiter=",", headers=headers, chunk_size=chunk_size)
    if block_bytes is not None:
        reader.block_bytes = block_bytes
    if scan_first:
        reader.scan_lines()
    if careful:
        reader.scan.fast = False
    try:
        batches = list(reader.batches())
    except RestartCarefully:  # an odd quote past the first block: the reader is careful now, as the import does
        batches = list(reader.batches())
    fast = reader.scan.fast
    rows = pl.concat(batches) if batches else pl.DataFrame(schema={ROW: pl.Int64, **dict.fromkeys(headers, pl.String)})
    bad = dict(zip(reader.scan.quarantine[ROW].to_list(), reader.scan.quarantine["reason"].to_list(), strict=True))
    return rows, bad, reader.scan.blank, fast


def test_clean_file_keeps_line_numbers_across_blank_lines_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(b'a,b,c\r\n1,2,3\r\n\r\n4,"5,5",6\n7,8,9')
    rows, bad, blank, fast = read(path)
    assert fast
    assert rows[ROW].to_list() == [2, 4, 5]
    assert rows["b"].to_list() == ["2", "5,5", "8"]
    assert bad == {} and blank == {3}


def test_ragged_nul_and_long_lines_are_quarantined_by_line(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    long_field = "x" * (2 << 20)
    path.write_bytes(f"a,b,c\n1,2,3\n4,5\n6,7,8,9\nn\x00l,1,2\n{long_field},1,2\n10,11,12\n".encode())
    rows, bad, _, fast = read(path)
    assert fast
    assert rows[ROW].to_list() == [2, 7]
    assert bad == {
        3: "expected 3 fields, found 2",
        4: "expected 3 fields, found 4",
        5: "contains NUL bytes",
        6: "line longer than 1 MiB",
    }


def test_multiline_field_is_read_carefully_with_its_first_line_number(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(b'a,b,c\n1,"two\nlines",3\n4,5,6\n')
    rows, bad, _, fast = read(path)
    assert not fast
    assert rows[ROW].to_list() == [2, 4]
    assert rows["b"].to_list() == ["two\nlines", "5"]
    assert bad == {}


def test_an_unbalanced_quote_costs_one_line_not_the_rest_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    body = ["a,b,c", "1,2,3", '"unclosed,1,2', *[f"{i},{i},{i}" for i in range(300)]]
    path.write_text("\n".join(body) + "\n")
    rows, bad, _, _ = read(path)
    assert list(bad) == [3] and bad[3].startswith("unbalanced quote")
    assert rows.height == 301
    assert rows[ROW].to_list()[:3] == [2, 4, 5]


def test_invalid_text_is_quarantined(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes("a,b\n1,2\n3,\ufffd\n".encode())
    rows, bad, _, _ = read(path)
    assert rows[ROW].to_list() == [2]
    assert bad == {3: "contains bytes that are not valid text in the file's encoding"}


field_text = st.text(
    alphabet=st.characters(blacklist_characters="\n\r\x00\ufffd", blacklist_categories=("Cs",)), max_size=12
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(st.lists(field_text, min_size=1, max_size=5), min_size=0, max_size=30),
    width=st.integers(min_value=1, max_value=4),
    block_bytes=st.sampled_from([1, 7, 64, 1 << 20]),  # the fast path's blocks: one line each up to one block
)
def test_fast_and_careful_paths_agree(tmp_path: Path, rows: list[list[str]], width: int, block_bytes: int) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([f"h{i}" for i in range(width)])
    for row in rows:
        writer.writerow(row)
    path = tmp_path / "p.csv"
    path.write_text(buffer.getvalue(), encoding="utf-8")
    fast_rows, fast_bad, fast_blank, _ = read(path, chunk_size=7, block_bytes=block_bytes)
    careful_rows, careful_bad, careful_blank, _ = read(path, careful=True, chunk_size=7)
    assert fast_rows.to_dicts() == careful_rows.to_dicts()
    assert fast_bad == careful_bad
    assert fast_blank == careful_blank
    # Every data line is accounted for exactly once.
    assert fast_rows.height + len(fast_bad) + len(fast_blank) == len(rows)


def test_a_quote_inside_a_field_is_literal_text(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_text('a,b,c\n1,O"Brien,3\n4,5,6\n')
    rows, bad, _, _ = read(path)
    assert rows["b"].to_list() == ['O"Brien', "5"]
    assert rows[ROW].to_list() == [2, 3] and bad == {}


def test_a_big_quoted_field_spanning_many_lines_is_one_record(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    body = "lorem ipsum, dolor\n" * 120_000  # about 2.3 MB over 120,000 lines
    path.write_text(f'a,b,c\n1,2,3\n4,"{body}",6\n7,8,9\n')
    rows, bad, _, _ = read(path)
    assert rows[ROW].to_list() == [2, 120_004]
    assert bad == {3: "line longer than 1 MiB"}


def test_the_fast_path_parses_blocks_on_demand_not_the_whole_file_ahead(tmp_path: Path) -> None:
    # polars' streaming reader parsed ahead of a slow consumer without a bound (the import's memory peaks);
    # the block reader parses the block being consumed and at most the next one.
    path = tmp_path / "f.csv"
    path.write_text("a,b\n" + "".join(f"{i},x{i}\n" for i in range(1000)))
    reader = DelimitedReader(path, delimiter=",", headers=["a", "b"], chunk_size=10)
    reader.block_bytes = 100  # about 12 lines a block: ~90 blocks
    parsed: list[int] = []
    parse = reader._parse_block

    def counting(data: bytes, first_line: int, lines: int, skip: pl.Series) -> pl.DataFrame:
        parsed.append(first_line)
        return parse(data, first_line, lines, skip)

    reader._parse_block = counting  # type: ignore[method-assign]
    batches = reader.batches()
    first = next(batches)
    assert first[ROW].to_list()[:3] == [2, 3, 4]
    assert 1 <= len(parsed) <= 2
    rest = list(batches)
    rows = pl.concat([first, *rest])
    assert rows[ROW].to_list() == list(range(2, 1002))
    assert rows["b"].to_list() == [f"x{i}" for i in range(1000)]
    assert len(parsed) > 80 and all(batch.height <= 10 for batch in [first, *rest])


def test_a_line_longer_than_a_block_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_text("a,b\n1,short\n2," + "y" * 500 + "\n3,end")
    rows, bad, blank, fast = read(path, block_bytes=16)
    assert fast and not bad and not blank
    assert rows[ROW].to_list() == [2, 3, 4]
    assert rows["b"].to_list() == ["short", "y" * 500, "end"]


def test_quoted_lines_get_their_first_reason_and_the_fields_outside_quotes(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    long_quoted = '"' + "x," * (1 << 20) + '"'
    path.write_bytes(
        (
            'a,b,c\n"1,1",2,3\n"1,1",2\n"1,1",2,3,4\n"n\x00l",2\n"\ufffd",2,3,4\n'
            f'{long_quoted},2\n"q""r,s",2,3\n"",""\n7,8,9\n'
        ).encode()
    )
    rows, bad, _, fast = read(path)
    assert fast
    assert rows[ROW].to_list() == [2, 8, 10]
    assert bad == {
        3: "expected 3 fields, found 2",
        4: "expected 3 fields, found 4",
        5: "contains NUL bytes",  # also one field short: the first reason wins
        6: "contains bytes that are not valid text in the file's encoding",
        7: "line longer than 1 MiB",
        9: "expected 3 fields, found 2",
    }


messy_line = st.one_of(
    st.text(alphabet=st.sampled_from(list('ab,"\x00\ufffd\r é')), max_size=10),
    st.just(""),
    st.just('"x,y",z'),
    st.just('"q""r,s",2'),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    lines=st.lists(messy_line, min_size=0, max_size=25),
    width=st.integers(min_value=1, max_value=3),
    block_bytes=st.sampled_from([1, 9, 40, 1 << 20]),
    crlf=st.booleans(),
    final_newline=st.booleans(),
)
def test_checking_while_reading_agrees_with_the_whole_file_scan(
    tmp_path: Path, lines: list[str], width: int, block_bytes: int, crlf: bool, final_newline: bool
) -> None:
    """Blank, ragged, NUL, invalid-text and odd-quote lines anywhere (an odd quote in a later block restarts on the
    careful path): the same rows, reasons, blank lines and path as the scan of the whole file first."""
    end = "\r\n" if crlf else "\n"
    text = end.join([",".join(f"h{i}" for i in range(width)), *lines]) + (end if final_newline else "")
    path = tmp_path / "m.csv"
    path.write_bytes(text.encode("utf-8"))
    scanned = read(path, chunk_size=4, block_bytes=block_bytes, scan_first=True)
    checked = read(path, chunk_size=4, block_bytes=block_bytes)
    assert checked[0].to_dicts() == scanned[0].to_dicts()
    assert checked[1:] == scanned[1:]


def test_line_counts_while_reading_match_the_scan(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("a,b\n1,2\n\n3\n4,5\n\n")
    whole = DelimitedReader(path, delimiter=",", headers=["a", "b"])
    whole.scan_lines()
    reader = DelimitedReader(path, delimiter=",", headers=["a", "b"])
    reader.block_bytes = 4
    rows = pl.concat(list(reader.batches()))
    assert rows[ROW].to_list() == [2, 5]
    assert reader.scan.lines == whole.scan.lines == 5
    assert reader.scan.blank == whole.scan.blank == {3, 6}
    assert reader.scan.quarantine.to_dicts() == whole.scan.quarantine.to_dicts()
