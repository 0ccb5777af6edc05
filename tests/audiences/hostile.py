"""Hostile (and a few friendly) input files for the audience import, written on demand.

Every generator takes a directory, writes one file into it and returns its path. Its docstring says what must
happen to it. "Lines" are physical line numbers of the file with the header on line 1 (the numbers the
quarantine report shows). ``CATALOGUE`` lists every generator with its expected outcome for parametrised
pipeline tests and for the issue note's "hostile files tried" table:

- ``rejected``: the ``FileRejected.code`` that ``p360.core.intake.files.inspect_file`` raises (None: accepted);
- ``data_rows``: records after the header (``rows_read`` of the import), when the file is accepted;
- ``bad_lines``: the lines that must end in quarantine (everything else loads).

``READ_FAILURES`` lists workbooks that pass ``inspect_file`` (a sound container) but that
``read_xlsx_strings`` refuses, with the ``FileRejected.code`` it raises.

Nothing here decompresses the bombs: they are built from one compressed block repeated.
"""

from __future__ import annotations

import datetime as dt
import functools
import struct
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

HEADER = "email,first_name,last_name,phone,country"
GOOD_ROWS = [
    "ana.silva@example.com,Ana,Silva,+351912345678,PT",
    "bob.jones@example.com,Bob,Jones,+442079460958,GB",
    "carla.rossi@example.com,Carla,Rossi,+390612345678,IT",
    "dieter.krause@example.com,Dieter,Krause,+4930123456,DE",
    "emma.martin@example.com,Emma,Martin,+33142685300,FR",
]
# Rows with non-ASCII letters, used by the encoding generators (the same text in every encoding).
ACCENTED_ROWS = [
    "jose.garcia@example.com,José,García,+34912345678,ES",
    "zoe.muller@example.com,Zoë,Müller,+4930987654,DE",
    "francois.leclerc@example.com,François,Lefèvre,+33145678901,FR",
    "soren.dahl@example.com,Søren,Dahl-Œstergaard,+4533123456,DK",
]


def _write(directory: Path, name: str, data: bytes) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_bytes(data)
    return path


def _lines(*lines: str, end: str = "\n") -> str:
    return end.join(lines) + end


# --------------------------------------------------------------------------------------------------
# CSV shapes
# --------------------------------------------------------------------------------------------------


def ragged_rows_csv(directory: Path) -> Path:
    """Five data rows; line 3 is short (4 fields), line 5 is long (6 fields).

    Expected: accepted (utf-8, ``,``); lines 2, 4, 6 load; 3 ("too few fields") and 5 ("too many fields")
    are quarantined; no field is silently dropped or padded.
    """
    text = _lines(
        HEADER,
        GOOD_ROWS[0],
        "bob.jones@example.com,Bob,Jones,+442079460958",
        GOOD_ROWS[2],
        "dieter.krause@example.com,Dieter,Krause,+4930123456,DE,surplus",
        GOOD_ROWS[4],
    )
    return _write(directory, "ragged.csv", text.encode())


def unbalanced_quotes_csv(directory: Path) -> Path:
    """Line 3 has a quote in the middle of a field (``O"Brien``: literal, loads); line 5 opens a quote that never closes.

    Expected: accepted; lines 2, 3, 4 load (line 3's last name is ``O"Brien``); line 5 is quarantined
    ("unclosed quote"); 4 data rows read.
    """
    text = _lines(
        HEADER,
        GOOD_ROWS[0],
        'liam.obrien@example.com,Liam,O"Brien,+353112345678,IE',
        GOOD_ROWS[2],
        '"mia.wong@example.com,Mia,Wong,+85212345678,HK',
    )
    return _write(directory, "unbalanced_quotes.csv", text.encode())


def nul_bytes_csv(directory: Path) -> Path:
    """Twenty data rows; lines 5 and 9 contain NUL bytes (PostgreSQL text cannot store them).

    Expected: accepted (not "binary": NULs are rare); lines 5 and 9 quarantined ("NUL byte"); 18 load.
    """
    rows = [f"user{i:02d}@example.com,First{i},Last{i},+4930{1000000 + i},DE" for i in range(2, 22)]
    rows[5 - 2] = "user05@example.com,Fi\x00rst5,Last5,+49301000005,DE"
    rows[9 - 2] = "user09\x00@example.com,First9,Last9,+49301000009,DE"
    return _write(directory, "nul_bytes.csv", _lines(HEADER, *rows).encode())


