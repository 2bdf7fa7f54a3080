"""What every section of a GPU run shares: device, budget, shapes, and the line-per-step log."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch


class Skip(Exception):
    """A section or check that cannot run here; its message is the reason the report gives."""


@dataclass
class Run:
    out: Path
    minutes: float
    smoke: bool
    data: Path | None = None  # a pack (benchmarks/gpu/pack.py) or a prepared folder
    resume: Path | None = None  # weights to continue from (a model folder)
    plan: Path | None = None  # the training plan; None -> models/train/base.json
    started: float = field(default_factory=time.time)

    @property
    def device(self) -> torch.device:
        return torch.device("cuda" if torch.cuda.is_available() and not self.smoke else "cpu")

    def remaining(self) -> float:
        """Seconds left of the budget."""
        return 60 * self.minutes - (time.time() - self.started)

    def log(self, message: str) -> None:
        print(f"[{time.time() - self.started:6.1f} s] {message}", flush=True)

    # shapes: the real ones on a GPU, small ones for the CPU rehearsal
    @property
    def window(self) -> tuple[int, int]:
        """(frames, side) of the correctness window and the tiny speed test."""
        return (5, 64) if self.smoke else (17, 512)

    @property
    def paper_clip(self) -> tuple[int, int]:
        """(frames, side) of the paper's clip: 81 frames at 512 px."""
        return (5, 64) if self.smoke else (81, 512)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device, repeat: int = 3, warmup: int = 1) -> float:
    """Median seconds of `fn()` after warm-up: CUDA events on a GPU, the wall clock on a CPU."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(device)
            times.append(start.elapsed_time(end) / 1000)
        else:
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
    return sorted(times)[len(times) // 2]


def guarded(fn, *args) -> dict:
    """`fn(*args)`'s result dict, or a skipped / failed entry with the reason: one check's failure
    must not cost the rest of the run."""
    try:
        return fn(*args)
    except Skip as exc:
        return {"status": "skipped", "reason": str(exc)}
    except Exception as exc:  # noqa: BLE001 - the report records it and the run goes on
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
