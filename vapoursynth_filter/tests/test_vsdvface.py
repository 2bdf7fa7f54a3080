"""vsdvface.restore on synthetic astronaut clips with the tiny ONNX model on onnxruntime CPU."""

from __future__ import annotations

import copy
import random
from functools import partial

import numpy as np
import pytest
import vapoursynth as vs

import vsdvface
from conftest import FACE_FRAMES, HEIGHT, LENGTH, WIDTH, clip_in, make_frames, planes, render

core = vs.core

FORMATS = {
    "RGB24": (vs.RGB24, {}),
    "RGB48": (vs.RGB48, {}),
    "RGBS": (vs.RGBS, {}),
    "RGBH": (vs.RGBH, {}),
    "RGB30": (vs.RGB30, {}),
    "YUV420P8": (vs.YUV420P8, {"matrix": 1}),
    "YUV444P16": (vs.YUV444P16, {"matrix": 6, "range": 1}),
    "YUV422P10": (vs.YUV422P10, {"matrix": 1}),
    "GRAY8": (vs.GRAY8, {"matrix": 6, "range": 1}),  # black-and-white film: full-range grey
    "GRAY16": (vs.GRAY16, {"matrix": 6, "range": 0}),  # and a limited-range one (_Range 0)
    "GRAYS": (vs.GRAYS, {"matrix": 6}),
}


def same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return all(x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y, equal_nan=True) for x, y in zip(a, b))


@pytest.mark.parametrize("name", FORMATS)
def test_formats_round_trip_and_faces_change_only_face_frames(model_dir, name):
    fmt, resize = FORMATS[name]
    src = clip_in(fmt, **resize)
    out = vsdvface.restore(src, model=str(model_dir))
    assert (out.format.id, out.width, out.height, out.num_frames) == (src.format.id, WIDTH, HEIGHT, LENGTH)
    assert out.fps == src.fps
    got, want = render(out), render(src)
    for n in range(LENGTH):
        if n < FACE_FRAMES:
            assert not same(got[n], want[n]), f"frame {n} has a face but was not restored"
        else:
            assert same(got[n], want[n]), f"frame {n} has no face but changed"
    # Outside the face matte every sample keeps the input's exact value (luma/first plane).
    matte = render(vsdvface.restore(src, model=str(model_dir), mask=True))
    for n in range(FACE_FRAMES):
        changed = got[n][0] != want[n][0]
        assert changed.any() and not (changed & (matte[n][0] == 0)).any()


def test_face_properties_and_source_properties(model_dir):
    src = clip_in(vs.RGB24)
    out = vsdvface.restore(src, model=str(model_dir))
    for n in (0, FACE_FRAMES - 1, FACE_FRAMES):
        props = out.get_frame(n).props
        assert props["DVTestSource"] == 1 and props["_DurationDen"] == 25
        if n < FACE_FRAMES:
            assert props["DVFaceCount"] == 1 and props["DVFaceIds"] == 1
            x0, y0, x1, y1 = props["DVFaceBoxes"]
            # the astronaut's face sits inside the pasted 200 px photo at x 40 + 3n
            assert 40 + 3 * n <= x0 < x1 <= 240 + 3 * n and 20 <= y0 < y1 <= 222
        else:
            assert props["DVFaceCount"] == 0 and "DVFaceBoxes" not in props and "DVFaceIds" not in props


@pytest.mark.parametrize("threads", [1, 4])
def test_random_order_is_bit_identical_to_sequential(model_dir, threads):
    old = core.num_threads
    try:
        core.num_threads = threads
        src = clip_in(vs.RGB48)
        # cache_mb=0: nothing is kept, so every request recomputes its windows from its own frames
        sequential = render(vsdvface.restore(src, model=str(model_dir), cache_mb=0))
        for seed in range(2):
            order = list(range(LENGTH)) * 2
            random.Random(seed).shuffle(order)
            shuffled = render(vsdvface.restore(src, model=str(model_dir), cache_mb=0), order)
            assert all(same(shuffled[n], sequential[n]) for n in range(LENGTH))
    finally:
        core.num_threads = old


