"""p360.core.intake.files: content-based vetting, encodings, delimiters, streaming transcode, XLSX safety and reading.

Pure functions on real files written by tests/audiences/hostile.py; no database. The bomb tests prove that
nothing is decompressed (the decompressor is booby-trapped) and that memory stays flat (tracemalloc).
"""

from __future__ import annotations

import codecs
import datetime as dt
import http.server
import os
import re
import threading
import tracemalloc
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from p360.core.intake import files, xlsx
from p360.core.intake.files import (
    FileInfo,
    FileRejected,
    detect_delimiter,
    detect_encoding,
    inspect_file,
    read_xlsx_strings,
    to_utf8,
    unique_names,
)
from tests.audiences import hostile

GiB = 1024**3
MiB = 1024**2


def inspect(path: Path, **kwargs: int) -> FileInfo:
    return inspect_file(path, filename=path.name, max_bytes=kwargs.pop("max_bytes", GiB), **kwargs)


def rejected(path: Path, **kwargs: int) -> FileRejected:
    with pytest.raises(FileRejected) as caught:
        inspect(path, **kwargs)
    return caught.value


# ---------------------------------------------------------------------------------------------------
# The whole catalogue: every hostile file gets the outcome its generator documents
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(hostile.CATALOGUE))
def test_catalogue_outcome(name: str, tmp_path: Path) -> None:
    entry = hostile.CATALOGUE[name]
    path = entry.make(tmp_path)
    if entry.rejected:
        error = rejected(path)
        assert error.code == entry.rejected
        # A message a marketer can act on: names the file, no internals.
        assert path.name in error.message
        assert "Traceback" not in error.message and "Error" not in error.message
    else:
        info = inspect(path)
        assert info.kind == ("xlsx" if path.suffix == ".xlsx" else "csv")
        assert info.size == path.stat().st_size
        assert re.fullmatch(r"[0-9a-f]{64}", info.sha256)


EXPECTED_TEXT = {
    "ragged_rows": ("utf-8", ","),
    "unbalanced_quotes": ("utf-8", ","),
    "nul_bytes": ("utf-8", ","),
    "invalid_utf8": ("utf-8", ","),
    "utf8_bom": ("utf-8-sig", ","),
    "mixed_line_endings": ("utf-8", ","),
    "huge_field": ("utf-8", ","),
    "formula_values": ("utf-8", ","),
    "header_only": ("utf-8", ","),
    "duplicate_headers": ("utf-8", ","),
    "semicolon": ("utf-8", ";"),
    "cp1252": ("cp1252", ","),
    "utf16le_bom": ("utf-16-le", "\t"),
    "utf16be": ("utf-16-be", ","),
}


@pytest.mark.parametrize("name", sorted(EXPECTED_TEXT))
def test_text_files_encoding_delimiter_and_sample(name: str, tmp_path: Path) -> None:
    path = hostile.CATALOGUE[name].make(tmp_path)
    info = inspect(path)
    assert (info.encoding, info.delimiter) == EXPECTED_TEXT[name]
    assert info.sample_lines[0].startswith("email")  # BOM stripped, decoded
    assert not any("\r" in line or "\n" in line for line in info.sample_lines)


def test_sha256_is_of_the_raw_bytes(tmp_path: Path) -> None:
    import hashlib

    path = hostile.cp1252_csv(tmp_path)
    assert inspect(path).sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------------------
# Rejections by content
# ---------------------------------------------------------------------------------------------------


def test_size_limit_is_checked_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = hostile.over_limit_csv(tmp_path, limit=GiB)
    opened: list[Path] = []
    real_open = Path.open
    monkeypatch.setattr(Path, "open", lambda self, *a, **k: opened.append(self) or real_open(self, *a, **k))
    error = rejected(path, max_bytes=GiB)
    assert error.code == "too_large"
    assert "1 GB limit" in error.message
    assert opened == []  # decided from the size alone


def test_blank_only_file_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "blank.csv"
    path.write_bytes(b"\xef\xbb\xbf\r\n \n\n")
    assert rejected(path).code == "empty"


def test_header_only_is_accepted(tmp_path: Path) -> None:
    info = inspect(hostile.header_only_csv(tmp_path))
    assert info.sample_lines == [hostile.HEADER]


