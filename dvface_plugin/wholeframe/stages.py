"""Wall time per pipeline stage, so a slow job says where its time goes.

Stages nest: the model asks for aligned crops while it runs, so `align` time spent inside a model
call is subtracted from `model` (`exclusive`), and the stages add up to the job's wall time.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")

STAGES = ("decode", "detect", "track", "align", "model", "paste", "encode")


class StageTimer:
    """Accumulates exclusive seconds per stage; the innermost running stage is charged."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self._stack: list[str] = []
        self._since = time.perf_counter()

    def _charge(self, now: float) -> None:
        if self._stack:
            self.seconds[self._stack[-1]] += now - self._since
        self._since = now

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if name not in self.seconds:
            raise ValueError(f"unknown stage {name!r}; stages are {STAGES}")
        self._charge(time.perf_counter())
        self._stack.append(name)
        try:
            yield
        finally:
            self._charge(time.perf_counter())
            self._stack.pop()

    def iterate(self, items: Iterable[T], name: str) -> Iterator[T]:
        """`items`, with the time spent producing each one charged to `name`."""
        it = iter(items)
        while True:
            with self.stage(name):
                item = next(it, _END)
            if item is _END:
                return
            yield item

    def summary(self) -> dict[str, float]:
        """Seconds per stage, plus `total` and the non-model/model ratio (None without model time)."""
        out = {k: round(v, 4) for k, v in self.seconds.items()}
        total = sum(self.seconds.values())
        model = self.seconds["model"]
        out["total"] = round(total, 4)
        out["non_model_over_model"] = round((total - model) / model, 4) if model > 0 else None
        return out


_END = object()