@pytest.fixture
def compositors(monkeypatch) -> list:
    """Every `ClipCompositor` that `restore` makes during the test, in order."""
    from vsdvface.compositor import ClipCompositor

    made = []
    original = ClipCompositor.__init__

    def keep(self, *args, **kwargs):
        original(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(ClipCompositor, "__init__", keep)
    return made


@pytest.mark.parametrize("num_streams", [1, 2])
def test_prefetching_the_next_windows_changes_no_frame_and_restores_each_window_once(
    model_dir, compositors, num_streams
):
    src = clip_in(vs.RGB48)
    # Nothing cached: no prefetching. The same streams: a session's thread count may move a float by one level.
    reference = render(vsdvface.restore(src, model=str(model_dir), num_streams=num_streams, cache_mb=0))
    old = core.num_threads
    try:
        core.num_threads = 2
        vsdvface.window_cache(64).clear()
        before = vsdvface.cache_stats(64).windows_computed
        order = list(range(LENGTH))
        random.Random(num_streams).shuffle(order)
        out = render(vsdvface.restore(src, model=str(model_dir), num_streams=num_streams, cache_mb=64), order)
    finally:
        core.num_threads = old
    assert all(same(out[n], reference[n]) for n in range(LENGTH))
    sessions = list(compositors[-1].sessions.values())
    assert vsdvface.cache_stats(64).windows_computed - before == sum(len(s.grid.windows) for s in sessions)
    assert all(s.prefetch_span(s.first_frame) is None for s in sessions)  # the windows after the first were prefetched


def test_default_streams_follow_the_backend_the_cores_and_the_cache(model_dir, compositors):
    """On onnxruntime's CPU provider two single-threaded sessions on a CPU of two cores or more, fed
    by prefetching; one (on every core) when cache_mb=0 leaves nothing to prefetch into. OpenVINO,
    which auto takes on a CPU where it is installed, runs one on every core."""
    import os

    src = clip_in(vs.RGB24)
    vsdvface.restore(src, model=str(model_dir), backend="cpu")
    vsdvface.restore(src, model=str(model_dir), backend="cpu", cache_mb=0)
    vsdvface.restore(src, model=str(model_dir))
    restorers = [next(iter(c.sessions.values())).restorer for c in compositors]
    assert [r.streams for r in restorers[:2]] == [2 if len(os.sched_getaffinity(0)) >= 2 else 1, 1]
    assert restorers[2].backend == "openvino" and restorers[2].streams == 1  # the [cpu] extra installs it


def test_strength_mixes_faces_with_the_input_and_runs_no_model_again(model_dir):
    vsdvface.window_cache().clear()
    src = clip_in(vs.RGBS)
    full = render(vsdvface.restore(src, model=str(model_dir), strength=1.0))
    before = vsdvface.cache_stats()
    quarter = render(vsdvface.restore(src, model=str(model_dir), strength=0.25))
    off = render(vsdvface.restore(src, model=str(model_dir), strength=0.0))
    assert vsdvface.cache_stats().windows_computed == before.windows_computed  # the cached faces, pasted again
    original = render(src)
    assert same(off[0], original[0]) and not same(quarter[0], original[0]) and not same(quarter[0], full[0])
    face = np.abs(full[0][0] - original[0][0]) > 0.05
    gain = np.abs(quarter[0][0] - original[0][0])[face].mean() / np.abs(full[0][0] - original[0][0])[face].mean()
    assert 0.15 < gain < 0.35
    full_matte = render(vsdvface.restore(src, model=str(model_dir), mask=True))[0][0].astype(np.float64)
    quarter_matte = render(vsdvface.restore(src, model=str(model_dir), strength=0.25, mask=True))[0][0]
    step = 1e-4 if quarter_matte.dtype.kind == "f" else 1
    assert np.abs(quarter_matte - full_matte / 4).max() <= step  # the mask clip follows the strength


def test_stabilise_changes_only_face_frames_and_keeps_its_own_cache_entries(model_dir):
    src = clip_in(vs.RGB48)
    plain = render(vsdvface.restore(src, model=str(model_dir), stabilise=0))
    steady = render(vsdvface.restore(src, model=str(model_dir), stabilise=2))
    assert not same(steady[1], plain[1])
    assert all(same(steady[n], plain[n]) for n in range(FACE_FRAMES, LENGTH))
    # The shared window cache holds both; neither is served for the other.
    assert same(render(vsdvface.restore(src, model=str(model_dir), stabilise=0))[1], plain[1])


def test_grain_changes_only_face_frames_and_keeps_its_own_cache_entries(model_dir):
    src = clip_in(vs.RGB48)
    plain = render(vsdvface.restore(src, model=str(model_dir)))
    grainy = render(vsdvface.restore(src, model=str(model_dir), grain=1.0))
    assert not same(grainy[1], plain[1])
    assert all(same(grainy[n], plain[n]) for n in range(FACE_FRAMES, LENGTH))
    assert same(render(vsdvface.restore(src, model=str(model_dir)))[1], plain[1])


def test_mask_clip(model_dir):
    src = clip_in(vs.YUV420P10, matrix=1)
    matte = vsdvface.restore(src, model=str(model_dir), mask=True)
    assert matte.format.color_family == vs.GRAY and matte.format.bits_per_sample == 10
    assert (matte.width, matte.height, matte.num_frames) == (WIDTH, HEIGHT, LENGTH)
    frames = render(matte)
    assert frames[0][0].max() == 1023 and frames[0][0].min() == 0
    assert all(frames[n][0].max() == 0 for n in range(FACE_FRAMES, LENGTH))
    assert matte.get_frame(0).props["DVFaceCount"] == 1


def test_yuv_without_matrix(model_dir):
    src = core.std.RemoveFrameProps(clip_in(vs.YUV420P8, matrix=1), "_Matrix")
    with pytest.raises(vs.Error, match=r"restore: .*matrix_in="):
        vsdvface.restore(src, model=str(model_dir))
    out = vsdvface.restore(src, model=str(model_dir), matrix_in=1)
    ref = vsdvface.restore(clip_in(vs.YUV420P8, matrix=1), model=str(model_dir))
    assert same(planes(out.get_frame(2)), planes(ref.get_frame(2)))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: core.std.Splice([clip_in(vs.RGB24)[:2], clip_in(vs.RGBS)[:2]], mismatch=True), "variable format"),
        (lambda: core.std.Splice([clip_in(vs.RGB24)[:2], core.std.BlankClip(format=vs.RGB24, length=2)], mismatch=True),
         "variable frame size"),
        (lambda: "not a clip", "clip must be"),
    ],
)
def test_unsupported_clips(model_dir, make, match):
    with pytest.raises(vs.Error, match=rf"^restore: .*{match}"):
        vsdvface.restore(make(), model=str(model_dir))


