"""P360 benchmarks: `make bench` (or `python -m bench`) runs every `bench_*.py` module and prints one table.

Each module exposes `run() -> list[Row]` (see `bench.common.Row`); an optional `ORDER` int sorts the modules.
The benchmarks use their own database (`p360_bench`), never the dev database of `make up`.
"""
