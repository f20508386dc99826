"""Python's cyclic garbage collector paused around work that makes many long-lived objects."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["collector_paused"]


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off inside, back as it was after. Work that makes
    many objects living through it — a large market's period cuts, the hundreds of
    thousands of basis statuses HiGHS hands back for a start from the periods — sets off
    full collections of the whole heap while it runs (a quarter of the CPU time of a
    10,000-peer day cleared period by period, a fifth of the start of a 100-peer day with
    batteries). Such work makes no garbage that only the collector frees beyond a few
    pandas and HiGHS objects, and the next collection after it frees those."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