def invalid_utf8_csv(directory: Path) -> Path:
    """A UTF-8 file (accented names) with invalid bytes on lines 4 (``\\xc3\\x28``) and 7 (``\\xff\\xfe``).

    Expected: encoding ``utf-8`` (mostly valid); after ``to_utf8`` those bytes are U+FFFD and lines 4 and 7
    are quarantined ("invalid UTF-8"); 8 of 10 rows load.
    """
    rows = [row.encode() for row in ACCENTED_ROWS + GOOD_ROWS + ["ines.sousa@example.com,Inês,Sousa,+351213456789,PT"]]
    rows[4 - 2] = b"broken.one@example.com,Fran\xc3\x28ois,Broken,+33145678000,FR"
    rows[7 - 2] = b"broken.two@example.com,Ana,Br\xff\xfeken,+351912345000,PT"
    return _write(directory, "invalid_utf8.csv", b"\n".join([HEADER.encode(), *rows]) + b"\n")


def utf8_bom_csv(directory: Path) -> Path:
    """UTF-8 with a byte-order mark. Expected: ``utf-8-sig``; first header is ``email`` (no BOM); 4 rows load."""
    return _write(directory, "bom.csv", b"\xef\xbb\xbf" + _lines(HEADER, *ACCENTED_ROWS).encode())


def mixed_line_endings_csv(directory: Path) -> Path:
    """Line endings LF, CRLF, lone CR (old Mac) and none at the end.

    Expected: accepted; ``to_utf8`` turns the lone CR into LF (CRLF kept); 4 data rows on lines 2-5, all load.
    """
    data = (HEADER + "\n" + GOOD_ROWS[0] + "\r\n" + GOOD_ROWS[1] + "\r" + GOOD_ROWS[2] + "\n" + GOOD_ROWS[3]).encode()
    return _write(directory, "mixed_endings.csv", data)


