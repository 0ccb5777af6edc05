"""The layout of a Bombora Company Surge file, detected from its first line (CONTRACT "Input files",
integrations.md section 4), and the week a file name carries.

- Master Surge, headerless, 9 fields: Company Name, Domain, Size, Industry, Category, Topic, Composite Score,
  <metro list `name[score]|...`>, Domain Origin Country;
- ADAT (All Domains All Topics), headerless, 12 fields: ... Composite Score, Bucket Code, Metro Area,
  Metro Composite Score, Metro Bucket Code, Domain Origin Country;
- a CSV with the header `Domain, Company Name, Topic, Composite Score` (+ optional `Week`, `Category`, research
  volume and surge columns).
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

from bombora.store import week_of
from p360.core.intake.tables import FileRejected

_DATE_IN_NAME = re.compile(r"(?<![0-9])(20[0-9]{2})(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])(?![0-9])")


@dataclass(frozen=True)
class Layout:
    name: str
    fields: int
    domain: int
    topic: int
    score: int
    category: int | None = None
    week: int | None = None
    header: bool = False
    # Issue 18: research volume and Bombora's surge indicator, when a file with a header carries them.
    volume: int | None = None
    surge: int | None = None


MASTER_SURGE = Layout("Master Surge", 9, domain=1, topic=5, score=6, category=4)
ADAT = Layout("ADAT (All Domains All Topics)", 12, domain=1, topic=5, score=6, category=4)
_HEADER_NAMES = {
    "domain": ("domain", "company domain", "domain name"),
    "topic": ("topic", "topic name"),
    "score": ("composite score", "score", "compositescore"),
    "category": ("category", "topic category"),
    "week": ("week", "week of", "date"),
    "volume": ("research volume", "volume", "interactions", "research interactions", "topic volume"),
    "surge": ("surge", "surging", "is surging", "surge flag", "surge indicator", "spiking"),
}


def split_line(line: str) -> list[str]:
    return next(csv.reader([line]), [])


def _norm_header(value: str) -> str:
    return " ".join(value.strip().strip('"').lower().replace("_", " ").split())


def detect_layout(first_line: str, name: str) -> Layout:
    """The layout of a file from its first line; a clear refusal for anything else."""
    stripped = first_line.lstrip("\ufeff").strip()
    head = stripped[:200].lower()
    if head.startswith(("<!doctype", "<html", "<?xml", "{", "[")):
        raise FileRejected(f"{name} is not a Bombora file (it looks like HTML/XML/JSON)")
    fields = split_line(stripped)
    names = [_norm_header(f) for f in fields]
    if "domain" in names or "company domain" in names:
        positions: dict[str, int] = {}
        for key, aliases in _HEADER_NAMES.items():
            for index, header in enumerate(names):
                if header in aliases and key not in positions:
                    positions[key] = index
        missing = [label for key, label in (("domain", "Domain"), ("topic", "Topic"), ("score", "Composite Score"))]
        missing = [
            label for label, key in zip(missing, ("domain", "topic", "score"), strict=True) if key not in positions
        ]
        if missing:
            raise FileRejected(
                f"{name}: the header lacks {', '.join(missing)} "
                "(expected Domain, Company Name, Topic, Composite Score and optional Week)"
            )
        return Layout(
            "CSV with header",
            len(fields),
            domain=positions["domain"],
            topic=positions["topic"],
            score=positions["score"],
            category=positions.get("category"),
            week=positions.get("week"),
            header=True,
            volume=positions.get("volume"),
            surge=positions.get("surge"),
        )
    score_looks_right = len(fields) > 6 and fields[6].strip().isdigit()
    if len(fields) == MASTER_SURGE.fields and score_looks_right:
        return MASTER_SURGE
    if len(fields) == ADAT.fields and score_looks_right:
        return ADAT
    raise FileRejected(
        f"{name}: unknown layout (first line has {len(fields)} fields"
        + ("" if score_looks_right or len(fields) <= 6 else f", field 7 is {fields[6][:20]!r}, not a score")
        + "); expected headerless Master Surge (9 fields), ADAT (12 fields) or a CSV with the header "
        "Domain, Company Name, Topic, Composite Score"
    )


def week_from_name(name: str) -> dt.date | None:
    match = _DATE_IN_NAME.search(Path(name).name)
    if not match:
        return None
    try:
        return week_of(dt.date(int(match[1]), int(match[2]), int(match[3])))
    except ValueError:
        return None
