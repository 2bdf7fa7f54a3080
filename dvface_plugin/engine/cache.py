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

# What the engine stores: a window's restored crops, its latent + prior features, finished
# (cross-faded, host-dtype) output frames, and single restored rows awaiting a neighbour window.
KINDS = ("window", "prior", "frame", "part")


@dataclass(frozen=True)
class CacheStats:
    windows_computed: int  # backbone runs producing a window's restored crops
    priors_computed: int  # VAE encode + prior encoder runs
    hits: int  # restored-window lookups served without computing (cached or in flight)
    misses: int  # restored-window lookups that computed
    prior_hits: int  # prior-feature lookups served without computing
    frame_hits: int  # finished frames served from the cache
    bytes_held: int
    frame_bytes: int  # the part of bytes_held that is finished frames and single rows
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
        self._entries: OrderedDict[Hashable, tuple[object, int, str]] = OrderedDict()
        self._bulky: OrderedDict[Hashable, None] = OrderedDict()  # the window/prior keys, in the same LRU order
        self._pending: dict[Hashable, Future] = {}
        self._bytes = 0
        self._kind_bytes: Counter[str] = Counter()
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
                self._touch(key)
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
            self._insert(key, value, int(nbytes), kind)
        future.set_result(value)
        return value

    def get(self, key: Hashable, kind: str | None) -> object | None:
        """The cached value for `key` (a hit of `kind`; None: not counted), or None; never waits or computes."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._touch(key)
            if kind is not None:
                self._counts[kind, "hit"] += 1
            return entry[0]

    def put(self, key: Hashable, value: object, nbytes: int, kind: str) -> None:
        """Store a value computed outside `get_or_compute` (read-only from now on); keeps an existing one."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        with self._lock:
            if key not in self._entries:
                self._insert(key, value, int(nbytes), kind)

    def _touch(self, key: Hashable) -> None:
        self._entries.move_to_end(key)
        if key in self._bulky:
            self._bulky.move_to_end(key)

    def _insert(self, key: Hashable, value: object, nbytes: int, kind: str) -> None:
        """Add an entry, evicting least recently used ones: whole windows and priors before frames and
        rows, which are small and final, so a tight budget still remembers every finished frame it can."""
        if nbytes > self.budget_bytes:
            return
        while self._entries and self._bytes + nbytes > self.budget_bytes:
            victim = next(iter(self._bulky)) if self._bulky else next(iter(self._entries))
            _, freed, freed_kind = self._entries.pop(victim)
            self._bulky.pop(victim, None)
            self._bytes -= freed
            self._kind_bytes[freed_kind] -= freed
            self._evictions += 1
        self._entries[key] = (value, nbytes, kind)
        if kind in ("window", "prior"):
            self._bulky[key] = None
        self._bytes += nbytes
        self._kind_bytes[kind] += nbytes
        self._peak = max(self._peak, self._bytes)

    def clear(self) -> None:
        """Drop every entry (computations in flight still finish and are cached)."""
        with self._lock:
            self._entries.clear()
            self._bulky.clear()
            self._bytes = 0
            self._kind_bytes.clear()

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
                frame_hits=c["frame", "hit"],
                bytes_held=self._bytes,
                frame_bytes=self._kind_bytes["frame"] + self._kind_bytes["part"],
                peak_bytes=self._peak,
                entries=len(self._entries),
                evictions=self._evictions,
            )
