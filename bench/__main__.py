"""`python -m bench`: set up the bench database, run every bench_*.py module, print one table."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
import traceback
from types import ModuleType

import bench
from bench.common import Row, error_row, format_table, setup_database


def discover() -> list[ModuleType]:
    """The bench_*.py modules of this package, by their ORDER (default 100), then name."""
    names = [info.name for info in pkgutil.iter_modules(bench.__path__) if info.name.startswith("bench_")]
    modules = [importlib.import_module(f"bench.{name}") for name in names]
    return sorted(modules, key=lambda module: (getattr(module, "ORDER", 100), module.__name__))


def run_module(module: ModuleType) -> tuple[list[Row], bool]:
    """The module's rows, and whether it ran without an error (an error becomes a row)."""
    short = module.__name__.rsplit(".", 1)[-1]
    try:
        return list(module.run()), True
    except Exception as exc:
        traceback.print_exc()
        return [error_row(short, exc)], False


def main() -> int:
    started = time.perf_counter()
    db_name = setup_database()
    rows: list[Row] = []
    ok = True
    wanted = set(sys.argv[1:])  # `python -m bench segments` runs bench_segments only
    for module in discover():
        if wanted and module.__name__.rsplit(".", 1)[-1].removeprefix("bench_") not in wanted:
            continue
        module_rows, module_ok = run_module(module)
        rows.extend(module_rows)
        ok = ok and module_ok
    print(format_table(rows))
    print(f"\n(database {db_name}; {time.perf_counter() - started:.0f} s in all)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
