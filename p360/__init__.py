"""P360 operations portal."""

import os

# polars' allocator (jemalloc, built with `background_thread:true`) hands freed pages back to the kernel at once
# (`muzzy_decay_ms` 0), so a big import faulted the same memory in again for every batch: 3.1-3.7M page faults and
# 14-18 s of system CPU in a 10M-row import. With lazily freed pages (MADV_FREE) kept for 10 s, jemalloc's default
# before 5.2, the faults fall by ~45 % and the client's CPU by ~11 % (docs/import.md, session 12); the kernel still
# takes those pages back whenever it needs memory. jemalloc reads this when polars is first imported (every entry
# point imports this package first: settings, manage.py commands, workers); a value set by the operator wins.
os.environ.setdefault("_RJEM_MALLOC_CONF", "muzzy_decay_ms:10000")