@pytest.mark.parametrize("name, field_based", [("RGB24", 2), ("YUV420P8", 1), ("RGBH", 2)])
def test_interlaced_clips_are_restored_field_by_field(model_dir, name, field_based):
    fmt, resize = FORMATS[name]
    woven = core.std.SetFieldBased(clip_in(fmt, **resize), field_based)
    out = vsdvface.restore(woven, model=str(model_dir))
    assert (out.format.id, out.num_frames, out.fps) == (woven.format.id, LENGTH, woven.fps)
    assert out.get_frame(0).props["_FieldBased"] == field_based
    # Each field's rows are those of its own restored field picture (bwdif, in display order), whose
    # own rows are the field's exactly.
    first = 0 if field_based == 2 else 1
    field_pictures = vsdvface.filter._field_pictures(woven, first)
    pictures = render(vsdvface.restore(field_pictures, model=str(model_dir)))
    got, want, unrestored = render(out), render(woven), render(field_pictures)
    for k, picture in unrestored.items():
        rows = slice((first + k) % 2, None, 2)
        assert all(np.array_equal(a[rows], b[rows]) for a, b in zip(picture, want[k // 2]))
    matte = render(vsdvface.restore(woven, model=str(model_dir), mask=True))
    assert len(matte) == LENGTH and matte[0][0].shape == (HEIGHT, WIDTH)
    for n in range(LENGTH):
        for k, rows in enumerate((slice(first, None, 2), slice(1 - first, None, 2))):
            assert all(np.array_equal(g[rows], q[rows]) for g, q in zip(got[n], pictures[2 * n + k]))
        if n < FACE_FRAMES:
            changed = got[n][0] != want[n][0]
            assert changed.any() and not (changed & (matte[n][0] == 0)).any()
        else:
            assert same(got[n], want[n]), f"frame {n} has no face but changed"
    assert out.get_frame(2).props["DVFaceCount"] == 1


def test_an_interlaced_clip_takes_tracks_of_its_field_pictures(model_dir, tmp_path):
    """A tracks file for an interlaced clip counts its field pictures, as `dvface track` writes for an
    interlaced source; one counting frames is refused with the reason."""
    from vsdvface.analysis import analyse_clip, detector

    def rgb(clip: vs.VideoNode):
        return (np.stack([np.asarray(f[p]) for p in range(3)], -1) for f in clip.frames())

    woven = core.std.SetFieldBased(clip_in(vs.RGB24), 2)
    for clip, name in ((core.bwdif.Bwdif(woven, field=3), "fields.json"), (woven, "frames.json")):
        analyse_clip(partial(rgb, clip), clip.num_frames, 50.0, detector(), 512).save(tmp_path / name)
    with_tracks = vsdvface.restore(woven, model=str(model_dir), tracks=str(tmp_path / "fields.json"))
    assert same(planes(with_tracks.get_frame(2)), planes(vsdvface.restore(woven, model=str(model_dir)).get_frame(2)))
    with pytest.raises(vs.Error, match=r"clip of 14 frames, this clip is 320x240 with 28.*restored field by field"):
        vsdvface.restore(woven, model=str(model_dir), tracks=str(tmp_path / "frames.json"))


def test_interlaced_clips_marked_progressive_are_restored_as_pictures(model_dir):
    marked = core.std.SetFieldBased(core.std.SetFieldBased(clip_in(vs.RGB24), 2), 0)
    ref = vsdvface.restore(clip_in(vs.RGB24), model=str(model_dir))
    assert same(planes(vsdvface.restore(marked, model=str(model_dir)).get_frame(2)), planes(ref.get_frame(2)))


class _CoreWithout:
    """The VapourSynth core as it looks where one plugin is not installed."""

    def __init__(self, namespace: str) -> None:
        self._namespace = namespace

    def __getattr__(self, name: str):
        if name == self._namespace:
            raise AttributeError(name)
        return getattr(core, name)


def test_interlaced_clips_are_refused_where_the_bwdif_plugin_is_missing(model_dir, monkeypatch):
    monkeypatch.setattr(vsdvface.filter, "core", _CoreWithout("bwdif"))
    woven = core.std.SetFieldBased(clip_in(vs.RGB24), 1)
    with pytest.raises(vs.Error, match=r"^restore: clip is interlaced \(_FieldBased=1, bottom field first\).*"
                                       r"pip install vapoursynth-bwdif.*QTGMC"):
        vsdvface.restore(woven, model=str(model_dir))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"backend": "vulkan"},
        {"device_index": -1},
        {"num_streams": 0},
        {"num_streams": 10_000},
        {"strength": 1.5},
        {"strength": "high"},
        {"faces": ""},
        {"faces": "7"},
        {"faces": "one"},
        {"min_face": -1},
        {"window": 4},
        {"window": 9},
        {"overlap": 3},
        {"overlap": -1},
        {"stabilise": -1},
        {"stabilise": 1.5},
        {"grain": -0.5},
        {"grain": "film"},
        {"cache_mb": -1},
        {"mask": "yes"},
        {"matrix_in": 99},
        {"range_in": 5},
        {"transfer_in": 0},
        {"model": "/nonexistent/model"},
        {"model": 3},
    ],
)
def test_invalid_arguments_name_the_argument(model_dir, kwargs):
    kwargs = {"model": str(model_dir), **kwargs}
    (name,) = set(kwargs) - {"model"} or {"model"}
    with pytest.raises(vs.Error, match=rf"^restore: .*{name}"):
        vsdvface.restore(clip_in(vs.YUV420P8, matrix=1), **kwargs)


