"""Garbage collection tuned for a serving process (the node's and its sequencer's)."""

from __future__ import annotations

import gc

YOUNG_COLLECTION_THRESHOLD = 50_000
"""Allocations between collections of the youngest generation (Python's default: 700)."""


def tune_garbage_collection() -> None:
    """Collect garbage less often in a serving process.

    Every entry allocates a few hundred short-lived objects (messages, records,
    rows), so at Python's default threshold the collector runs every few entries
    and each older-generation pass walks the long-lived heap (registry caches,
    gRPC, modules), about a tenth of the node's time under load. Objects that
    exist once the node has started are frozen out of collection; the young
    generation is collected less often. Memory held by cycles waiting for a
    collection stays small: one young generation of allocations.
    """
    gc.collect()  # start-up's own garbage is not frozen in
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, middle, old)
