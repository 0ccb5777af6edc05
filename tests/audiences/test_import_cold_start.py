"""The first import of a fresh process does not load phonenumbers' geocoding data (38 MB, 1.3-2.2 s) to read the
country names it needs; the country table built that way equals the one built through the package."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import json, sys
import django
django.setup()
from audiences.normalize import load_country_names_alone
import audiences.normalize as normalize
if sys.argv[1] == "package":
    import phonenumbers.geodata  # what the normaliser used to do: the package's __init__ with its geocoding data
from audiences.normalize import country_table
print(json.dumps({"table": country_table(), "geocoding_loaded": "phonenumbers.geodata.data0" in sys.modules}))
"""


def _country_table_in_fresh_process(mode: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "p360.settings"},
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def test_country_names_load_without_the_geocoding_data_and_give_the_same_table() -> None:
    alone = _country_table_in_fresh_process("alone")
    through_package = _country_table_in_fresh_process("package")
    assert alone["geocoding_loaded"] is False
    assert through_package["geocoding_loaded"] is True  # the cost this avoids is real
    assert alone["table"] == through_package["table"]
    assert len(alone["table"]) > 500  # type: ignore[arg-type]


def test_loading_alone_is_a_no_op_once_the_module_is_loaded() -> None:
    from audiences.normalize import COUNTRY_NAMES_MODULE, load_country_names_alone

    load_country_names_alone()
    module = sys.modules[COUNTRY_NAMES_MODULE]
    load_country_names_alone()
    assert sys.modules[COUNTRY_NAMES_MODULE] is module
    assert "AD" in module.LOCALE_DATA
