"""One process pool for the per-file and per-series work of discover and convert."""

from __future__ import annotations

import multiprocessing as mp
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def _context() -> mp.context.BaseContext:
    """``fork`` on Linux (workers start in milliseconds, no re-imports), else ``spawn``."""
    return mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")


def parallel_map(
    fn: Callable[[T], R], items: Iterable[T], workers: int, chunksize: int = 1
) -> Iterator[R]:
    """``map(fn, items)`` in input order, over ``workers`` processes (in-process when 1)."""
    items = list(items)
    if workers <= 1 or len(items) <= 1:
        yield from map(fn, items)
        return
    with _context().Pool(min(workers, len(items))) as pool:
        yield from pool.imap(fn, items, chunksize=chunksize)
