"""A thread-safe LRU cache with a byte budget and one future per key being computed.

Hosts ask for frames from several threads at once; when two of them need the same window, one
computes it and the others wait on its future, so a window is computed at most once while it is
cached. A failed computation reaches every waiter and leaves nothing behind in the cache.
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Callable, Hashable, TypeVar

T = TypeVar("T")

# What the engine stores: a window's restored crops, and its latent + prior features.
KINDS = ("window", "prior")


@dataclass(frozen=True)
class CacheStats:
    windows_computed: int  # backbone runs producing a window's restored crops
    priors_computed: int  # VAE encode + prior encoder runs
    hits: int  # restored-window lookups served without computing (cached or in flight)
    misses: int  # restored-window lookups that computed
    prior_hits: int  # prior-feature lookups served without computing
    bytes_held: int
    peak_bytes: int
    entries: int
    evictions: int

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class WindowCache:
    """LRU over (key -> value) with a byte budget; values too big for the budget are not kept."""

    def __init__(self, budget_bytes: int) -> None:
        if budget_bytes < 0:
            raise ValueError(f"cache budget must be >= 0 bytes, got {budget_bytes}")
        self.budget_bytes = int(budget_bytes)
        self._lock = threading.Lock()
        self._entries: OrderedDict[Hashable, tuple[object, int]] = OrderedDict()
        self._pending: dict[Hashable, Future] = {}
        self._bytes = 0
        self._peak = 0
        self._evictions = 0
        self._counts: Counter[tuple[str, str]] = Counter()

    def get_or_compute(self, key: Hashable, compute: Callable[[], tuple[T, int]], kind: str = "window") -> T:
        """The value for `key`, computed by `compute() -> (value, nbytes)` only if nobody has it.

        Cached values are shared between callers: they must be treated as read-only.
        """
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                self._counts[kind, "hit"] += 1
                return entry[0]  # type: ignore[return-value]
            future = self._pending.get(key)
            owner = future is None
            if owner:
                future = self._pending[key] = Future()
                self._counts[kind, "miss"] += 1
            else:
                self._counts[kind, "hit"] += 1
        if not owner:
            return future.result()
        try:
            value, nbytes = compute()
        except BaseException as exc:
            with self._lock:
                del self._pending[key]
            future.set_exception(exc)
            raise
        with self._lock:
            del self._pending[key]
            self._counts[kind, "computed"] += 1
            self._insert(key, value, int(nbytes))
        future.set_result(value)
        return value

    def _insert(self, key: Hashable, value: object, nbytes: int) -> None:
        if nbytes > self.budget_bytes:
            return
        while self._entries and self._bytes + nbytes > self.budget_bytes:
            _, (_, freed) = self._entries.popitem(last=False)
            self._bytes -= freed
            self._evictions += 1
        self._entries[key] = (value, nbytes)
        self._bytes += nbytes
        self._peak = max(self._peak, self._bytes)

    def clear(self) -> None:
        """Drop every entry (computations in flight still finish and are cached)."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._entries

    def stats(self) -> CacheStats:
        with self._lock:
            c = self._counts
            return CacheStats(
                windows_computed=c["window", "computed"],
                priors_computed=c["prior", "computed"],
                hits=c["window", "hit"],
                misses=c["window", "miss"],
                prior_hits=c["prior", "hit"],
                bytes_held=self._bytes,
                peak_bytes=self._peak,
                entries=len(self._entries),
                evictions=self._evictions,
            )