@pytest.mark.parametrize(
    ("content", "code"),
    [
        (b"#!/bin/sh\nrm -rf /\n", "executable"),
        (b"\xcf\xfa\xed\xfe" + bytes(64), "executable"),
        (b"<html><body>Not found</body></html>", "html"),
        (b"\n\n  <!doctype HTML>\n<title>x</title>", "html"),
        (b'<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"></html>', "html"),
        (b'<?xml version="1.0"?><Workbook xmlns="urn:schemas-microsoft-com:office:spreadsheet"/>', "xml"),
        (b"<contacts><contact email='a@b.c'/></contacts>", "xml"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image"),
        (b"GIF89a" + bytes(20), "image"),
        (b"BZh91AY&SY" + bytes(20), "archive"),
        (b"7z\xbc\xaf\x27\x1c" + bytes(20), "archive"),
        (b'[{"email": "a@b.c"}]', "not_tabular"),
        (b'{"email": "a@b.c"}\n{"email": "d@e.f"}\n', "not_tabular"),
        (b"{\\rtf1\\ansi hello}", "not_tabular"),
        (b"PK\x05\x06" + bytes(18), "zip_not_xlsx"),
    ],
)
def test_rejected_by_content_whatever_the_name(content: bytes, code: str, tmp_path: Path) -> None:
    path = tmp_path / "audience.csv"
    path.write_bytes(content)
    assert rejected(path).code == code


def test_mz_prefix_alone_is_not_an_executable(tmp_path: Path) -> None:
    """A CSV whose first header happens to start with "MZ" is text, not a Windows program."""
    path = tmp_path / "codes.csv"
    path.write_bytes(b"MZ_code,email\n" + b"1,a@example.com\n" * 10)
    assert inspect(path).delimiter == ","


def test_csv_with_angle_brackets_in_values_is_not_markup(tmp_path: Path) -> None:
    path = tmp_path / "names.csv"
    path.write_bytes(b"email,name\n<ana@example.com>,Ana <Silva>\n")
    assert inspect(path).kind == "csv"


@pytest.mark.parametrize("unit", [b"x", "é".encode()])
def test_first_line_longer_than_a_megabyte_is_not_a_table(unit: bytes, tmp_path: Path) -> None:
    path = tmp_path / "one_line.csv"
    path.write_bytes(unit * (files.SAMPLE_BYTES + 10))
    assert rejected(path).code == "not_tabular"


def test_pdf_marker_inside_a_csv_value_is_text(tmp_path: Path) -> None:
    path = tmp_path / "notes.csv"
    path.write_bytes(b"email,note\na@example.com,see %PDF-1.4 attachment\n")
    assert inspect(path).kind == "csv"


def test_cfb_without_known_streams_is_binary(tmp_path: Path) -> None:
    path = tmp_path / "thing.xlsx"
    path.write_bytes(hostile._cfb(["Something"]))
    assert rejected(path).code == "binary"


# ---------------------------------------------------------------------------------------------------
# Encoding detection
# ---------------------------------------------------------------------------------------------------


def test_mostly_utf8_with_a_few_bad_bytes_is_utf8() -> None:
    good = "José,Zoë,Müller,François\n".encode() * 5
    assert detect_encoding(good + b"bad \xff\xfe row\n" + b"trunc \xc3") == "utf-8"


def test_windows_1252_when_non_ascii_is_invalid_utf8() -> None:
    assert detect_encoding("José,Zoë,€ 5,“quoted”\n".encode("cp1252") * 3) == "cp1252"


def test_pure_ascii_is_utf8() -> None:
    assert detect_encoding(b"email,name\na@b.c,Ana\n") == "utf-8"


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_without_bom_by_nul_pattern(codec: str) -> None:
    assert detect_encoding("email;name\nana@example.com;Ана\n".encode(codec)) == codec


def test_binary_with_nuls_everywhere_is_not_utf16() -> None:
    assert detect_encoding(bytes(range(256)) * 4) in ("utf-8", "cp1252")


def test_probes_find_windows_1252_after_an_ascii_megabyte(tmp_path: Path) -> None:
    path = tmp_path / "late_accents.csv"
    ascii_rows = b"a@example.com,Ana\n" * (files.SAMPLE_BYTES // 18 + 100)
    late_rows = "zoe@example.com,Zoë Müller\n".encode("cp1252") * 2000
    path.write_bytes(b"email,name\n" + ascii_rows + late_rows)
    assert inspect(path).encoding == "cp1252"


# ---------------------------------------------------------------------------------------------------
# Delimiter detection
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("email\na@b.c\nd@e.f\n", ","),  # one column
        ("email", ","),
        ("a,b,c\n1,2,3\n", ","),
        ("a;b;c\n1,5;2,5;3\n", ";"),  # decimal commas
        ('a;b\n"x, y, z";2\n"p, q";3\n', ";"),  # commas inside quotes do not vote
        ('a,b\n"x;y;z",1\n"1;2;3;4",2\n', ","),
        ("a\tb\tc\nx, y\tz\tw\n", "\t"),
        ("name|address\nAna|1 Main St, Springfield\nBob|2 Elm, X\n", "|"),
        ("a,b,c\n1,2\n3,4,5,6\n7,8,9\n", ","),  # ragged still comma
        ('a,b\n"multi\nline, with comma",2\n3,4\n', ","),
        ("Export of 2024-01-01\nemail;name;city\na;b;c\nd;e;f\n", ";"),  # title line above the table
        ("email;name\n", ";"),  # header only
        ('a,b\n"never closed, x, y\n', ","),
    ],
)
def test_delimiter(text: str, expected: str) -> None:
    assert detect_delimiter(text) == expected