def test_construction_prints_nothing(model_dir, capfd):
    src = clip_in(vs.RGB24, frames=make_frames(face_frames=9))  # a clip of its own: the analysis runs here
    out = vsdvface.restore(src, model=str(model_dir), faces="largest", min_face=20)
    out.get_frame(0)
    captured = capfd.readouterr()
    assert captured.out == ""


def test_min_face_leaves_small_faces_alone(model_dir):
    src = clip_in(vs.RGB24)
    out = vsdvface.restore(src, model=str(model_dir), min_face=1000)
    assert same(planes(out.get_frame(0)), planes(src.get_frame(0)))
    assert out.get_frame(0).props["DVFaceCount"] == 0


def test_callbacks_run_concurrently(model_dir, monkeypatch):
    """FrameEval around ModifyFrame: with 4 threads several frames are rendered at the same time."""
    import threading
    import time

    from vsdvface.compositor import ClipCompositor

    active, peak, lock = [0], [0], threading.Lock()
    original = ClipCompositor.render

    def slow_render(self, n, frames):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        try:
            time.sleep(0.05)
            return original(self, n, frames)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(ClipCompositor, "render", slow_render)
    old = core.num_threads
    try:
        core.num_threads = 4
        out = vsdvface.restore(clip_in(vs.RGB24), model=str(model_dir))
        render(out)
    finally:
        core.num_threads = old
    assert peak[0] >= 2


