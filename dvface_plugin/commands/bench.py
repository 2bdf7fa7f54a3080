"""`dvface bench`: engine benchmarks. `dvface bench cache` replays host access patterns.

The cache benchmark drives a `FaceTrackSession` over a synthetic clip with the tiny preset
(random weights: it measures the engine, not the restoration) the way hosts do: in order, in
reverse, out of order from several threads, scrubbing, and split across farm machines, and
checks every frame against a sequential render of the same clip.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import resource
import sys
import threading
import time
from typing import Callable, Iterable

import numpy as np

from ..errors import InputError

PATTERNS = ("sequential", "reverse", "random", "shuffle", "scrub", "split:K")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="benchmarks of the engine", description=__doc__)
    sub = parser.add_subparsers(dest="bench", required=True, metavar="BENCHMARK")
    cache = sub.add_parser(
        "cache",
        help="windows computed, hit rate, memory and bit-identity under host access patterns",
        description="Replay a host access pattern on a synthetic clip with the tiny preset (random weights).",
    )
    cache.add_argument("--frames", type=int, default=200, help="clip length (default 200)")
    cache.add_argument(
        "--pattern",
        default="sequential",
        help="sequential | reverse | random (out of order within --spread frames, as concurrent hosts ask) | "
        "shuffle (uniformly random order) | scrub (back and forth over short spans) | "
        "split:K (K ranges, each by its own session, as a farm)",
    )
    cache.add_argument("--threads", type=int, default=1, help="threads requesting frames concurrently")
    cache.add_argument("--budget-windows", type=float, default=None, help="cache budget in windows (default: all)")
    cache.add_argument("--spread", type=int, default=32, help="reorder distance of --pattern random (frames)")
    cache.add_argument("--crop", type=int, default=32, help="crop side in pixels (default 32, for speed)")
    cache.add_argument("--window", type=int, default=None, help="window length (default: the preset's)")
    cache.add_argument("--overlap", type=int, default=None, help="window overlap (default: the preset's)")
    cache.add_argument("--seed", type=int, default=0)
    cache.add_argument("--no-verify", action="store_true", help="skip the sequential reference render")
    cache.add_argument("--json", action="store_true", help="print one JSON object")
    cache.set_defaults(func=run_cache)
    from .bench_pipeline import add_parser as add_pipeline_bench

    add_pipeline_bench(sub)


def access_order(pattern: str, n: int, seed: int = 0, spread: int = 32) -> list[list[int]]:
    """The frames a host asks for, in the order it asks (every frame at least once).

    One list per session: a single one, except K for split:K.
    """
    rng = np.random.default_rng(seed)
    if pattern == "sequential":
        return [list(range(n))]
    if pattern == "reverse":
        return [list(range(n - 1, -1, -1))]
    if pattern == "random":
        return [[int(i) for i in np.argsort(np.arange(n) + rng.uniform(0, spread, n), kind="stable")]]
    if pattern == "shuffle":
        return [[int(i) for i in rng.permutation(n)]]
    if pattern == "scrub":
        order: list[int] = []
        pos = 0
        while pos < n:
            span = int(rng.integers(6, 25))
            end = min(n, pos + span)
            order += range(pos, end)  # play
            back = int(rng.integers(2, span))
            order += range(end - 1, max(0, end - back) - 1, -1)  # scrub back
            pos += span - int(rng.integers(0, span // 2))  # net forward, no gap
        return [order]
    if pattern.startswith("split:"):
        try:
            k = int(pattern.split(":", 1)[1])
        except ValueError:
            k = 0
        if not 1 <= k <= n:
            raise InputError(f"--pattern {pattern}: K must be an integer in [1, {n}]")
        bounds = [round(i * n / k) for i in range(k + 1)]
        return [list(range(a, b)) for a, b in zip(bounds, bounds[1:])]
    raise InputError(f"unknown --pattern {pattern!r}; choose one of {', '.join(PATTERNS)}")


def synthetic_crop(seed: int, size: int) -> Callable[[int], np.ndarray]:
    """Frame n of a deterministic synthetic clip, generated on request (memory independent of length)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size

    def get_crop(n: int) -> np.ndarray:
        noise = np.random.default_rng([seed, n]).integers(0, 48, (size, size, 3))
        base = 128 + 80 * np.sin(6.0 * xx + 0.05 * n)[..., None] * np.array([1.0, 0.7, 0.4]) + 40 * yy[..., None]
        return np.clip(base + noise, 0, 255).astype(np.uint8)

    return get_crop