def test_delimiter_ignores_a_record_cut_by_the_sample() -> None:
    text = "a;b;c\n1;2;3\n4;5;6\n7,8,9,10,11,12,13,14"
    assert detect_delimiter(text, complete=False) == ";"


def test_delimiter_is_fast_on_a_huge_quoted_field() -> None:
    text = 'a,b\n1,"' + "x;" * 2_000_000 + '"\n'
    assert detect_delimiter(text) == ","


# ---------------------------------------------------------------------------------------------------
# to_utf8
# ---------------------------------------------------------------------------------------------------


def reference(raw: bytes, encoding: str) -> str:
    """Whole-file decode: exactly one BOM dropped, invalid bytes as U+FFFD, lone CR as LF, CRLF kept."""
    text = raw.decode(files._CODECS[encoding], errors="replace")
    if encoding != "utf-8-sig":  # that codec drops its BOM itself
        text = text.removeprefix("\ufeff")
    return re.sub("\r(?!\n)", "\n", text)


@pytest.mark.parametrize("name", sorted(EXPECTED_TEXT))
def test_to_utf8_matches_a_reference_decode(name: str, tmp_path: Path) -> None:
    path = hostile.CATALOGUE[name].make(tmp_path / "in")
    info = inspect(path)
    out = to_utf8(path, info, tmp_path / "out")
    data = out.read_bytes()
    data.decode("utf-8")  # strict: always valid
    assert not data.startswith(codecs.BOM_UTF8)
    if out == path:
        assert info.encoding == "utf-8"
        assert data.count(b"\r") == data.count(b"\r\n")
    else:
        assert not re.search(b"\r(?!\n)", data)
        assert data.decode() == reference(path.read_bytes(), info.encoding)


def test_clean_utf8_is_not_copied(tmp_path: Path) -> None:
    path = hostile.ragged_rows_csv(tmp_path)
    assert to_utf8(path, inspect(path), tmp_path / "out") == path
    crlf = tmp_path / "crlf.csv"
    crlf.write_bytes(b"email,name\r\na@b.c,Ana\r\n")
    assert to_utf8(crlf, inspect(crlf), tmp_path / "out") == crlf
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_invalid_utf8_rows_carry_replacement_characters(tmp_path: Path) -> None:
    path = hostile.invalid_utf8_csv(tmp_path)
    lines = to_utf8(path, inspect(path), tmp_path / "out").read_bytes().decode().split("\n")
    marked = [number for number, line in enumerate(lines, start=1) if "\ufffd" in line]
    assert marked == list(hostile.CATALOGUE["invalid_utf8"].bad_lines)
    assert "José" in lines[1]


def test_lone_cr_becomes_lf_and_lines_keep_their_numbers(tmp_path: Path) -> None:
    path = hostile.mixed_line_endings_csv(tmp_path)
    out = to_utf8(path, inspect(path), tmp_path / "out")
    assert out != path
    assert re.split(b"\r?\n", out.read_bytes()) == [r.encode() for r in [hostile.HEADER, *hostile.GOOD_ROWS[:4]]]