def test_analysis_is_reused_from_memory_and_disk(model_dir, monkeypatch, tracks_cache):
    import vsdvface.analysis as analysis

    src = clip_in(vs.RGB24)
    first = render(vsdvface.restore(src, model=str(model_dir)))
    assert list(tracks_cache.glob("tracks/vs-*.json"))

    def no_detection(*args, **kwargs):
        raise AssertionError("the analysis ran again")

    monkeypatch.setattr(analysis, "analyze", no_detection)
    vsdvface.restore(src, model=str(model_dir))  # in-process memo
    analysis._MEMO.clear()  # a new process: the cache folder answers
    again = render(vsdvface.restore(src, model=str(model_dir)))
    assert all(same(first[n], again[n]) for n in range(LENGTH))


def test_anamorphic_clips_are_analysed_as_displayed_and_keep_their_aspect(model_dir):
    import vsdvface.analysis as analysis

    src = core.std.SetFrameProps(clip_in(vs.RGB24), _SARNum=64, _SARDen=45)
    out = vsdvface.restore(src, model=str(model_dir))
    tracks = next(reversed(analysis._MEMO.values()))
    assert tracks.pixel_aspect == pytest.approx(64 / 45)
    props = out.get_frame(0).props
    assert (props["_SARNum"], props["_SARDen"]) == (64, 45) and props["DVFaceCount"] == 1


def test_tracks_file(model_dir, tmp_path):
    import vsdvface.analysis as analysis

    src = clip_in(vs.RGB24)
    vsdvface.restore(src, model=str(model_dir))
    tracks = copy.deepcopy(next(reversed(analysis._MEMO.values())))  # the memo's copy stays as it is
    tracks.tracks[0].faces = tracks.tracks[0].faces[:4]  # a hand-shortened track: faces on frames 0..3 only
    path = tmp_path / "shot.json"
    tracks.save(path)
    out = vsdvface.restore(src, model=str(model_dir), tracks=str(path))
    assert out.get_frame(3).props["DVFaceCount"] == 1 and out.get_frame(4).props["DVFaceCount"] == 0
    assert same(planes(out.get_frame(4)), planes(src.get_frame(4)))
    with pytest.raises(vs.Error, match=r"^restore: tracks=.*made for a 320x240 clip of 14 frames"):
        vsdvface.restore(src[:10], model=str(model_dir), tracks=str(path))
    with pytest.raises(vs.Error, match=r"^restore: tracks="):
        vsdvface.restore(src, model=str(model_dir), tracks=str(tmp_path / "missing.json"))


def test_model_folder_without_export_asks_for_one(model_dir, tmp_path):
    import shutil

    for name in ("config.json", "dvface.safetensors"):
        shutil.copy(model_dir / name, tmp_path / name)
    with pytest.raises(vs.Error, match=r"^restore: model=.*no ONNX export.*dvface export onnx --model"):
        vsdvface.restore(clip_in(vs.RGB24), model=str(tmp_path))


@pytest.mark.parametrize("backend", ["openvino", "cpu"])
def test_an_int8_export_given_as_the_model_restores_the_face_frames_only(model_dir, tmp_path, backend):
    """`dvface export onnx --int8` works without torch here, and the filter runs its folder as int8."""
    import cv2
    from skimage.data import astronaut

    from dvface_plugin.cli import main as dvface

    if backend == "openvino":
        pytest.importorskip("openvino")
    face = cv2.resize(astronaut()[20:220, 140:340], (64, 64), interpolation=cv2.INTER_AREA)
    (tmp_path / "prepared").mkdir()
    for i in range(2):
        np.save(tmp_path / "prepared" / f"clip{i}.npy", np.stack([np.roll(face, (i + t, t), (0, 1)) for t in range(5)]))
    export = tmp_path / "int8"
    assert dvface(["export", "onnx", "--int8", "--calibration", str(tmp_path / "prepared"), "--calibration-windows",
                   "2", "--model", str(model_dir), "-o", str(export)]) == 0
    src = clip_in(vs.RGB24)
    got, fp32, want = (render(c) for c in (vsdvface.restore(src, model=str(export), backend=backend),
                                           vsdvface.restore(src, model=str(model_dir), backend=backend), src))
    for n in range(LENGTH):
        if n < FACE_FRAMES:
            assert not same(got[n], fp32[n]) and not same(got[n], want[n]), f"frame {n}: not int8-restored"
        else:
            assert same(got[n], want[n]), f"frame {n} has no face but changed"