def _digest(frame: np.ndarray) -> bytes:
    return hashlib.blake2b(frame.tobytes(), digest_size=16).digest()


def render(session, order: Iterable[int], threads: int, digests: list) -> None:
    """Ask `session` for each frame of `order` from `threads` threads; record per-frame digests."""
    it = iter(order)
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker() -> None:
        while not errors:
            with lock:
                n = next(it, None)
            if n is None:
                return
            try:
                digest = _digest(session.frame(n))
            except BaseException as exc:  # re-raised in the caller's thread
                errors.append(exc)
                return
            with lock:
                if digests[n] is not None and digests[n] != digest:
                    errors.append(AssertionError(f"frame {n} changed between two requests"))
                digests[n] = digest

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if errors:
        raise errors[0]


def run_cache(args: argparse.Namespace) -> int:
    import torch

    from ..engine import FaceTrackSession, WindowCache
    from ..model.config import DVFaceConfig
    from ..model.dvface import DVFace
    from ..runtime.torch_restorer import Restorer

    if args.frames < 1 or args.threads < 1 or args.crop < 1 or args.spread < 0:
        raise InputError("--frames, --threads and --crop must be positive, --spread at least 0")
    if args.budget_windows is not None and args.budget_windows < 0:
        raise InputError(f"--budget-windows must be >= 0, got {args.budget_windows}")
    orders = access_order(args.pattern, args.frames, args.seed, args.spread)
    torch.manual_seed(0)
    restorer = Restorer(DVFace(DVFaceConfig.preset("tiny")), device="cpu", precision="fp32")
    get_crop = synthetic_crop(args.seed, args.crop)
    opts = dict(crop_size=args.crop, window=args.window, overlap=args.overlap)

    # One full window, computed once on a scratch cache: its size sets the budget, and it warms up torch.
    with FaceTrackSession(restorer, get_crop, args.frames, **opts) as probe:
        probe.frame(0)
        window_bytes = probe.stats().bytes_held - probe.stats().frame_bytes
        n_windows = len(probe.grid.windows)
    budget = math.ceil(window_bytes * (n_windows if args.budget_windows is None else args.budget_windows))

    reference = None
    if not args.no_verify:
        reference = [None] * args.frames
        with FaceTrackSession(restorer, get_crop, args.frames, cache=WindowCache(window_bytes * n_windows), **opts) as s:
            render(s, range(args.frames), 1, reference)

    digests: list = [None] * args.frames
    totals = dict(windows_computed=0, priors_computed=0, hits=0, misses=0, frame_hits=0, evictions=0, peak_bytes=0)
    start = time.perf_counter()
    for order in orders:
        with FaceTrackSession(restorer, get_crop, args.frames, cache=WindowCache(budget), **opts) as s:
            render(s, order, args.threads, digests)
            stats = s.stats()
        for key in totals:
            value = getattr(stats, key)
            totals[key] = max(totals[key], value) if key == "peak_bytes" else totals[key] + value
    wall = time.perf_counter() - start

    lookups = totals["hits"] + totals["misses"]
    result = {
        "pattern": args.pattern,
        "frames": args.frames,
        "threads": args.threads,
        "window": probe.grid.window,
        "overlap": probe.grid.overlap,
        "grid_windows": n_windows,
        "budget_windows": budget / window_bytes,
        "budget_bytes": budget,
        **totals,
        "windows_per_frame": totals["windows_computed"] / args.frames,
        "windows_vs_sequential": totals["windows_computed"] / n_windows,
        "extra_windows": totals["windows_computed"] - n_windows,
        "hit_rate": totals["hits"] / lookups if lookups else 0.0,
        "peak_rss_mb": _peak_rss_mb(),
        "wall_s": wall,
        "bit_identical": None if reference is None else digests == reference,
    }
    print_result(result, args.json)
    if result["bit_identical"] is False:
        print("bench cache: frames differ from the sequential render", file=sys.stderr)
        return 1
    return 0


def _peak_rss_mb() -> float:
    """Peak resident set size of this process (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


def print_result(result: dict, as_json: bool) -> None:
    """A benchmark's figures: one JSON object, or one aligned line per figure."""
    if as_json:
        print(json.dumps(result))
        return
    width = max(map(len, result))
    for key, value in result.items():
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        print(f"{key:>{width}}: {text}")
