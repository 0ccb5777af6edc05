"""Packed bit masks for the builder's previews (issue 17): one bit per person, 64 people per uint64 word.

A 10M-person mask is 1.25 MB, so AND/OR/NOT over a whole tree and every per-node count (a popcount) take
microseconds, and the leaf memo holds a bit per person. Kernels (code sets, lookups) are computed straight from the
columns' Arrow buffers with numpy, in row slices of SLICE rows (a slice's temporaries stay in the CPU cache and are
reused, instead of a fresh 10-40 MB array per operation), the slices spread over a thread pool (numpy releases the
GIL on these loops).

Layout: bit i of the mask is bit (i % 64) of word i // 64 (Arrow's little-endian bitmap order, so an Arrow validity
or Boolean buffer is a mask as it is); the bits past the last row are always zero.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

SLICE = 1 << 18  # rows per slice: a multiple of 64 (slices fill whole words); 256k codes are 0.25-1 MB

Words = np.ndarray  # uint64, ceil(n / 64) words


def words_for(n: int) -> int:
    return (n + 63) >> 6


def zeros(n: int) -> Words:
    return np.zeros(words_for(n), dtype=np.uint64)


def ones(n: int) -> Words:
    words = np.full(words_for(n), np.uint64(0xFFFF_FFFF_FFFF_FFFF), dtype=np.uint64)
    _clear_tail(words, n)
    return words


def _clear_tail(words: Words, n: int) -> None:
    if n & 63 and words.size:
        words[-1] &= np.uint64((1 << (n & 63)) - 1)


def count(words: Words) -> int:
    # A popcount per word (uint8) summed in uint32 (exact below 2**32 people; a uint64 sum is 1.5x slower: a preview
    # counts 20-30 masks, 0.08 against 0.12 ms each at 10M)
    per_word = np.bitwise_count(words)
    return int(np.add.reduce(per_word, dtype=np.uint32 if words.size < (1 << 26) else np.uint64))


def invert(words: Words, n: int) -> Words:
    out = np.invert(words)
    _clear_tail(out, n)
    return out


def from_bitmap(buffer: pa.Buffer, offset: int, n: int) -> Words:
    """An Arrow bitmap (values of a Boolean array, or a validity buffer) from bit `offset`, as words."""
    out = np.zeros(words_for(n), dtype=np.uint64)
    if n == 0:
        return out
    raw = np.frombuffer(buffer, dtype=np.uint8)
    target = out.view(np.uint8)
    if offset & 7 == 0:
        target[: (n + 7) >> 3] = raw[offset >> 3 : (offset >> 3) + ((n + 7) >> 3)]
    else:  # a slice not on a byte boundary (not seen for the cache's columns): unpack and repack
        bits = np.unpackbits(raw, bitorder="little")[offset : offset + n]
        packed = np.packbits(bits, bitorder="little")
        target[: packed.size] = packed
    _clear_tail(out, n)
    return out


def from_series(series: pl.Series) -> Words:
    """A Boolean series as words; a missing value is false (what fill_null(False) gives)."""
    array = series.to_arrow()
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    n = len(array)
    if pa.types.is_null(array.type):
        return zeros(n)
    buffers = array.buffers()
    words = from_bitmap(buffers[1], array.offset, n)
    if array.null_count and buffers[0] is not None:
        words &= from_bitmap(buffers[0], array.offset, n)
    return words


def validity(series: pl.Series) -> Words | None:
    """The rows with a value, as words (None: every row has one)."""
    if not series.null_count():
        return None
    return from_series(series.is_not_null())


def to_series(words: Words, n: int, name: str = "") -> pl.Series:
    """The words as a polars Boolean series without nulls (zero-copy: the series reads the words' buffer)."""
    array = pa.BooleanArray.from_buffers(pa.bool_(), n, [None, pa.py_buffer(words)])
    return pl.Series(name, array)


def column(series: pl.Series, *, enum: bool = False) -> tuple[np.ndarray, Words | None]:
    """A numeric column's values (an Enum's physical codes with `enum`) as a zero-copy numpy view (arbitrary under
    nulls) and its validity (None: no nulls), both read from one Arrow export (polars' own Series methods are lazy
    plans, a fraction of a millisecond each)."""
    physical = series.to_physical() if enum else series
    if physical.n_chunks() > 1:
        physical = physical.rechunk()
    array = physical.to_arrow()
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    n = len(array)
    buffers = array.buffers()
    dtype = np.dtype(array.type.to_pandas_dtype())
    values = np.frombuffer(buffers[1], dtype=dtype)[array.offset : array.offset + n]
    valid = from_bitmap(buffers[0], array.offset, n) if array.null_count and buffers[0] is not None else None
    return values, valid


def positions(words: Words, limit: int) -> list[int]:
    """The first `limit` set bits' row positions."""
    if limit <= 0:
        return []
    found: list[int] = []
    for word in np.flatnonzero(words):
        value = int(words[word])
        while value and len(found) < limit:
            low = value & -value
            found.append((int(word) << 6) + low.bit_length() - 1)
            value ^= low
        if len(found) >= limit:
            break
    return found


Test = Callable[[np.ndarray], np.ndarray]  # the values of a slice of rows -> a bool per row


@dataclass
class Kernel:
    """A leaf computed with numpy: `test` over the values, negated when `negate`, then AND the rows with a value."""

    values: np.ndarray
    test: Test
    valid: Words | None = None
    negate: bool = False


def run_kernels(kernels: list[Kernel], n: int, executor: Executor | None, threads: int) -> list[Words]:
    """Every kernel's mask: the rows cut in slices of SLICE rows, the slices shared among `threads` tasks."""
    outputs = [np.zeros(words_for(n), dtype=np.uint64) for _ in kernels]
    if not kernels or n == 0:
        return outputs
    starts = list(range(0, n, SLICE))

    def work(part: list[int]) -> None:
        for kernel, out in zip(kernels, outputs, strict=True):
            target = out.view(np.uint8)
            for start in part:
                hit = kernel.test(kernel.values[start : start + SLICE])
                if kernel.negate:
                    np.logical_not(hit, out=hit)
                packed = np.packbits(hit, bitorder="little")
                target[start >> 3 : (start >> 3) + packed.size] = packed

    tasks = max(1, min(threads, len(starts)))
    if executor is None or tasks == 1:
        work(starts)
    else:  # contiguous runs of slices per task (each task writes its own words)
        size = -(-len(starts) // tasks)
        futures = [executor.submit(work, starts[i : i + size]) for i in range(0, len(starts), size)]
        for future in futures:
            future.result()
    for kernel, out in zip(kernels, outputs, strict=True):
        if kernel.negate:
            _clear_tail(out, n)  # (packbits pads a partial last byte with zeros; whole words past n stay zero)
        if kernel.valid is not None:
            out &= kernel.valid
    return outputs
