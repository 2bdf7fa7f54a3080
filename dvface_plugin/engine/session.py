"""A restoration session over one aligned face track, answering frame requests in any order.

Frame n is a fixed cross-fade of the grid windows covering it (see `windows`), each window
computed from exactly its own input frames, so the result is the same whatever was asked before,
from however many threads, and whatever the cache kept. Windows are cached by a digest of their
input bytes and every setting that changes them: a changed input is a different key, and a
`prior_scale` change finds the window's latent and prior features and re-runs only the backbone.
Finished frames (and single rows waiting for a neighbour window) are cached too, and outlive the
bulky windows they came from, so out-of-order requests do not restore a window twice.
"""

from __future__ import annotations

import hashlib
import math
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import numpy as np

from ..errors import DVFaceError, InputError
from ..runtime.pixels import SUPPORTED_DTYPES, from_model
from .cache import CacheStats, WindowCache
from .windows import Window, WindowGrid

if TYPE_CHECKING:
    from ..runtime.base import PriorState, TrackRestorer

DEFAULT_CACHE_BYTES = 1 << 30


class SessionClosedError(DVFaceError):
    """A frame was asked of a session after `close()`."""


class FrameRangeError(InputError, IndexError):
    """A frame number outside the session's clip."""


class FaceTrackSession:
    """Restores frames of one aligned face track on request.

    get_crop(n) -> (H, W, 3) RGB crop (uint8, uint16 or float32 in [0, 1]) for host frame n, or
    get_crops(start, stop) -> sequence of crops for frames [start, stop). Host frame numbers run
    from `first_frame` to `first_frame + n_frames - 1`; `n_frames` is the whole clip's length
    even when this session only renders part of it (a farm split), so the window grid is global.
    """

    def __init__(
        self,
        restorer: TrackRestorer,
        get_crop: Callable[[int], np.ndarray] | None,
        n_frames: int,
        *,
        get_crops: Callable[[int, int], Sequence[np.ndarray] | np.ndarray] | None = None,
        first_frame: int = 0,
        window: int | None = None,
        overlap: int | None = None,
        prior_scale: float = 1.0,
        crop_size: int | tuple[int, int] | None = None,
        cache: WindowCache | None = None,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        on_window: Callable[[int], None] | None = None,
        ahead: int = 0,
        prefetch: int = 0,
        immutable_input: bool = False,
    ) -> None:
        if (get_crop is None) == (get_crops is None):
            raise ValueError("pass exactly one of get_crop and get_crops")
        for name, value in (("ahead", ahead), ("prefetch", prefetch)):
            if not (isinstance(value, int) and value >= 0):
                raise ValueError(f"{name} must be a whole number of windows >= 0, got {value!r}")
        cfg = restorer.config
        try:
            self.grid = WindowGrid(
                int(n_frames),
                cfg.window if window is None else int(window),
                cfg.overlap if overlap is None else int(overlap),
                cfg.vae_temporal_stride,
            )
        except ValueError as exc:
            raise InputError(str(exc)) from exc
        size = cfg.crop_size if crop_size is None else crop_size
        self.crop_shape = (size, size, 3) if isinstance(size, int) else (int(size[0]), int(size[1]), 3)
        self.restorer = restorer
        self.first_frame = int(first_frame)
        self.prior_scale = _check_scale(prior_scale)
        self.cache = cache if cache is not None else WindowCache(cache_bytes)
        self._owns_cache = cache is None
        self._get_crop = get_crop
        self._get_crops = get_crops
        self._on_window = on_window  # called with a window's frame count each time the model runs one
        # Windows `iter_frames` keeps restoring in background threads, from the one being read on:
        # set to the restorer's `streams`, every model copy stays busy, and the model runs while the
        # caller pastes and writes. 0: the reading thread runs the model itself. A window whose
        # frames the cache already holds is not restored ahead.
        self._ahead = ahead
        # Windows `prefetch` starts restoring into the cache after those a request needs, for hosts
        # that ask for one frame at a time (VapourSynth): the request's own thread restores its
        # window, the prefetched ones run beside it on the restorer's other streams.
        self._prefetch = prefetch
        self._prefetched: set[tuple[int, float]] = set()  # (window index, prior scale) started once
        self._prefetcher: ThreadPoolExecutor | None = None
        # The host's frames never change while the session lives (a VapourSynth clip): a window's
        # crops are read once for their digest, then again only if the model must run on them, so a
        # request for one frame reads no crops at all once its windows are known.
        self._immutable = immutable_input
        self._weights = [self.grid.weights(i) for i in range(len(self.grid.windows))]
        self._dtype: np.dtype | None = None
        self._lock = threading.Lock()
        self._seen: dict[int, str] = {}  # window index -> digest of its input when last fetched
        self._closed = False

    @property
    def n_frames(self) -> int:
        return self.grid.n_frames

    @property
    def closed(self) -> bool:
        return self._closed

    # --- requests --------------------------------------------------------------------------

    def frame(self, n: int, *, prior_scale: float | None = None) -> np.ndarray:
        """Restored crop of host frame n, in the input's dtype."""
        return self.frames(n, n + 1, prior_scale=prior_scale)[0]

    def frames(self, start: int, stop: int, *, prior_scale: float | None = None) -> np.ndarray:
        """Restored crops of host frames [start, stop) as one (stop - start, H, W, 3) array."""
        out = None
        for i, frame in enumerate(self.iter_frames(start, stop, prior_scale=prior_scale)):
            if out is None:
                out = np.empty((stop - start, *frame.shape), frame.dtype)
            out[i] = frame
        return out

    def iter_frames(
        self, start: int | None = None, stop: int | None = None, *, prior_scale: float | None = None
    ) -> Iterator[np.ndarray]:
        """Restored crops of host frames [start, stop) one by one, holding at most two windows.

        Arguments are checked when called, not at the first `next()`.
        """
        self._check_open()
        first = self.first_frame
        start = first if start is None else int(start)
        stop = first + self.n_frames if stop is None else int(stop)
        if not first <= start < stop <= first + self.n_frames:
            raise FrameRangeError(
                f"frames [{start}, {stop}) are outside this track's frames "
                f"[{first}, {first + self.n_frames}) (n_frames={self.n_frames})"
            )
        scale = self.prior_scale if prior_scale is None else _check_scale(prior_scale)
        return self._iter(start - first, stop - first, scale)

    def _iter(self, start: int, stop: int, scale: float) -> Iterator[np.ndarray]:
        # window index -> (crops, or None until needed with immutable input; digest) while a frame needs it
        inputs: dict[int, tuple[np.ndarray | None, str]] = {}
        outputs: dict[int, np.ndarray] = {}  # window index -> restored window while a frame needs it
        pending: dict[int, Future] = {}  # window index -> its restoration running ahead
        pool = ThreadPoolExecutor(self._ahead, thread_name_prefix="dvface-window") if self._ahead else None
        last_window = self.grid.windows_for(start, stop)[-1].index
        try:
            for f in range(start, stop):
                self._check_open()
                covering = self.grid.covering(f)
                for win in covering:
                    if win.index not in inputs:
                        self._take_input(win, inputs)
                if pool is not None:  # as many windows in flight as threads, the oldest first
                    for index in range(covering[0].index, min(covering[-1].index + self._ahead - 1, last_window) + 1):
                        if index not in inputs:
                            self._take_input(self.grid.windows[index], inputs)
                        if index in pending or index in outputs or not self._needed(index, f, stop, inputs, scale):
                            continue
                        crops = self._crops(self.grid.windows[index], inputs)  # read here, not in the pool
                        pending[index] = pool.submit(self._window_output, _given(crops), inputs[index][1], scale)
                digests = {w.index: inputs[w.index][1] for w in covering}
                dtype = self._dtype  # every crop read so far has it
                key = self._frame_key(f, digests, scale)
                frame = self.cache.get(key, kind="frame")
                if frame is None:
                    rows = [self._row(f, win, inputs, outputs, pending, dtype, scale) for win in covering]
                    frame = self._blend(f, rows, dtype)
                    self.cache.put(key, frame, frame.nbytes, kind="frame")
                for index in [i for i in inputs if self.grid.windows[i].stop <= f + 1]:
                    del inputs[index]
                    outputs.pop(index, None)
                    pending.pop(index, None)
                yield frame.copy()
        finally:
            if pool is not None:
                for running in pending.values():
                    running.cancel()
                pool.shutdown(wait=True)  # a model call cannot be interrupted: let the running ones end

    def _needed(
        self, index: int, f: int, stop: int, inputs: dict[int, tuple[np.ndarray | None, str]], scale: float
    ) -> bool:
        """Whether a frame from f on needs window `index` restored: neither it nor the window's row of
        it is cached. The frames' keys need their other windows' digests: their crops are read now."""
        if not self.cache.budget_bytes:  # nothing is cached: every window is
            return True
        win = self.grid.windows[index]
        for g in range(max(f, win.start), min(stop, win.stop)):
            covering = self.grid.covering(g)
            for w in covering:
                if w.index not in inputs:
                    self._take_input(w, inputs)
            key = self._frame_key(g, {w.index: inputs[w.index][1] for w in covering}, scale)
            if key not in self.cache and ("part", inputs[index][1], g - win.start, scale) not in self.cache:
                return True
        return False

    def _row(
        self,
        f: int,
        win: Window,
        inputs: dict[int, tuple[np.ndarray | None, str]],
        outputs: dict[int, np.ndarray],
        pending: dict[int, Future],
        dtype: np.dtype,
        scale: float,
    ) -> np.ndarray:
        """Window `win`'s restored crop of frame f: from the window at hand, a cached row, or the
        window restored now (or awaited, when it was restoring ahead)."""
        if win.index not in outputs:
            row = self.cache.get(("part", inputs[win.index][1], f - win.start, scale), kind="part")
            if row is not None:
                return row
            running = pending.pop(win.index, None)
            if running is None:
                crops = partial(self._crops, win, inputs)
                outputs[win.index] = self._window_output(crops, inputs[win.index][1], scale)
            else:
                outputs[win.index] = running.result()
            if self.cache.budget_bytes:  # a streaming pass (no cache) asks for each frame once
                self._harvest(win, outputs, inputs, dtype, scale)
        return outputs[win.index][f - win.start]

    def _take_input(self, win: Window, inputs: dict[int, tuple[np.ndarray | None, str]]) -> str:
        """Window `win`'s digest into `inputs` with its crops, fetched in the reading thread (crop
        sources need not be thread-safe); with immutable input, a digest already known and no crops."""
        known = self._seen.get(win.index) if self._immutable else None
        if known is not None:
            inputs[win.index] = (None, known)
            return known
        crops = self._fetch(win)
        inputs[win.index] = (crops, self._digest(crops))
        self._seen[win.index] = inputs[win.index][1]
        return inputs[win.index][1]

    def _crops(self, win: Window, inputs: dict[int, tuple[np.ndarray | None, str]]) -> np.ndarray:
        """Window `win`'s crops for the model: those taken with its digest, or read now."""
        crops, digest = inputs[win.index]
        if crops is None:
            crops = self._fetch(win)
            inputs[win.index] = (crops, digest)
        return crops

    def _frame_key(self, f: int, digests: dict[int, str], scale: float) -> tuple:
        """Everything finished frame f depends on: its windows' input digests, its place and weight in each."""
        return ("frame", scale, tuple(
            (digests[w.index], f - w.start, float(self._weights[w.index][f - w.start])) for w in self.grid.covering(f)
        ))

    def _blend(self, f: int, rows: list[np.ndarray], dtype: np.dtype) -> np.ndarray:
        """Frame f from its covering windows' rows (in `grid.covering` order), in float64, read-only."""
        acc = None
        for win, row in zip(self.grid.covering(f), rows):
            term = row.astype(np.float64) * self._weights[win.index][f - win.start]
            acc = term if acc is None else acc + term
        frame = from_model(acc, dtype)
        frame.flags.writeable = False  # shared by every reader of the cache
        return frame

    def _harvest(
        self,
        win: Window,
        outputs: dict[int, np.ndarray],
        inputs: dict[int, tuple[np.ndarray | None, str]],
        dtype: np.dtype,
        scale: float,
    ) -> None:
        """Cache what a just-restored window settles, so later requests need not restore it again.

        Every frame of the window whose other covering window is at hand (restored in this call, or
        its row cached) is finished and cached; for the rest the window's own row is cached, to be
        cross-faded once the neighbour is restored. Frames and rows are far smaller than a window's
        cache entries, which is what keeps out-of-order requests cheap under a tight budget.
        """
        y, digest = outputs[win.index], inputs[win.index][1]
        for f in range(win.start, win.stop):
            digests, rows = {}, []
            for w in self.grid.covering(f):
                if w.index == win.index:
                    d, row = digest, y[f - win.start]
                elif w.index in outputs:  # restored in this call: its digest is this call's, not `_seen`'s
                    d, row = inputs[w.index][1], outputs[w.index][f - w.start]
                else:
                    d = self._seen.get(w.index)
                    row = None if d is None else self.cache.get(("part", d, f - w.start, scale), kind=None)
                if row is None:
                    part = y[f - win.start].copy()
                    part.flags.writeable = False
                    self.cache.put(("part", digest, f - win.start, scale), part, part.nbytes, kind="part")
                    break
                digests[w.index] = d
                rows.append(row)
            else:
                frame = self._blend(f, rows, dtype)
                self.cache.put(self._frame_key(f, digests, scale), frame, frame.nbytes, kind="frame")

    def model_frames(self, start: int | None = None, stop: int | None = None) -> int:
        """Crops the model runs to render host frames [start, stop) without a cache: the length of
        every window they touch. What a progress bar counts, since windows, not frames, cost time."""
        first = self.first_frame
        start = first if start is None else start
        stop = first + self.n_frames if stop is None else stop
        return sum(w.stop - w.start for w in self.grid.windows_for(start - first, stop - first))

    def input_span(self, start: int, stop: int) -> tuple[int, int]:
        """Host frames [lo, hi) whose crops are read to render host frames [start, stop)."""
        lo, hi = self.grid.input_span(start - self.first_frame, stop - self.first_frame)
        return lo + self.first_frame, hi + self.first_frame

    def prefetch_span(self, n: int, *, prior_scale: float | None = None) -> tuple[int, int] | None:
        """Host frames [lo, hi) whose crops `prefetch(n)` reads, or None when it would start nothing."""
        todo = self._to_prefetch(n, self.prior_scale if prior_scale is None else _check_scale(prior_scale))
        if not todo:
            return None
        return self.grid.windows[todo[0]].start + self.first_frame, self.grid.windows[todo[-1]].stop + self.first_frame

    def prefetch(self, n: int, *, prior_scale: float | None = None) -> None:
        """Start restoring the `prefetch` windows after host frame n's own in background threads.

        Each lands in the cache, where the requests for its frames find it, or wait for it while it
        runs, so a host asking frame by frame keeps every stream of the restorer busy across window
        boundaries. A window is started once per session, and not at all when the cache holds it or
        has no budget to. Its crops are read here, in the caller's thread: frames `prefetch_span(n)`;
        crops the session refuses are left for the requests of their own frames to report.
        """
        self._check_open()
        scale = self.prior_scale if prior_scale is None else _check_scale(prior_scale)
        for index in self._to_prefetch(n, scale):
            with self._lock:
                if (index, scale) in self._prefetched:
                    continue
                self._prefetched.add((index, scale))
                if self._prefetcher is None:
                    self._prefetcher = ThreadPoolExecutor(self._prefetch, thread_name_prefix="dvface-prefetch")
            win, inputs = self.grid.windows[index], {}
            try:
                digest = self._take_input(win, inputs)
                if ("window", digest, scale) in self.cache:
                    continue
                crops = self._crops(win, inputs)
            except DVFaceError:  # bad input there fails the requests for those frames, not this one
                continue
            self._prefetcher.submit(self._window_output, _given(crops), digest, scale)

    def _to_prefetch(self, n: int, scale: float) -> list[int]:
        """Windows after host frame n's that `prefetch` has yet to start."""
        if not self._prefetch or not self.cache.budget_bytes:
            return []
        f = n - self.first_frame
        if not 0 <= f < self.n_frames:
            raise FrameRangeError(f"frame {n} is outside this track's frames [{self.first_frame}, "
                                  f"{self.first_frame + self.n_frames})")
        last = self.grid.covering(f)[-1].index
        stop = min(last + self._prefetch, len(self.grid.windows) - 1) + 1
        with self._lock:
            return [i for i in range(last + 1, stop) if (i, scale) not in self._prefetched]

    def stats(self) -> CacheStats:
        return self.cache.stats()

    def close(self) -> None:
        """Refuse further requests, let prefetched windows already running end, and release this
        session's own cache."""
        self._closed = True
        if self._prefetcher is not None:
            self._prefetcher.shutdown(wait=True, cancel_futures=True)
        if self._owns_cache:
            self.cache.clear()

    def __enter__(self) -> "FaceTrackSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- windows ---------------------------------------------------------------------------

    def _window_output(self, crops: Callable[[], np.ndarray], digest: str, scale: float) -> np.ndarray:
        """Restored crops of one window (float32, read-only), from the cache or computed once;
        `crops()` gives its input, called only to compute it, in the calling thread."""
        restorer = self.restorer

        def compute_priors() -> tuple[PriorState, int]:
            state = restorer.encode(crops())
            return state, state.nbytes

        def compute_window() -> tuple[np.ndarray, int]:
            state = self.cache.get_or_compute(("prior", digest), compute_priors, kind="prior")
            y = restorer.decode(state, scale)
            y.flags.writeable = False  # shared by every reader of the cache
            if self._on_window is not None:
                self._on_window(len(y))
            return y, y.nbytes

        return self.cache.get_or_compute(("window", digest, scale), compute_window, kind="window")

    def _digest(self, crops: np.ndarray) -> str:
        h = hashlib.blake2b(digest_size=20)
        h.update(f"{self.restorer.identity}|{crops.dtype.str}|{crops.shape}".encode())
        h.update(np.ascontiguousarray(crops).data)
        return h.hexdigest()

    def _fetch(self, win: Window) -> np.ndarray:
        """The window's input crops (T, H, W, 3), validated; nothing is cached if they are bad."""
        a, b = win.start + self.first_frame, win.stop + self.first_frame
        try:
            if self._get_crops is not None:
                got = self._get_crops(a, b)
                if len(got) != win.length:
                    raise InputError(
                        f"get_crops({a}, {b}) returned {len(got)} crops, expected {win.length}: "
                        f"the crop source does not have the {self.n_frames} frames the session was given"
                    )
                crops = [np.asarray(c) for c in got]
            else:
                crops = [np.asarray(self._get_crop(n)) for n in range(a, b)]
        except DVFaceError:
            raise
        except Exception as exc:
            raise InputError(
                f"could not read crops of frames [{a}, {b}) ({type(exc).__name__}: {exc}); the crop source "
                f"must provide frames {self.first_frame}..{self.first_frame + self.n_frames - 1}"
            ) from exc
        for n, crop in zip(range(a, b), crops):
            self._check_crop(n, crop)
        return np.stack(crops)

    def _check_crop(self, n: int, crop: np.ndarray) -> None:
        if crop.shape != self.crop_shape:
            raise InputError(
                f"frame {n}: crop has shape {crop.shape}, expected {self.crop_shape} "
                "(aligned RGB face crops of the session's crop size)"
            )
        if crop.dtype not in SUPPORTED_DTYPES:
            raise InputError(f"frame {n}: crop dtype {crop.dtype} unsupported; use uint8, uint16 or float32")
        with self._lock:
            if self._dtype is None:
                self._dtype = crop.dtype
        if crop.dtype != self._dtype:
            raise InputError(f"frame {n}: crop dtype {crop.dtype} differs from the track's {self._dtype}")
        if crop.dtype.kind == "f":
            if not np.isfinite(crop).all():
                raise InputError(f"frame {n}: crop contains NaN or Inf values; clean the input before restoring")
            if crop.min() < 0.0 or crop.max() > 1.0:
                raise InputError(
                    f"frame {n}: float crop values must lie in [0, 1], found [{crop.min():.3g}, {crop.max():.3g}]; "
                    "convert scene-linear input to display RGB and clip it first"
                )

    def _check_open(self) -> None:
        if self._closed:
            raise SessionClosedError("this session is closed; open a new one to restore more frames")


def _given(crops: np.ndarray) -> Callable[[], np.ndarray]:
    """Crops already read, as `_window_output` takes them."""
    return lambda: crops


def _check_scale(scale: float) -> float:
    scale = float(scale)
    if not (math.isfinite(scale) and 0.0 <= scale <= 1.0):
        raise InputError(f"prior_scale (strength) must be in [0, 1], got {scale}")
    return scale


def restore_track(restorer: TrackRestorer, crops: np.ndarray, prior_scale: float = 1.0) -> np.ndarray:
    """Restore a whole in-memory track (N, H, W, 3) through the windowed engine; same dtype out."""
    crops = np.asarray(crops)
    if crops.ndim != 4:
        raise DVFaceError(f"expected a track of crops (N, H, W, 3), got shape {crops.shape}")
    with FaceTrackSession(
        restorer, crops.__getitem__, len(crops), crop_size=crops.shape[1:3], prior_scale=prior_scale
    ) as s:
        return s.frames(0, len(crops))