def test_utf16_and_cp1252_round_trip_the_names(tmp_path: Path) -> None:
    for make in (hostile.utf16le_bom_csv, hostile.utf16be_csv, hostile.cp1252_csv):
        path = make(tmp_path / make.__name__)
        text = to_utf8(path, inspect(path), tmp_path / "out").read_bytes().decode()
        assert "Zoë" in text and "Müller" in text and "Dahl-Œstergaard" in text
    assert "“Euro”" in text and "Fan€" in text


def test_to_utf8_is_idempotent_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = hostile.cp1252_csv(tmp_path)
    info = inspect(path)
    first = to_utf8(path, info, tmp_path / "out")
    second = to_utf8(path, info, tmp_path / "out")
    assert first == second
    assert [p.name for p in (tmp_path / "out").iterdir()] == [first.name]


def test_to_utf8_refuses_xlsx(tmp_path: Path) -> None:
    path = hostile.valid_xlsx(tmp_path)
    with pytest.raises(ValueError, match="text"):
        to_utf8(path, inspect(path), tmp_path / "out")


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7])
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16-le", "utf-16-be", "cp1252"])
def test_chunk_boundaries_split_characters_and_crlf(
    chunk: int, encoding: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(files, "CHUNK_BYTES", chunk)
    text = "e,n\r\nJosé,Zoë\rMüller,€\r\n\r\nx,y\r"
    raw = ("\ufeff" if encoding == "utf-8-sig" else "").encode() + text.encode(
        files._CODECS[encoding].replace("-sig", "")
    )
    path = tmp_path / "in.csv"
    path.write_bytes(raw)
    info = FileInfo(kind="csv", encoding=encoding, delimiter=",", size=len(raw), sha256="0" * 64)  # type: ignore[arg-type]
    assert to_utf8(path, info, tmp_path / "out").read_bytes().decode() == reference(raw, encoding)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=st.text(alphabet=st.sampled_from([*'ab,;"é€Z\r\n\x00ü\ufeff', "\U0001f600"])),
    junk=st.binary(max_size=8),
    chunk=st.integers(min_value=1, max_value=9),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16-le", "utf-16-be", "cp1252"]),
)
def test_to_utf8_property(
    text: str, junk: bytes, chunk: int, encoding: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    directory = tmp_path_factory.mktemp("prop")
    if encoding == "cp1252":
        text = text.replace("\U0001f600", "x").replace("\ufeff", "y")  # not representable
    bom = codecs.BOM_UTF8 if encoding == "utf-8-sig" else b""
    raw = bom + text.encode(encoding.removesuffix("-sig")) + junk  # junk: invalid sequences, odd UTF-16 tails
    path = directory / "in.csv"
    path.write_bytes(raw)
    info = FileInfo(kind="csv", encoding=encoding, delimiter=",", size=len(raw), sha256="1" * 64)  # type: ignore[arg-type]
    original = files.CHUNK_BYTES
    files.CHUNK_BYTES = chunk
    try:
        out = to_utf8(path, info, directory / "out")
    finally:
        files.CHUNK_BYTES = original
    produced = out.read_bytes()
    if out == path:
        assert encoding == "utf-8"
        produced.decode("utf-8")
        assert produced.count(b"\r") == produced.count(b"\r\n")
        assert not produced.startswith(codecs.BOM_UTF8)
    else:
        assert produced.decode("utf-8") == reference(raw, encoding)


def test_clean_check_catches_a_cr_at_a_chunk_boundary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "CHUNK_BYTES", 4)
    path = tmp_path / "a.csv"
    path.write_bytes(b"abc\rdef\n")  # CR is the 4th byte: end of the first chunk, next chunk starts with "d"
    assert files._is_clean_utf8(path) is False
    path.write_bytes(b"abc\r\ndef\r\n")
    assert files._is_clean_utf8(path) is True
    path.write_bytes(b"abc\xc3")  # truncated multi-byte at EOF
    assert files._is_clean_utf8(path) is False


