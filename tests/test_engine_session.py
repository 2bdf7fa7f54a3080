"""FaceTrackSession: same frames whatever the access order, threads and cache budget.

The full matrix (patterns x threads x budgets) runs on a fast behavioural fake with the model's
API whose outputs mix every frame of a window, so a window cut differently changes the result;
the real tiny preset then runs a reduced matrix, which also proves that the model itself keeps
no state between calls that could leak across windows.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
from torch import nn

from dvface_plugin.commands.bench import access_order, render, synthetic_crop
from dvface_plugin.engine import FaceTrackSession, FrameRangeError, SessionClosedError, WindowCache, restore_track
from dvface_plugin.errors import InputError
from dvface_plugin.model.config import DVFaceConfig
from dvface_plugin.model.dvface import DVFace, Latent
from dvface_plugin.model.prior import PriorFeatures
from dvface_plugin.runtime.base import PriorState, TrackRestorer
from dvface_plugin.runtime.torch_restorer import Restorer

PATTERNS = ["sequential", "reverse", "random", "shuffle", "scrub", "split:4"]
CROP = 32


class FakeDVFace(nn.Module):
    """The DVFace inference API in a few tensor ops; detects calls that overlap in time."""

    def __init__(self, config: DVFaceConfig) -> None:
        super().__init__()
        self.config = config
        self.mix = nn.Parameter(torch.tensor(0.3))
        self.active = 0
        self.overlapping_calls = 0
        self.calls = {"encode": 0, "encode_priors": 0, "restore_latent": 0}

    def _enter(self, name: str) -> None:
        self.calls[name] += 1
        self.active += 1
        if self.active > 1:
            self.overlapping_calls += 1
        time.sleep(0.001)  # widen the window in which an unlocked second caller would be seen
        self.active -= 1

    def encode(self, x: torch.Tensor) -> Latent:
        self._enter("encode")
        return Latent(torch.tanh(x * 1.3), x.shape[2], x.shape[3], x.shape[4])

    def encode_priors(self, latent: Latent) -> PriorFeatures:
        self._enter("encode_priors")
        z = latent.z
        return PriorFeatures(z.mean(dim=2, keepdim=True), z.std(dim=2, keepdim=True), (1, 1))

    def restore_latent(self, latent: Latent, priors: PriorFeatures, prior_scale: float = 1.0) -> torch.Tensor:
        self._enter("restore_latent")
        z = latent.z
        rolled = torch.roll(z, shifts=1, dims=2)  # every output frame depends on its neighbour
        return torch.tanh(z + self.mix * (rolled - z) + prior_scale * 0.2 * (priors.f_s - priors.f_t)).clamp(-1, 1)

    def weights_digest(self) -> str:
        return f"fake-{self.mix.detach().item()}"


def tiny_config() -> DVFaceConfig:
    cfg = DVFaceConfig.preset("tiny")
    cfg.crop_size = CROP
    return cfg


@pytest.fixture(scope="module")
def fake() -> Restorer:
    return Restorer(FakeDVFace(tiny_config()), device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def tiny() -> Restorer:
    torch.manual_seed(0)
    return Restorer(DVFace(tiny_config()), device="cpu", precision="fp32")


def run_pattern(restorer, n, pattern, threads, budget, get_crop, **opts):
    digests = [None] * n
    computed = 0
    for order in access_order(pattern, n, seed=1):
        with FaceTrackSession(restorer, get_crop, n, cache=WindowCache(budget), **opts) as s:
            render(s, order, threads, digests)
            computed += s.stats().windows_computed
    return digests, computed


def window_bytes(restorer, n, get_crop, **opts) -> int:
    with FaceTrackSession(restorer, get_crop, n, **opts) as s:
        s.frame(0)
        return s.stats().bytes_held - s.stats().frame_bytes  # latent + priors + restored crops of one window


@pytest.mark.parametrize("pattern", PATTERNS)
def test_fake_model_bit_identical_for_every_pattern_thread_count_and_budget(fake, pattern):
    n = 60
    get_crop = synthetic_crop(3, CROP)
    one = window_bytes(fake, n, get_crop)
    reference, computed = run_pattern(fake, n, "sequential", 1, 10**9, get_crop)
    assert computed == len(FaceTrackSession(fake, get_crop, n).grid.windows)  # sequential: each window once
    for threads in (1, 2, 8):
        for budget in (10**9, 2 * one, one, 0):
            digests, _ = run_pattern(fake, n, pattern, threads, budget, get_crop)
            assert digests == reference, (threads, budget)
    assert fake.model.overlapping_calls == 0  # the model lock serialised every call


@pytest.mark.parametrize("pattern", ["random", "reverse", "scrub"])
@pytest.mark.parametrize("threads", [1, 8])
def test_out_of_order_requests_restore_each_window_about_once_under_a_two_window_budget(fake, pattern, threads):
    """Finished frames and single rows outlive their windows in the cache, so a window is not restored
    again for its remaining frames (issue target: random within 32 frames <= 1.5x sequential)."""
    n = 200
    get_crop = synthetic_crop(4, CROP)
    n_windows = len(FaceTrackSession(fake, get_crop, n).grid.windows)
    budget = 2 * window_bytes(fake, n, get_crop)
    reference, _ = run_pattern(fake, n, "sequential", 1, 10**9, get_crop)
    digests, computed = run_pattern(fake, n, pattern, threads, budget, get_crop)
    assert digests == reference
    assert computed <= 1.5 * n_windows, (computed, n_windows)


def test_a_frame_cache_hit_is_a_copy_the_caller_may_change(fake):
    get_crop = synthetic_crop(6, CROP)
    with FaceTrackSession(fake, get_crop, 40) as s:
        first = s.frame(3)
        first[:] = 0
        again = s.frame(3)
        assert s.stats().frame_hits >= 1 and again.any()


@pytest.fixture(scope="module")
def tiny_reference(tiny):
    n = 45  # windows [0,17) [13,30) [26,43) and the end-anchored [36,45)
    get_crop = synthetic_crop(5, CROP)
    reference, computed = run_pattern(tiny, n, "sequential", 1, 10**9, get_crop)
    assert computed == 4
    return n, get_crop, window_bytes(tiny, n, get_crop), reference


@pytest.mark.parametrize(
    "pattern,threads,budget_windows",
    [("sequential", 8, 1), ("reverse", 2, 1), ("random", 8, 16), ("scrub", 8, 1), ("split:4", 2, 2)],
)
def test_tiny_model_bit_identical_across_access_orders(tiny, tiny_reference, pattern, threads, budget_windows):
    n, get_crop, one, reference = tiny_reference
    digests, _ = run_pattern(tiny, n, pattern, threads, budget_windows * one, get_crop)
    assert digests == reference


def test_split_sessions_equal_the_whole_clip_and_cost_one_window_per_split(fake):
    n = 200
    get_crop = synthetic_crop(7, CROP)
    with FaceTrackSession(fake, get_crop, n) as whole:
        expect = whole.frames(0, n)
    parts, computed = [], 0
    for a, b in [(0, 50), (50, 100), (100, 150), (150, 200)]:
        with FaceTrackSession(fake, get_crop, n) as part:
            parts.append(part.frames(a, b))
            computed += part.stats().windows_computed
    assert np.array_equal(np.concatenate(parts), expect)
    assert computed <= len(whole.grid.windows) + 3


@pytest.mark.parametrize(("start", "stop"), [(0, 60), (20, 41), (59, 60)])
def test_on_window_reports_each_window_the_model_runs_and_model_frames_foresees_them(fake, start, stop):
    """A progress bar counts model work: the plan and what is reported must agree, window by window."""
    reported = []
    with FaceTrackSession(fake, synthetic_crop(4, CROP), 60, cache=WindowCache(0), first_frame=100,
                          on_window=reported.append) as s:
        planned = s.model_frames(100 + start, 100 + stop)
        s.frames(100 + start, 100 + stop)
        assert s.stats().windows_computed == len(reported)
    lengths = [w.stop - w.start for w in s.grid.windows_for(start, stop)]
    assert reported == lengths and sum(reported) == planned > stop - start - 1


def test_first_frame_offsets_host_numbers_without_moving_the_grid(fake):
    get_crop = synthetic_crop(2, CROP)
    with FaceTrackSession(fake, get_crop, 40) as plain:
        expect = plain.frames(10, 30)
    with FaceTrackSession(fake, lambda n: get_crop(n - 1001), 40, first_frame=1001) as shifted:
        assert np.array_equal(shifted.frames(1011, 1031), expect)
        assert shifted.input_span(1011, 1012) == (1001, 1018)
        with pytest.raises(FrameRangeError, match="1041"):
            shifted.frame(1041 - 1 + 1)


def test_prior_scale_change_reuses_priors_and_input_change_invalidates(fake):
    clip = np.stack([synthetic_crop(4, CROP)(i) for i in range(30)])
    with FaceTrackSession(fake, clip.__getitem__, 30) as s:
        a = s.frames(0, 30)
        before = fake.model.calls.copy()
        b = s.frames(0, 30, prior_scale=0.5)
        stats = s.stats()
        assert fake.model.calls["encode"] == before["encode"]  # latent and priors came from the cache
        assert fake.model.calls["restore_latent"] == before["restore_latent"] + 2
        assert stats.priors_computed == 2 and stats.windows_computed == 4
        assert not np.array_equal(a, b)
        assert np.array_equal(s.frames(0, 30), a) and s.stats().windows_computed == 4
        clip[20] = 255 - clip[20]  # the host's input changed: only the window holding frame 20 recomputes
        c = s.frames(0, 30)
        assert s.stats().windows_computed == 5
        assert np.array_equal(c[:13], a[:13]) and not np.array_equal(c[20], a[20])


@pytest.mark.parametrize("dtype,peak", [(np.uint8, 255), (np.uint16, 65535), (np.float32, 1.0)])
def test_output_keeps_the_input_dtype(fake, dtype, peak):
    rng = np.random.default_rng(0)
    clip = (rng.random((20, CROP, CROP, 3)) * peak).astype(dtype)
    out = restore_track(fake, clip)
    assert out.dtype == dtype and out.shape == clip.shape
    assert out.min() >= 0 and out.max() <= peak


def test_bad_inputs_raise_clear_errors_and_leave_the_cache_clean(fake):
    n = 30
    uint8_crop = synthetic_crop(9, CROP)

    def good(i):
        return uint8_crop(i).astype(np.float32) / 255

    with FaceTrackSession(fake, good, n) as ref:
        expect = ref.frames(0, n)

    bad = {"shape": 5, "nan": 20}

    def get_crop(i):
        crop = good(i)
        if i == bad.get("shape"):
            return crop[:-1]
        if i == bad.get("nan"):
            crop[3, 3, 1] = np.nan
        if i == bad.get("uint16"):
            return (crop * 65535).astype(np.uint16)
        if i == bad.get("range"):
            crop[0, 0, 0] = 1.5
        return crop

    cache = WindowCache(10**9)
    s = FaceTrackSession(fake, get_crop, n, cache=cache)
    with pytest.raises(InputError, match=r"frame 5: crop has shape \(31, 32, 3\)"):
        s.frame(2)
    bad.pop("shape")
    with pytest.raises(InputError, match="frame 20: crop contains NaN"):
        s.frame(20)
    bad.pop("nan")
    bad["uint16"] = 17
    with pytest.raises(InputError, match="frame 17: crop dtype uint16 differs from the track's float32"):
        s.frame(15)
    bad.pop("uint16")
    bad["range"] = 21
    with pytest.raises(InputError, match=r"frame 21: float crop values must lie in \[0, 1\]"):
        s.frame(28)
    assert cache.stats().entries == 0  # a frame's windows are all read and checked before any model call
    with pytest.raises(FrameRangeError, match=r"\[30, 31\)"):
        s.frame(30)
    with pytest.raises(FrameRangeError):
        s.frames(-1, 3)
    bad.pop("range")
    assert np.array_equal(s.frames(0, n), expect)
    s.close()
    with pytest.raises(SessionClosedError, match="closed"):
        s.frame(0)


def test_source_shorter_than_n_frames_and_wrong_batch_count_are_named(fake):
    clip = np.stack([synthetic_crop(1, CROP)(i) for i in range(20)])
    with FaceTrackSession(fake, clip.__getitem__, 25) as s:
        assert s.frames(0, 10).shape == (10, CROP, CROP, 3)
        with pytest.raises(InputError, match=r"frames \[12, 25\).*IndexError.*frames 0\.\.24"):
            s.frame(24)
    with FaceTrackSession(fake, None, 25, get_crops=lambda a, b: clip[a:b]) as s:
        with pytest.raises(InputError, match=r"get_crops\(12, 25\) returned 8 crops, expected 13"):
            s.frame(24)
        assert s.stats().entries == 0
    with pytest.raises(InputError, match="prior_scale"):
        FaceTrackSession(fake, clip.__getitem__, 20, prior_scale=float("nan"))


def test_closing_stops_a_running_stream(fake):
    get_crop = synthetic_crop(1, CROP)
    s = FaceTrackSession(fake, get_crop, 40)
    frames = s.iter_frames()
    next(frames)
    s.close()
    with pytest.raises(SessionClosedError):
        next(frames)


def test_model_errors_propagate_to_all_waiting_threads_without_caching(fake):
    class Failing(FakeDVFace):
        def restore_latent(self, latent, priors, prior_scale=1.0):
            self._enter("restore_latent")
            time.sleep(0.05)
            raise RuntimeError("decoder exploded")

    restorer = Restorer(Failing(tiny_config()), device="cpu", precision="fp32")
    s = FaceTrackSession(restorer, synthetic_crop(1, CROP), 17)
    errors = []

    def ask(n):
        try:
            s.frame(n)
        except RuntimeError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 6 and restorer.model.calls["restore_latent"] == 1
    assert s.stats().windows_computed == 0 and s.stats().entries == 1  # the priors were fine and stay


class CopiesRestorer(TrackRestorer):
    """`streams` copies of a slow numpy 'model' that record how many calls ran at once."""

    def __init__(self, streams: int, fail_at_call: int | None = None) -> None:
        super().__init__([f"copy-{i}" for i in range(streams)])
        self.config = tiny_config()
        self.identity, self.device, self.precision = "copies", "cpu", "fp32"
        self._count = threading.Lock()
        self.active = self.most_at_once = self.decodes = 0
        self.fail_at_call = fail_at_call

    def _run(self) -> None:
        with self._count:
            self.active += 1
            self.most_at_once = max(self.most_at_once, self.active)
        time.sleep(0.02)  # long enough for a second stream's call to start meanwhile
        with self._count:
            self.active -= 1

    def _encode(self, model: str, crops: np.ndarray) -> PriorState:
        self._run()
        return PriorState(crops.astype(np.float32) / 127.5 - 1.0, np.zeros(1))

    def _decode(self, model: str, state: PriorState, prior_scale: float) -> np.ndarray:
        self._run()
        with self._count:
            self.decodes += 1
            if self.decodes == self.fail_at_call:
                raise RuntimeError("decoder exploded")
        return np.tanh(state.latent * 1.3 + 0.1 * np.roll(state.latent, 1, axis=0)).astype(np.float32)


def test_windows_restored_ahead_run_on_every_stream_and_change_no_frame():
    n, get_crop = 60, synthetic_crop(2, CROP)
    single = CopiesRestorer(1)
    with FaceTrackSession(single, get_crop, n, cache=WindowCache(0)) as s:
        reference = [frame for frame in s.iter_frames()]
    assert single.most_at_once == 1
    two = CopiesRestorer(2)
    with FaceTrackSession(two, get_crop, n, cache=WindowCache(0), ahead=two.streams) as s:
        frames = [frame for frame in s.iter_frames()]
        assert two.decodes == len(s.grid.windows)  # each window once, none restored twice
    assert all(np.array_equal(a, b) for a, b in zip(frames, reference)) and len(frames) == n
    assert two.most_at_once == 2  # two calls in flight: both copies busy, and never more than there are


def test_a_window_failing_ahead_raises_in_the_reader_and_stopping_early_ends_the_threads():
    n, get_crop = 60, synthetic_crop(2, CROP)
    failing = CopiesRestorer(2, fail_at_call=3)
    with FaceTrackSession(failing, get_crop, n, cache=WindowCache(0), ahead=2) as s:
        with pytest.raises(RuntimeError, match="decoder exploded"):
            for _ in s.iter_frames():
                pass
    restorer = CopiesRestorer(2)
    with FaceTrackSession(restorer, get_crop, n, cache=WindowCache(0), ahead=2) as s:
        frames = s.iter_frames()
        next(frames)
        frames.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("dvface-window")]
    with pytest.raises(ValueError, match="ahead"):
        FaceTrackSession(restorer, get_crop, n, ahead=-1)


def test_windows_ahead_skip_what_the_cache_already_finished():
    """A second pass (a Nuke re-render) must not restore windows again for frames the cache kept,
    even when the bulky windows themselves were evicted."""
    n, get_crop = 60, synthetic_crop(2, CROP)
    restorer = CopiesRestorer(2)
    cache = WindowCache(3 * 17 * CROP * CROP * 3 * 4)  # every finished frame, and about one window
    with FaceTrackSession(restorer, get_crop, n, cache=cache, ahead=2) as s:
        first = list(s.iter_frames())
        windows = len(s.grid.windows)
    assert restorer.decodes == windows and cache.stats().evictions > 0
    with FaceTrackSession(restorer, get_crop, n, cache=cache, ahead=2) as s:
        again = list(s.iter_frames())
    assert restorer.decodes == windows  # nothing restored again
    assert all(np.array_equal(a, b) for a, b in zip(first, again))


def test_prefetch_restores_the_next_windows_beside_a_request_and_changes_no_frame():
    """A host asking frame by frame (VapourSynth) keeps both streams busy: each request starts the
    window after its own, which the later requests find in the cache (or wait for), never twice."""
    n, get_crop = 60, synthetic_crop(2, CROP)
    single = CopiesRestorer(1)
    with FaceTrackSession(single, get_crop, n, cache=WindowCache(0)) as s:
        reference = list(s.iter_frames())
    two = CopiesRestorer(2)
    with FaceTrackSession(two, get_crop, n, cache=WindowCache(1 << 30), prefetch=1) as s:
        windows = s.grid.windows
        assert s.prefetch_span(0) == (windows[1].start, windows[1].stop)  # the frames its crops come from
        frames = []
        for f in range(n):
            s.prefetch(f)
            assert s.prefetch_span(f) is None  # started: a request for a neighbouring frame reads no more
            frames.append(s.frame(f))
        assert two.decodes == len(windows)  # each window once: prefetched ones were found, not redone
        assert two.most_at_once == 2
    assert all(np.array_equal(a, b) for a, b in zip(frames, reference))
    assert not [t for t in threading.enumerate() if t.name.startswith("dvface-prefetch")]  # close() ended them


def test_prefetch_does_nothing_without_a_cache_to_put_windows_in():
    n, get_crop = 60, synthetic_crop(2, CROP)
    restorer = CopiesRestorer(2)
    with FaceTrackSession(restorer, get_crop, n, cache=WindowCache(0), prefetch=1) as s:
        assert s.prefetch_span(0) is None
        s.prefetch(0)
        s.frame(0)
    assert restorer.decodes == 1
    with pytest.raises(ValueError, match="prefetch"):
        FaceTrackSession(restorer, get_crop, n, prefetch=-1)


def test_bad_input_in_a_prefetched_window_fails_only_the_requests_for_its_own_frames():
    n, good = 60, synthetic_crop(2, CROP)

    def get_crop(f: int) -> np.ndarray:
        return np.full_like(good(f), np.nan, dtype=np.float32) if f >= 20 else good(f).astype(np.float32) / 255

    restorer = CopiesRestorer(2)
    with FaceTrackSession(restorer, get_crop, n, cache=WindowCache(1 << 30), prefetch=2) as s:
        s.prefetch(0)  # reads the next windows' crops, NaN from frame 20 on: nothing raised here
        assert s.frame(0).shape == (CROP, CROP, 3)
        with pytest.raises(InputError, match="NaN"):
            s.frame(25)


def test_immutable_input_reads_each_window_once_for_frame_by_frame_requests():
    """A VapourSynth clip never changes: once a window's digest is known, a request for one of its
    frames reads no crops, so the crops are read about once per window instead of once per frame."""
    n, good = 60, synthetic_crop(2, CROP)
    reads = []

    def get_crop(f: int) -> np.ndarray:
        reads.append(f)
        return good(f)

    with FaceTrackSession(CopiesRestorer(1), good, n, cache=WindowCache(0)) as s:
        reference = list(s.iter_frames())
    for immutable in (False, True):
        reads.clear()
        with FaceTrackSession(CopiesRestorer(2), get_crop, n, cache=WindowCache(1 << 30), prefetch=1,
                              immutable_input=immutable) as s:
            frames = []
            for f in range(n):
                s.prefetch(f)
                frames.append(s.frame(f))
            windows = s.grid.windows
        assert all(np.array_equal(a, b) for a, b in zip(frames, reference))
        once = sum(w.length for w in windows)
        if immutable:  # once for the digest; a second time where a request restores a window still queued to prefetch
            assert once <= len(reads) < 2 * once
        else:
            assert len(reads) > 5 * once  # every request reads its windows again