def huge_field_csv(directory: Path, size: int = 10 * 1024 * 1024) -> Path:
    """Line 3 has a quoted ``notes`` field of 10 MB (with commas and newlines inside the quotes).

    Expected: accepted; lines 2 and 4 load; line 3 either loads intact or is quarantined ("field too long");
    never a crash, never a silently truncated value. Note the file has 3 records but more physical lines:
    the record after the big field starts on line ``4 + newlines inside the field``.
    """
    chunk = "lorem ipsum, dolor sit amet\n"
    body = (chunk * (size // len(chunk) + 1))[:size]
    lines = [
        HEADER + ",notes",
        GOOD_ROWS[0] + ",short note",
        GOOD_ROWS[1] + ',"' + body + '"',
        GOOD_ROWS[2] + ",another note",
    ]
    return _write(directory, "huge_field.csv", _lines(*lines).encode())


FORMULA_VALUES = ["=cmd|' /C calc'!A0", "+1+1", "@SUM(1)", "-2+3", '=HYPERLINK("http://evil.example","x")']


def formula_values_csv(directory: Path) -> Path:
    """First names that spreadsheets would run as formulas (DDE ``=cmd|' /C calc'!A0``, ``+1+1``, ``@SUM(1)``, ``-2+3``).

    Expected: accepted; all 5 rows load with the values verbatim (they are data); exports neutralise them
    with a leading ``'`` (trust item 26).
    """
    rows = []
    for i, value in enumerate(FORMULA_VALUES):
        quoted = '"' + value.replace('"', '""') + '"' if ("," in value or '"' in value) else value
        rows.append(f"formula{i}@example.com,{quoted},Test,+4930555000{i},DE")
    return _write(directory, "formulas.csv", _lines(HEADER, *rows).encode())


def empty_csv(directory: Path) -> Path:
    """Zero bytes. Expected: rejected ``empty``."""
    return _write(directory, "empty.csv", b"")


def header_only_csv(directory: Path) -> Path:
    """Only the header line. Expected: accepted; 0 rows read, 0 loaded, a clear "no rows" message in the report."""
    return _write(directory, "header_only.csv", _lines(HEADER).encode())


def duplicate_headers_csv(directory: Path) -> Path:
    """Headers ``email,name,email,Name,,`` (a repeated name, a case variant, two empty ones).

    Expected: accepted; the pipeline makes the names unique and maps the first ``email``; 2 rows load.
    """
    text = _lines(
        "email,name,email,Name,,",
        "ana.silva@example.com,Ana,ana@work.example,ANA,x,y",
        "bob.jones@example.com,Bob,bob@work.example,BOB,,",
    )
    return _write(directory, "duplicate_headers.csv", text.encode())


def semicolon_csv(directory: Path) -> Path:
    """European export: ``;`` delimiter and decimal commas. Expected: delimiter ``;``; 3 rows load."""
    text = _lines(
        "email;first_name;score",
        "ana.silva@example.com;Ana;1,5",
        "bob.jones@example.com;Bob;2,75",
        '"carla.rossi@example.com";"Rossi; Carla";3,0',
    )
    return _write(directory, "semicolon.csv", text.encode())


def cp1252_csv(directory: Path) -> Path:
    """Windows-1252 (Excel "CSV" on Western Windows) with accents, ``€`` and curly quotes.

    Expected: encoding ``cp1252``; after ``to_utf8`` the names read ``José``, ``Zoë``... exactly; 5 rows load.
    """
    rows = [*ACCENTED_ROWS, "euro.fan@example.com,“Euro”,Fan€,+4930111222,DE"]
    return _write(directory, "cp1252.csv", _lines(HEADER, *rows, end="\r\n").encode("cp1252"))


def utf16le_bom_csv(directory: Path) -> Path:
    """UTF-16 LE with BOM, CRLF, tab-delimited (what Excel's "Unicode text" writes).

    Expected: encoding ``utf-16-le``, delimiter tab; 4 rows load with their accents.
    """
    text = _lines(*(line.replace(",", "\t") for line in [HEADER, *ACCENTED_ROWS]), end="\r\n")
    return _write(directory, "utf16le.csv", b"\xff\xfe" + text.encode("utf-16-le"))


def utf16be_csv(directory: Path, *, bom: bool = False) -> Path:
    """UTF-16 BE, by default without a BOM (found by its NUL pattern). Expected: ``utf-16-be``; 4 rows load."""
    data = _lines(HEADER, *ACCENTED_ROWS).encode("utf-16-be")
    return _write(directory, "utf16be.csv", (b"\xfe\xff" if bom else b"") + data)


def over_limit_csv(directory: Path, limit: int = 1024**3) -> Path:
    """A sparse file one byte over ``limit`` (no disk used). Expected: rejected ``too_large`` before any read."""
    path = _write(directory, "over_limit.csv", _lines(HEADER, *GOOD_ROWS).encode())
    with path.open("r+b") as fh:
        fh.truncate(limit + 1)
    return path


# --------------------------------------------------------------------------------------------------
# Not tables at all
# --------------------------------------------------------------------------------------------------


def elf_renamed_csv(directory: Path) -> Path:
    """A (minimal) Linux ELF executable named ``audience.csv``. Expected: rejected ``executable``."""
    header = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + struct.pack("<HHI", 2, 0x3E, 1) + b"\x00" * 40
    return _write(directory, "audience.csv", header + bytes(range(256)) * 4)


def pe_renamed_csv(directory: Path) -> Path:
    """A (minimal) Windows PE executable named ``contacts.csv``. Expected: rejected ``executable``."""
    dos = bytearray(b"MZ" + b"\x90\x00\x03\x00" + b"\x00" * 58)
    struct.pack_into("<I", dos, 0x3C, 0x80)
    stub = b"This program cannot be run in DOS mode.\r\r\n$".ljust(0x80 - 64, b"\x00")
    pe = b"PE\x00\x00" + struct.pack("<HHIIIHH", 0x8664, 1, 0, 0, 0, 0xF0, 0x22)
    return _write(directory, "contacts.csv", bytes(dos) + stub + pe + b"\x00" * 512)


def html_renamed_csv(directory: Path) -> Path:
    """A login page saved as ``export.csv`` (what a broken download link gives). Expected: rejected ``html``."""
    page = (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8><title>Sign in</title></head>\n"
        "<body><form method=post><input name=email,password></form></body></html>\n"
    )
    return _write(directory, "export.csv", page.encode())


def pdf_renamed_csv(directory: Path) -> Path:
    """A PDF named ``.csv``. Expected: rejected ``pdf``."""
    return _write(directory, "list.csv", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n")


def png_renamed_csv(directory: Path) -> Path:
    """A PNG named ``.csv``. Expected: rejected ``image``."""
    return _write(directory, "screenshot.csv", b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(64))


def gzip_renamed_csv(directory: Path) -> Path:
    """A gzip-compressed CSV named ``.csv``. Expected: rejected ``archive``."""
    import gzip

    return _write(directory, "export.csv", gzip.compress(_lines(HEADER, *GOOD_ROWS).encode()))


def random_binary_csv(directory: Path) -> Path:
    """64 KiB of pseudo-random bytes named ``.csv``. Expected: rejected ``binary``."""
    import random

    rng = random.Random(360)
    return _write(directory, "noise.csv", bytes(rng.getrandbits(8) for _ in range(65536)))


# --------------------------------------------------------------------------------------------------
# XLSX
# --------------------------------------------------------------------------------------------------

NS_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
NS_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
XML_DECL = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'

Cell = str | int | float | bool | dt.date | None


def _content_types(sheets: int, *, shared: bool = True) -> str:
    overrides = "".join(
        f'<Override PartName="/xl/worksheets/sheet{i}.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
        for i in range(1, sheets + 1)
    )
    if shared:
        overrides += (
            '<Override PartName="/xl/sharedStrings.xml" '
            'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
        )
    return (
        XML_DECL + '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/styles.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
        f"{overrides}</Types>"
    )


ROOT_RELS = (
    XML_DECL + '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    f'<Relationship Id="rId1" Type="{NS_REL}/officeDocument" Target="xl/workbook.xml"/></Relationships>'
)

# cellXfs: 0 general, 1 date (numFmt 14), 2 date-time (22), 3 percent, 4 thousands (#,##0).
STYLES = (
    XML_DECL + f'<styleSheet xmlns="{NS_MAIN}">'
    '<fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts>'
    '<fills count="1"><fill><patternFill patternType="none"/></fill></fills>'
    '<borders count="1"><border/></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="5"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="14" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="22" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="10" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    '<xf numFmtId="3" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>'
    "</cellXfs></styleSheet>"
)


def _workbook(names: Sequence[str]) -> str:
    sheets = "".join(f'<sheet name="{escape(n)}" sheetId="{i}" r:id="rId{i}"/>' for i, n in enumerate(names, start=1))
    return XML_DECL + f'<workbook xmlns="{NS_MAIN}" xmlns:r="{NS_REL}"><sheets>{sheets}</sheets></workbook>'


def _workbook_rels(count: int) -> str:
    rels = "".join(
        f'<Relationship Id="rId{i}" Type="{NS_REL}/worksheet" Target="worksheets/sheet{i}.xml"/>'
        for i in range(1, count + 1)
    )
    rels += (
        f'<Relationship Id="rId{count + 1}" Type="{NS_REL}/styles" Target="styles.xml"/>'
        f'<Relationship Id="rId{count + 2}" Type="{NS_REL}/sharedStrings" Target="sharedStrings.xml"/>'
    )
    return (
        XML_DECL + f'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">{rels}'
        "</Relationships>"
    )


def _col(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def _excel_serial(value: dt.date) -> tuple[float, int]:
    epoch = dt.datetime(1899, 12, 30)
    if isinstance(value, dt.datetime):
        delta = value - epoch
        return delta.days + delta.seconds / 86400, 2
    return float((value - epoch.date()).days), 1


def _sheet_xml(rows: dict[int, Sequence[Cell]], strings: list[str], *, start_col: int = 0) -> str:
    index: dict[str, int] = {s: i for i, s in enumerate(strings)}
    out = []
    for number, values in sorted(rows.items()):
        cells = []
        for offset, value in enumerate(values):
            ref = f"{_col(start_col + offset)}{number}"
            if value is None:
                continue
            if isinstance(value, bool):
                cells.append(f'<c r="{ref}" t="b"><v>{int(value)}</v></c>')
            elif isinstance(value, dt.date):
                serial, style = _excel_serial(value)
                cells.append(f'<c r="{ref}" s="{style}"><v>{serial!r}</v></c>')
            elif isinstance(value, int | float):
                cells.append(f'<c r="{ref}"><v>{value!r}</v></c>')
            else:
                if value not in index:
                    index[value] = len(strings)
                    strings.append(value)
                cells.append(f'<c r="{ref}" t="s"><v>{index[value]}</v></c>')
        out.append(f'<row r="{number}">{"".join(cells)}</row>')
    return XML_DECL + f'<worksheet xmlns="{NS_MAIN}"><sheetData>{"".join(out)}</sheetData></worksheet>'


def _shared_strings(strings: list[str]) -> str:
    items = "".join(f'<si><t xml:space="preserve">{escape(s)}</t></si>' for s in strings)
    return XML_DECL + f'<sst xmlns="{NS_MAIN}" count="{len(strings)}" uniqueCount="{len(strings)}">{items}</sst>'


def write_xlsx(
    path: Path,
    sheets: dict[str, dict[int, Sequence[Cell]]],
    *,
    start_col: int = 0,
    replace: dict[str, str] | None = None,
) -> Path:
    """Write a real OOXML workbook: ``sheets`` maps a sheet name to {row number: cells from column A}.

    Strings go to the shared-string table (as Excel does), dates get date styles. ``replace`` swaps whole
    parts by name after generation (for the hostile variants).
    """
    strings: list[str] = []
    parts = {
        "[Content_Types].xml": _content_types(len(sheets)),
        "_rels/.rels": ROOT_RELS,
        "xl/workbook.xml": _workbook(list(sheets)),
        "xl/_rels/workbook.xml.rels": _workbook_rels(len(sheets)),
        "xl/styles.xml": STYLES,
    }
    for i, rows in enumerate(sheets.values(), start=1):
        parts[f"xl/worksheets/sheet{i}.xml"] = _sheet_xml(rows, strings, start_col=start_col)
    parts["xl/sharedStrings.xml"] = _shared_strings(strings)
    parts.update(replace or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in parts.items():
            zf.writestr(name, content)
    return path


VALID_XLSX_ROWS: dict[int, Sequence[Cell]] = {
    1: ["email", "first_name", "joined", "last_seen", "score", "phone", "vip", "email"],
    2: [
        "ana.silva@example.com",
        "Ana",
        dt.date(2024, 1, 31),
        dt.datetime(2024, 2, 1, 9, 30),
        42,
        4915112345678,
        True,
        "x",
    ],
    3: [
        "jose.garcia@example.com",
        "José",
        dt.date(2023, 12, 1),
        dt.datetime(2024, 2, 1),
        3.25,
        "+34 912 345 678",
        False,
    ],
    # row 4 left blank on purpose
    5: ["zoe.muller@example.com", "=cmd|' /C calc'!A0", None, None, "n/a", None, None],
    6: ["bob.jones@example.com", "+1+1", dt.date(2024, 3, 5), None, 1e20, "@SUM(1)", None, "-2+3"],
}


def valid_xlsx(directory: Path) -> Path:
    """A small real workbook (shared strings, dates, date-times, numbers, booleans, a blank row, a duplicate header).

    Expected: accepted ``xlsx`` with sheet ``Contacts``; ``read_xlsx_strings`` gives 4 rows with ``__line``
    2, 3, 5, 6 and columns ``email, first_name, joined, last_seen, score, phone, vip, email_duplicated_0``;
    ``joined`` ``2024-01-31``, ``last_seen`` ``2024-02-01 09:30:00``, ``score`` ``42``/``3.25``/``n/a``/
    ``100000000000000000000``, ``phone`` ``4915112345678``, ``vip`` ``true``/``false``; formula-looking text stays text.
    """
    return write_xlsx(directory / "contacts.xlsx", {"Contacts": VALID_XLSX_ROWS, "Notes": {1: ["note"], 2: ["hi"]}})


def xlsx_xxe(directory: Path) -> Path:
    """A workbook whose sheet declares an external entity (``file:///etc/passwd``) and uses it in a cell.

    Expected: rejected ``xml_entities`` by the container scan; nothing is resolved, no file or network access.
    """
    sheet = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<!DOCTYPE worksheet [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
        f'<worksheet xmlns="{NS_MAIN}"><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>email</t></is></c></row>'
        '<row r="2"><c r="A2" t="inlineStr"><is><t>&xxe;</t></is></c></row></sheetData></worksheet>'
    )
    return write_xlsx(directory / "xxe.xlsx", {"Sheet1": {}}, replace={"xl/worksheets/sheet1.xml": sheet})


def xlsx_billion_laughs(directory: Path) -> Path:
    """Shared strings with nested entity expansion ("billion laughs"), encoded as UTF-16 to dodge naive scans.

    Expected: rejected ``xml_entities``; no expansion happens.
    """
    entities = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">' for i in range(1, 10)
    )
    sst = (
        '<?xml version="1.0" encoding="UTF-16"?>\n'
        f"<!DOCTYPE sst [{entities}]>"
        f'<sst xmlns="{NS_MAIN}" count="1" uniqueCount="1"><si><t>&lol9;</t></si></sst>'
    )
    path = write_xlsx(directory / "laughs.xlsx", {"Sheet1": {1: ["email"], 2: ["a@example.com"]}})
    _replace_part(path, "xl/sharedStrings.xml", b"\xff\xfe" + sst.encode("utf-16-le"))
    return path


def _replace_part(path: Path, name: str, data: bytes) -> None:
    with zipfile.ZipFile(path) as zf:
        parts = {info.filename: zf.read(info) for info in zf.infolist()}
    parts[name] = data
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for part, content in parts.items():
            zf.writestr(part, content)


# -- zip bombs: one compressed 1 MiB block of spaces repeated (deflate with full flushes restarts the
# -- compressor at each block boundary, so identical input blocks compress to identical bytes).

_BLOCK = b" " * (1 << 20)


@functools.cache
def _repeated_deflate(prefix: bytes, blocks: int, suffix: bytes) -> tuple[bytes, int, int]:
    """Raw deflate of ``prefix + 1 MiB spaces * blocks + suffix`` without compressing the blocks one by one."""
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = comp.compress(prefix + _BLOCK) + comp.flush(zlib.Z_FULL_FLUSH)
    block = comp.compress(_BLOCK) + comp.flush(zlib.Z_FULL_FLUSH)
    again = comp.compress(_BLOCK) + comp.flush(zlib.Z_FULL_FLUSH)
    if block != again:  # pragma: no cover - zlib behaviour this relies on
        raise RuntimeError("deflate blocks are not reproducible; cannot build the bomb cheaply")
    last = comp.compress(suffix) + comp.flush()
    data = first + block * (blocks - 1) + last
    crc = zlib.crc32(prefix + _BLOCK)
    for _ in range(blocks - 1):
        crc = zlib.crc32(_BLOCK, crc)
    crc = zlib.crc32(suffix, crc)
    return data, crc, len(prefix) + len(_BLOCK) * blocks + len(suffix)


def _raw_zip(path: Path, entries: list[tuple[str, bytes, int, int, int]]) -> Path:
    """Write a zip from (name, deflated data, crc, declared size in local header, declared size in directory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    central = b""
    with path.open("wb") as fh:
        for name, data, crc, local_size, central_size in entries:
            offset = fh.tell()
            encoded = name.encode()
            fh.write(
                struct.pack(
                    "<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 8, 0, 0x21, crc, len(data), local_size, len(encoded), 0
                )
            )
            fh.write(encoded)
            fh.write(data)
            central += struct.pack(
                "<4sHHHHHHIIIHHHHHII",
                b"PK\x01\x02", 20, 20, 0, 8, 0, 0x21, crc, len(data), central_size, len(encoded), 0, 0, 0, 0, 0, offset,
            ) + encoded  # fmt: skip
        start = fh.tell()
        fh.write(central)
        fh.write(struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(central), start, 0))
    return path


def _small_parts() -> list[tuple[str, bytes, int, int, int]]:
    parts = {
        "[Content_Types].xml": _content_types(1),
        "_rels/.rels": ROOT_RELS,
        "xl/workbook.xml": _workbook(["Sheet1"]),
        "xl/_rels/workbook.xml.rels": _workbook_rels(1),
        "xl/styles.xml": STYLES,
        "xl/sharedStrings.xml": _shared_strings([]),
    }
    out = []
    for name, text in parts.items():
        raw = text.encode()
        comp = zlib.compressobj(9, zlib.DEFLATED, -15)
        data = comp.compress(raw) + comp.flush()
        out.append((name, data, zlib.crc32(raw), len(raw), len(raw)))
    return out


_SHEET_PREFIX = (XML_DECL + f'<worksheet xmlns="{NS_MAIN}"><sheetData>').encode()
_SHEET_SUFFIX = b"</sheetData></worksheet>"


def xlsx_zip_bomb(directory: Path, expanded_mib: int = 1100) -> Path:
    """About 1.1 MB on disk, a sheet part that honestly declares ``expanded_mib`` MiB (default past 1 GB).

    Expected: rejected ``zip_bomb`` from the central directory alone (sum of declared sizes over the limit),
    before a single byte is decompressed.
    """
    data, crc, size = _repeated_deflate(_SHEET_PREFIX, expanded_mib, _SHEET_SUFFIX)
    return _raw_zip(directory / "bomb.xlsx", [*_small_parts(), ("xl/worksheets/sheet1.xml", data, crc, size, size)])


def xlsx_lying_zip_bomb(directory: Path, expanded_mib: int = 1100, claimed: int = 64 * 1024) -> Path:
    """The same bomb, but both the local header and the central directory claim the sheet is 64 KiB.

    Expected: rejected ``zip_bomb`` by the capped stream check (the part produces more than it declares),
    after decompressing at most the claimed size plus one 1 MiB piece.
    """
    data, crc, _size = _repeated_deflate(_SHEET_PREFIX, expanded_mib, _SHEET_SUFFIX)
    return _raw_zip(
        directory / "lying_bomb.xlsx", [*_small_parts(), ("xl/worksheets/sheet1.xml", data, crc, claimed, claimed)]
    )


def xlsx_overlap_bomb(directory: Path, copies: int = 200) -> Path:
    """Many central-directory entries pointing at one compressed 10 MiB sheet (the "overlapping files" bomb).

    Expected: rejected ``zip_bomb`` (overlapping parts; 200 x 10 MiB declared is also over the limit)
    without decompressing anything.
    """
    data, crc, size = _repeated_deflate(_SHEET_PREFIX, 10, _SHEET_SUFFIX)
    small = _small_parts()
    path = _raw_zip(directory / "overlap.xlsx", [*small, ("xl/worksheets/sheet1.xml", data, crc, size, size)])
    raw = path.read_bytes()
    eocd = raw.rfind(b"PK\x05\x06")
    cd_size, cd_start = struct.unpack_from("<II", raw, eocd + 12)
    central = raw[cd_start : cd_start + cd_size]
    sheet_offset = struct.unpack_from("<I", central, central.rfind(b"PK\x01\x02") + 42)[0]
    extra = b""
    for i in range(copies):
        name = f"xl/worksheets/sheet{i + 2}.xml".encode()
        extra += struct.pack(
            "<4sHHHHHHIIIHHHHHII",
            b"PK\x01\x02", 20, 20, 0, 8, 0, 0x21, crc, len(data), size, len(name), 0, 0, 0, 0, 0, sheet_offset,
        ) + name  # fmt: skip
    entries = len(small) + 1 + copies
    tail = struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, entries, entries, cd_size + len(extra), cd_start, 0)
    path.write_bytes(raw[:cd_start] + central + extra + tail)
    return path


def xlsx_far_cell(directory: Path) -> Path:
    """A tiny, valid workbook with one extra cell at XFD1048576, the last cell of a sheet.

    calamine materialises the sheet as a dense range (16,384 columns x 1,048,576 rows), so reading it asks
    for hundreds of gigabytes and aborts the process: no ``except`` can catch that in-process.
    Expected: ``inspect_file`` accepts it (the container is fine); ``read_xlsx_strings`` raises
    ``FileRejected("unreadable")`` from its child process and the worker lives on.
    """
    rows: dict[int, Sequence[Cell]] = {1: ["email", "name"], 2: ["ana.silva@example.com", "Ana"]}
    path = write_xlsx(directory / "far_cell.xlsx", {"Sheet1": rows})
    with zipfile.ZipFile(path) as zf:
        sheet = zf.read("xl/worksheets/sheet1.xml").decode()
    far = '<row r="1048576"><c r="XFD1048576"><v>1</v></c></row></sheetData>'
    _replace_part(path, "xl/worksheets/sheet1.xml", sheet.replace("</sheetData>", far).encode())
    return path


def docx_renamed_xlsx(directory: Path) -> Path:
    """A Word document (zip) named ``.xlsx``. Expected: rejected ``zip_not_xlsx``."""
    path = directory / "letter.xlsx"
    directory.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", XML_DECL + "<Types/>")
        zf.writestr("word/document.xml", XML_DECL + "<document/>")
    return path


def _cfb(streams: Sequence[str]) -> bytes:
    """A minimal OLE compound file (v3, 512-byte sectors) whose directory lists ``streams`` (all empty)."""
    header = bytearray(512)
    header[0:8] = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
    struct.pack_into("<HHHHH", header, 0x18, 0x3E, 3, 0xFFFE, 9, 6)
    struct.pack_into("<IIIIIIIII", header, 0x28, 0, 1, 1, 0, 4096, 0xFFFFFFFE, 0, 0xFFFFFFFE, 0)
    struct.pack_into("<I", header, 0x4C, 0)
    for i in range(1, 109):
        struct.pack_into("<I", header, 0x4C + 4 * i, 0xFFFFFFFF)
    fat = bytearray(b"\xff" * 512)
    struct.pack_into("<II", fat, 0, 0xFFFFFFFD, 0xFFFFFFFE)
    directory = bytearray()
    for index, name in enumerate(["Root Entry", *streams][:4]):
        entry = bytearray(128)
        encoded = name.encode("utf-16-le") + b"\x00\x00"
        entry[: len(encoded)] = encoded
        struct.pack_into("<HBB", entry, 64, len(encoded), 5 if index == 0 else 2, 1)
        struct.pack_into("<III", entry, 68, 0xFFFFFFFF, 0xFFFFFFFF, 1 if index == 0 else 0xFFFFFFFF)
        struct.pack_into("<II", entry, 116, 0xFFFFFFFE, 0)
        directory += entry
    return bytes(header) + bytes(fat) + bytes(directory.ljust(512, b"\x00"))


def encrypted_xlsx(directory: Path) -> Path:
    """A password-protected workbook (an OLE container with EncryptionInfo/EncryptedPackage). Expected: ``encrypted``."""
    return _write(directory, "protected.xlsx", _cfb(["EncryptionInfo", "EncryptedPackage"]))


def legacy_xls(directory: Path) -> Path:
    """An Excel 97-2003 ``.xls`` container (OLE with a Workbook stream). Expected: rejected ``legacy_excel``."""
    return _write(directory, "old.xls", _cfb(["Workbook"]))


# --------------------------------------------------------------------------------------------------
# Catalogue
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hostile:
    make: Callable[[Path], Path]
    rejected: str | None  # FileRejected.code from inspect_file, None when accepted
    data_rows: int | None = None  # records after the header when accepted
    bad_lines: tuple[int, ...] = ()  # lines that must be quarantined


CATALOGUE: dict[str, Hostile] = {
    "ragged_rows": Hostile(ragged_rows_csv, None, 5, (3, 5)),
    "unbalanced_quotes": Hostile(unbalanced_quotes_csv, None, 4, (5,)),
    "nul_bytes": Hostile(nul_bytes_csv, None, 20, (5, 9)),
    "invalid_utf8": Hostile(invalid_utf8_csv, None, 10, (4, 7)),
    "utf8_bom": Hostile(utf8_bom_csv, None, 4),
    "mixed_line_endings": Hostile(mixed_line_endings_csv, None, 4),
    "huge_field": Hostile(huge_field_csv, None, 3),
    "formula_values": Hostile(formula_values_csv, None, 5),
    "empty": Hostile(empty_csv, "empty"),
    "header_only": Hostile(header_only_csv, None, 0),
    "duplicate_headers": Hostile(duplicate_headers_csv, None, 2),
    "semicolon": Hostile(semicolon_csv, None, 3),
    "cp1252": Hostile(cp1252_csv, None, 5),
    "utf16le_bom": Hostile(utf16le_bom_csv, None, 4),
    "utf16be": Hostile(utf16be_csv, None, 4),
    "over_limit": Hostile(over_limit_csv, "too_large"),
    "elf_renamed": Hostile(elf_renamed_csv, "executable"),
    "pe_renamed": Hostile(pe_renamed_csv, "executable"),
    "html_renamed": Hostile(html_renamed_csv, "html"),
    "pdf_renamed": Hostile(pdf_renamed_csv, "pdf"),
    "png_renamed": Hostile(png_renamed_csv, "image"),
    "gzip_renamed": Hostile(gzip_renamed_csv, "archive"),
    "random_binary": Hostile(random_binary_csv, "binary"),
    "valid_xlsx": Hostile(valid_xlsx, None, 4),
    "xlsx_xxe": Hostile(xlsx_xxe, "xml_entities"),
    "xlsx_billion_laughs": Hostile(xlsx_billion_laughs, "xml_entities"),
    "xlsx_zip_bomb": Hostile(xlsx_zip_bomb, "zip_bomb"),
    "xlsx_lying_zip_bomb": Hostile(xlsx_lying_zip_bomb, "zip_bomb"),
    "xlsx_overlap_bomb": Hostile(xlsx_overlap_bomb, "zip_bomb"),
    "docx_renamed": Hostile(docx_renamed_xlsx, "zip_not_xlsx"),
    "encrypted_xlsx": Hostile(encrypted_xlsx, "encrypted"),
    "legacy_xls": Hostile(legacy_xls, "legacy_excel"),
}


READ_FAILURES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "xlsx_far_cell": (xlsx_far_cell, "unreadable"),
}