def test_to_utf8_memory_is_flat_on_a_large_file(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    row = "zoe.muller@example.com,Zoë,Müller,+4930987654,DE\r\n".encode("cp1252")
    with path.open("wb") as fh:
        fh.write(b"email,first,last,phone,country\r\n")
        block = row * (MiB // len(row))
        for _ in range(40):
            fh.write(block)
    info = inspect(path)
    assert info.encoding == "cp1252"
    tracemalloc.start()
    try:
        out = to_utf8(path, info, tmp_path / "out")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.stat().st_size > 40 * MiB
    assert peak < 12 * MiB  # a few 1 MiB chunks in flight, not the 40 MiB file


# ---------------------------------------------------------------------------------------------------
# XLSX container checks
# ---------------------------------------------------------------------------------------------------


@pytest.fixture
def no_inflate(monkeypatch: pytest.MonkeyPatch) -> None:
    """Booby-trap decompression inside p360.core.intake.files: a test using this proves nothing was inflated."""

    def trap(*args: object, **kwargs: object) -> None:
        raise AssertionError("decompression attempted")

    monkeypatch.setattr(xlsx.zlib, "decompressobj", trap)
    monkeypatch.setattr(zipfile.ZipFile, "read", trap)
    monkeypatch.setattr(zipfile.ZipFile, "open", trap)


def test_zip_bomb_rejected_from_the_central_directory(tmp_path: Path, no_inflate: None) -> None:
    path = hostile.xlsx_zip_bomb(tmp_path)
    assert path.stat().st_size < 2 * MiB
    tracemalloc.start()
    try:
        error = rejected(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert error.code == "zip_bomb"
    assert "1.1 GB" in error.message and "limit 512 MB" in error.message
    assert peak < 4 * MiB


def test_extreme_ratio_rejected_even_under_the_size_limit(tmp_path: Path, no_inflate: None) -> None:
    path = hostile.xlsx_zip_bomb(tmp_path, expanded_mib=100)
    error = rejected(path)
    assert error.code == "zip_bomb" and "times" in error.message


def test_overlapping_entries_rejected(tmp_path: Path, no_inflate: None) -> None:
    error = rejected(hostile.xlsx_overlap_bomb(tmp_path, copies=3))
    assert error.code == "zip_bomb" and "overlap" in error.message


def test_lying_sizes_caught_by_the_capped_stream(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = hostile.xlsx_lying_zip_bomb(tmp_path)
    inflated: list[int] = []
    real = xlsx._inflate

    def counting(*args: object) -> Iterator[bytes]:
        for piece in real(*args):  # type: ignore[arg-type]
            inflated.append(len(piece))
            yield piece

    monkeypatch.setattr(xlsx, "_inflate", counting)
    tracemalloc.start()
    try:
        error = rejected(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert error.code == "zip_bomb" and "declares" in error.message
    assert sum(inflated) < 64 * 1024 + 2 * MiB  # claimed size plus at most one piece, not 1.1 GB
    assert peak < 8 * MiB


def test_bomb_never_reaches_the_parser(tmp_path: Path, no_inflate: None) -> None:
    with pytest.raises(FileRejected) as caught:
        read_xlsx_strings(hostile.xlsx_zip_bomb(tmp_path))
    assert caught.value.code == "zip_bomb"


def test_entity_scan_sees_across_chunk_boundaries() -> None:
    for split in range(1, 12):
        data = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x/>'
        scanner = xlsx._XmlScanner("f.xlsx", "p.xml")
        with pytest.raises(FileRejected):
            for i in range(0, len(data), split):
                scanner.feed(data[i : i + split])
            scanner.finish()


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16-le", "utf-16-be"])
@pytest.mark.parametrize("part", ["[Content_Types].xml", "xl/workbook.xml", "xl/styles.xml", "_rels/.rels"])
def test_doctype_in_any_part_any_encoding(part: str, encoding: str, tmp_path: Path) -> None:
    path = hostile.valid_xlsx(tmp_path)
    with zipfile.ZipFile(path) as zf:
        original = zf.read(part).decode()
    poisoned = original.replace("?>", '?>\n<!doctype r SYSTEM "http://127.0.0.1:9/x.dtd">', 1)
    bom = {"utf-8": b"", "utf-16-le": codecs.BOM_UTF16_LE, "utf-16-be": codecs.BOM_UTF16_BE}[encoding]
    hostile._replace_part(path, part, bom + poisoned.encode(encoding))
    assert rejected(path).code == "xml_entities"


def test_external_entity_is_never_fetched(tmp_path: Path) -> None:
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b'<!ENTITY x "pwned">')

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/evil.dtd"
        path = hostile.xlsx_xxe(tmp_path)
        with zipfile.ZipFile(path) as zf:
            sheet = zf.read("xl/worksheets/sheet1.xml").decode().replace("file:///etc/passwd", url)
        hostile._replace_part(path, "xl/worksheets/sheet1.xml", sheet.encode())
        assert rejected(path).code == "xml_entities"
        with pytest.raises(FileRejected):
            read_xlsx_strings(path)
    finally:
        server.shutdown()
        server.server_close()
    assert hits == []


def test_zip_edge_cases(tmp_path: Path) -> None:
    valid = hostile.valid_xlsx(tmp_path / "v")
    raw = valid.read_bytes()

    truncated = tmp_path / "truncated.xlsx"
    truncated.write_bytes(raw[: len(raw) // 2])
    assert rejected(truncated).code == "damaged"

    bzip = tmp_path / "bzip.xlsx"
    with zipfile.ZipFile(valid) as src, zipfile.ZipFile(bzip, "w", zipfile.ZIP_BZIP2) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info))
    assert rejected(bzip).code == "zip_not_xlsx"

    encrypted = tmp_path / "zipcrypto.xlsx"
    data = bytearray(raw)
    for marker in (b"PK\x03\x04", b"PK\x01\x02"):
        start = 0
        while (pos := data.find(marker, start)) != -1:
            flag_at = pos + (6 if marker == b"PK\x03\x04" else 8)
            data[flag_at] |= 0x1
            start = pos + 4
    encrypted.write_bytes(bytes(data))
    assert rejected(encrypted).code == "encrypted"

    many = tmp_path / "many.xlsx"
    with zipfile.ZipFile(many, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("xl/workbook.xml", "<workbook/>")
        for i in range(xlsx.MAX_ZIP_ENTRIES + 1):
            zf.writestr(f"x/{i}", b"")
    assert rejected(many).code == "zip_bomb"

    ods = tmp_path / "sheet.xlsx"
    with zipfile.ZipFile(ods, "w") as zf:
        zf.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        zf.writestr("content.xml", "<office:document-content/>")
    assert "OpenDocument" in rejected(ods).message

    xlsb = tmp_path / "binary.xlsx"
    with zipfile.ZipFile(xlsb, "w") as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("xl/workbook.bin", b"\x00")
    assert ".xlsb" in rejected(xlsb).message

    plain = tmp_path / "photos.zip"
    with zipfile.ZipFile(plain, "w") as zf:
        zf.writestr("a.csv", "email\n")
    assert rejected(plain).code == "zip_not_xlsx"


def test_stored_parts_are_accepted_and_scanned(tmp_path: Path) -> None:
    path = tmp_path / "stored.xlsx"
    with zipfile.ZipFile(hostile.valid_xlsx(tmp_path / "v")) as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info), compress_type=zipfile.ZIP_STORED)
    assert inspect(path).sheets == ["Contacts", "Notes"]
    hostile._replace_part(path, "xl/styles.xml", b'<?xml version="1.0"?><!DOCTYPE s><styleSheet/>')
    assert rejected(path).code == "xml_entities"


def test_part_shorter_than_declared_is_damaged(tmp_path: Path) -> None:
    raw = b"<worksheet/>"
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = comp.compress(raw) + comp.flush()
    parts = [p for p in hostile._small_parts()]
    path = hostile._raw_zip(
        tmp_path / "short.xlsx", [*parts, ("xl/worksheets/sheet1.xml", data, zlib.crc32(raw), 5000, 5000)]
    )
    assert rejected(path).code == "damaged"


def test_workbook_without_sheets(tmp_path: Path) -> None:
    path = hostile.valid_xlsx(tmp_path)
    hostile._replace_part(path, "xl/workbook.xml", hostile._workbook([]).encode())
    assert rejected(path).code == "not_tabular"


# ---------------------------------------------------------------------------------------------------
# XLSX reading (child process)
# ---------------------------------------------------------------------------------------------------


def test_read_valid_workbook_as_text(tmp_path: Path) -> None:
    path = hostile.valid_xlsx(tmp_path)
    info = inspect(path)
    frame = read_xlsx_strings(path, info=info)
    assert frame.columns == [
        "email",
        "first_name",
        "joined",
        "last_seen",
        "score",
        "phone",
        "vip",
        "email_duplicated_0",
        "__line",
    ]
    assert frame.schema["__line"] == pl.Int64
    assert all(dtype == pl.String for name, dtype in frame.schema.items() if name != "__line")
    assert frame["__line"].to_list() == [2, 3, 5, 6]  # row 4 is blank
    rows = frame.to_dicts()
    assert rows[0]["joined"] == "2024-01-31"
    assert rows[0]["last_seen"] == "2024-02-01 09:30:00"
    assert rows[0]["score"] == "42"
    assert rows[0]["phone"] == "4915112345678"
    assert rows[0]["vip"] == "true"
    assert rows[1]["first_name"] == "José"
    assert rows[1]["score"] == "3.25"
    assert rows[1]["phone"] == "+34 912 345 678"
    assert rows[2]["first_name"] == "=cmd|' /C calc'!A0"
    assert rows[2]["score"] == "n/a"  # never nulled, unlike a typed read
    assert rows[3]["score"] == "100000000000000000000"
    assert (rows[3]["first_name"], rows[3]["phone"], rows[3]["email_duplicated_0"]) == ("+1+1", "@SUM(1)", "-2+3")


def test_sheet_by_name_and_missing_sheet(tmp_path: Path) -> None:
    path = hostile.valid_xlsx(tmp_path)
    assert read_xlsx_strings(path, sheet="Notes").to_dicts() == [{"note": "hi", "__line": 2}]
    assert read_xlsx_strings(path, sheet=1).columns == ["note", "__line"]
    for missing in ("Nope", 5):
        with pytest.raises(FileRejected) as caught:
            read_xlsx_strings(path, sheet=missing)
        assert caught.value.code == "sheet_not_found"
        assert "Contacts" in caught.value.message


def test_table_not_at_a1_keeps_spreadsheet_row_numbers(tmp_path: Path) -> None:
    rows = {3: ["email", "", "__line"], 4: ["a@example.com", "x", "7"], 6: ["b@example.com", None, None], 9: [None]}
    path = hostile.write_xlsx(tmp_path / "offset.xlsx", {"S": rows}, start_col=2)
    frame = read_xlsx_strings(path)
    assert frame.columns == ["email", "", "__line_duplicated_0", "__line"]
    assert frame.to_dicts() == [
        {"email": "a@example.com", "": "x", "__line_duplicated_0": "7", "__line": 4},
        {"email": "b@example.com", "": None, "__line_duplicated_0": None, "__line": 6},
    ]


def test_header_only_and_empty_sheets(tmp_path: Path) -> None:
    header_only = hostile.write_xlsx(tmp_path / "h.xlsx", {"S": {1: ["email", "name"]}})
    frame = read_xlsx_strings(header_only)
    assert frame.columns == ["email", "name", "__line"] and frame.height == 0
    empty = hostile.write_xlsx(tmp_path / "e.xlsx", {"S": {}})
    with pytest.raises(FileRejected) as caught:
        read_xlsx_strings(empty)
    assert caught.value.code == "empty"


def test_empty_trailing_columns_are_dropped(tmp_path: Path) -> None:
    path = hostile.write_xlsx(
        tmp_path / "t.xlsx", {"S": {1: ["email", None, None, "city"], 2: ["a@example.com", None, None, "Rome"]}}
    )
    assert read_xlsx_strings(path).columns == ["email", "city", "__line"]


def test_dates_in_mixed_columns(tmp_path: Path) -> None:
    rows = {1: ["d"], 2: [dt.date(2020, 2, 29)], 3: ["31/12/2020"], 4: [dt.datetime(2021, 1, 1, 23, 59, 58)], 5: [7]}
    frame = read_xlsx_strings(hostile.write_xlsx(tmp_path / "d.xlsx", {"S": rows}))
    assert frame["d"].to_list() == ["2020-02-29", "31/12/2020", "2021-01-01 23:59:58", "7"]


def test_parser_failure_in_the_child_becomes_a_rejection(tmp_path: Path) -> None:
    """A tiny address-space cap makes calamine/polars fail (a Rust panic or an abort on allocation failure):
    either way the caller gets FileRejected and this process lives on."""
    path = hostile.valid_xlsx(tmp_path)
    with pytest.raises(FileRejected) as caught:
        read_xlsx_strings(path, memory_limit=1 * MiB)
    assert caught.value.code in ("unreadable", "too_complex")
    assert read_xlsx_strings(path).height == 4  # and the next read works


def test_far_cell_aborts_the_child_not_the_worker(tmp_path: Path) -> None:
    """calamine allocates the dense range up to XFD1048576 and aborts (SIGABRT): fatal in-process."""
    path = hostile.xlsx_far_cell(tmp_path)
    info = inspect(path)
    with pytest.raises(FileRejected) as caught:
        read_xlsx_strings(path, info=info)
    assert caught.value.code == hostile.READ_FAILURES["xlsx_far_cell"][1]
    assert path.name in caught.value.message


def test_timeout_kills_the_child(tmp_path: Path) -> None:
    with pytest.raises(FileRejected) as caught:
        read_xlsx_strings(hostile.valid_xlsx(tmp_path), timeout=0.01)
    assert caught.value.code == "too_complex"


def test_corrupt_sheet_xml_is_unreadable_not_a_crash(tmp_path: Path) -> None:
    path = hostile.valid_xlsx(tmp_path)
    hostile._replace_part(path, "xl/worksheets/sheet1.xml", b"<worksheet><sheetData><row r='1'><c r='A1' t='s'><v>99")
    with pytest.raises(FileRejected) as caught:
        read_xlsx_strings(path)
    assert caught.value.code in ("unreadable", "damaged")


def test_unique_names_follow_polars() -> None:
    names = ["a", "b", "a", "", "", "a"]
    assert unique_names(names) == ["a", "b", "a_duplicated_0", "", "_duplicated_0", "a_duplicated_1"]
    csv = pl.read_csv(b"a,b,a,,,a\n1,2,3,4,5,6\n", infer_schema=False)
    assert csv.columns == unique_names(names)
    assert unique_names(["a", "a_duplicated_0", "a"]) == ["a", "a_duplicated_0", "a_duplicated_1"]


def test_zlib_ratio_of_the_bomb_is_real(tmp_path: Path) -> None:
    """The generator's repeated-block trick yields a valid deflate stream (checked on a small instance)."""
    data, crc, size = hostile._repeated_deflate(hostile._SHEET_PREFIX, 3, hostile._SHEET_SUFFIX)
    out = zlib.decompressobj(-15).decompress(data)
    assert len(out) == size and zlib.crc32(out) == crc


def test_a_second_inspection_of_the_same_file_reuses_the_verdict(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(b"email,name\n" + b"a@example.com,Ann\n" * 20_000)
    first = inspect(path)
    assert inspect(path) is first  # the import's second inspection: no second SHA-256 of the whole file
    assert files._is_clean_utf8(path) is files._is_clean_utf8(path) is True


def test_a_changed_file_is_inspected_again_even_with_its_old_size_and_mtime(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    body = bytearray(b"email,name\n" + b"a@example.com,Ann\n" * 20_000)
    path.write_bytes(body)
    first = inspect(path)
    assert files._is_clean_utf8(path) is True
    stat = path.stat()
    middle = len(body) // 2
    body[middle : middle + 2] = b"\r;"  # same size, a lone CR in the middle (not in the first or last 64 KiB)
    path.write_bytes(body)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the mtime put back: the ctime still moves
    again = inspect(path)
    assert again is not first
    assert again.sha256 != first.sha256
    assert files._is_clean_utf8(path) is False


def test_a_file_replaced_within_one_tick_is_told_apart_by_its_edges(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(b"email,name\na@example.com,Ann\n")
    first = inspect(path)
    stamp = files._FileStamp.of(path)
    cached = files._INSPECTED[stamp.path]
    # Pretend the new content kept inode, size and both timestamps (a replacement within one clock tick).
    path.write_bytes(b"email;name\nb@example.com;Bob\n")
    files._INSPECTED[stamp.path] = (
        cached[0],
        files._FileStamp(stamp.path, files._FileStamp.of(path).ident, cached[1].edges),
        first,
    )
    again = inspect(path)
    assert again is not first
    assert again.delimiter == ";"
