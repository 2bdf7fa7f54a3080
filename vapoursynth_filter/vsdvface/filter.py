"""`restore()`: the VapourSynth face of DVFace, on the torch-free ONNX backends (onnxruntime, OpenVINO).

Frames are served concurrently and in any order: `std.FrameEval` picks, per frame, a
`std.ModifyFrame` whose extra clips are the input shifted by the offsets that frame's windows
need, so the core prefetches the neighbours and no callback ever calls `get_frame`. Everything
shared between those callbacks (the model, the window cache, the analysis) is locked or
immutable; see `compositor` for why frame n does not depend on what was asked before it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import numpy as np
import vapoursynth as vs

from dvface_plugin.engine import CacheStats, WindowCache
from dvface_plugin.errors import DVFaceError
from dvface_plugin.faces import CROP_SIZE, Tracks, select_tracks

from .analysis import analyse_clip, detector, load_tracks_file
from .compositor import ClipCompositor
from .ortrestorer import BACKENDS, StreamedOrtRestorer, load_restorer, max_overlap, resolve_model

core = vs.core

PROP_COUNT, PROP_BOXES, PROP_IDS = "DVFaceCount", "DVFaceBoxes", "DVFaceIds"
DEFAULT_CACHE_MB = 1024
# Values the resizer accepts for YUV input (VapourSynth's MatrixCoefficients / TransferCharacteristics).
MATRICES = (1, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14)
TRANSFERS = (1, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18)
RANGES = (0, 1)  # vs.RANGE_LIMITED, vs.RANGE_FULL
UNSPECIFIED = 2

_LOCK = threading.Lock()
_CACHES: dict[int, WindowCache] = {}
_RESTORERS: dict[tuple, StreamedOrtRestorer] = {}


def _error(message: str) -> vs.Error:
    return vs.Error(f"restore: {message}")


def window_cache(cache_mb: int = DEFAULT_CACHE_MB) -> WindowCache:
    """The process-wide window cache of that budget: every `restore()` call with the same `cache_mb`
    shares it, so a re-evaluated script (a previewer after an edit, the next chunk of a render)
    finds what earlier calls computed. Entries are keyed by the window's input crops and the model."""
    with _LOCK:
        if cache_mb not in _CACHES:
            _CACHES[cache_mb] = WindowCache(cache_mb << 20)
        return _CACHES[cache_mb]


def cache_stats(cache_mb: int = DEFAULT_CACHE_MB) -> CacheStats:
    """Counters of the shared window cache of that budget (windows and prior features computed, hits, bytes)."""
    return window_cache(cache_mb).stats()


def restore(
    clip: vs.VideoNode,
    *,
    model: str | os.PathLike | None = None,
    backend: str = "auto",
    device_index: int = 0,
    num_streams: int | None = None,
    strength: float = 1.0,
    faces: str = "all",
    min_face: float = 0.0,
    window: int | None = None,
    overlap: int | None = None,
    stabilise: int | None = None,
    grain: float = 0.0,
    cache_mb: int = DEFAULT_CACHE_MB,
    mask: bool = False,
    tracks: str | os.PathLike | None = None,
    matrix_in: int | None = None,
    transfer_in: int | None = None,
    range_in: int | None = None,
) -> vs.VideoNode:
    """Restore the faces of a clip with DVFace; everything outside the face mattes is left untouched.

    Detection, tracking and smoothing run once over the whole clip when this function is called
    (memoised per clip content in the process); restoration runs per frame on request.

    :param clip: RGB24, RGB48, RGBS or RGBH are processed as they are; other RGB depths, YUV and GRAY
        are converted to RGBS and back to the input format (YUV with `_Matrix`, `_Transfer` and `_Range`
        from the frame properties, or the `*_in` overrides; GRAY full range unless `_Range` or
        `range_in` says limited). Constant format and size only. An
        interlaced clip (`_FieldBased` 1 or 2) is restored field by field (bwdif field pictures at twice
        the rate, each field's own rows woven back); its `tracks` count field pictures.
    :param model: a DVFace ONNX export folder (`dvface export onnx --model M -o DIR`) or a model
        folder holding one in `onnx/`; default `$DVFACE_MODEL`, else the bundled model.
    :param backend: "cpu", "cuda" or "tensorrt" (onnxruntime's execution providers) or "openvino"
        (OpenVINO on the CPU, in bf16 where the CPU has AMX); "auto": TensorRT or CUDA where this
        onnxruntime build has them, else OpenVINO where installed, else "cpu".
    :param device_index: GPU index for the CUDA and TensorRT providers.
    :param num_streams: model runs in flight at once, each its own onnxruntime session; None: two on
        onnxruntime's CPU provider (splitting its cores), one on a GPU or OpenVINO, and one with
        `cache_mb=0`. The next `num_streams`
        windows of each face are prefetched into the window cache while a frame's own restores, so
        every stream stays busy.
    :param strength: 0..1, how much of the restoration to use: 0 leaves the clip as it is, 1 is the
        full restoration, and values between mix restored and original faces inside the face matte
        (and scales the `mask` clip); changing it re-runs no model: cached windows are pasted again.
    :param faces: "all", "largest", "center", or track ids such as "1,3" (ids as in `DVFaceIds`).
    :param min_face: tracks whose median face size (longer box side, pixels) is smaller are left alone.
    :param window: frames per restoration window (4k+1, at most the export's length; default it).
    :param overlap: frames shared by neighbouring windows, cross-faded (default the model's, clipped).
    :param stabilise: frames each side averaged with every restored face along the optical flow, against
        flicker (default the model's: 2 for the bundled one; 0 = off).
    :param grain: 0..1, how much of the clip's own grain goes back on the restored faces (default 0):
        each frame's difference from its flow-guided average with its neighbours, which the model
        removes; 1 keeps film grain on the faces as it is on the rest of the picture.
    :param cache_mb: budget of the process-wide window cache in MiB (0 disables caching).
    :param mask: return the face matte as a GRAY clip of the input's sample type instead (no model runs).
    :param tracks: a face tracks file (`dvface track SOURCE -o FILE`, or hand-corrected) to use instead of
        analysing the clip here; farm nodes then skip the analysis pass.
    :param matrix_in: YUV matrix coefficients (VapourSynth `_Matrix` values) when the clip has none.
    :param transfer_in: YUV transfer characteristics, overriding `_Transfer` (not linearised: the model
        works on the gamma-encoded signal).
    :param range_in: YUV range, overriding `_Range`: 0 limited, 1 full.
    :returns: the restored clip in the input's format with `DVFaceCount`, `DVFaceIds` and
        `DVFaceBoxes` (x0, y0, x1, y1 per face, frame pixels; of the first field's picture where
        interlaced) frame properties, or the matte clip.
    """
    fmt = _check_clip(clip)
    _check_options(
        backend=backend, device_index=device_index, num_streams=num_streams, strength=strength, faces=faces,
        min_face=min_face, window=window, overlap=overlap, stabilise=stabilise, grain=grain, cache_mb=cache_mb,
        mask=mask,
    )
    order = _field_order(clip)
    colour = _check_colour(clip, fmt, matrix_in, transfer_in, range_in)
    direct = fmt.color_family == vs.RGB and (
        (fmt.sample_type == vs.INTEGER and fmt.bits_per_sample in (8, 16))
        or (fmt.sample_type == vs.FLOAT and fmt.bits_per_sample in (16, 32))
    )
    half = fmt.sample_type == vs.FLOAT and fmt.bits_per_sample == 16
    restorer, window, overlap = _model(model, backend, device_index, num_streams, cache_mb, half, window, overlap,
                                       stabilise, grain)
    # An interlaced clip takes every step below as its field pictures, which are woven back at the end.
    pictures = clip if order is None else _field_pictures(clip, order)
    work = pictures if direct else core.resize.Bicubic(pictures, format=vs.RGBS, **colour.to_rgb)
    try:
        chosen = select_tracks(_tracks(pictures, work, tracks, fields=order is not None), faces, float(min_face))
    except DVFaceError as exc:  # its messages name faces= / min_face
        raise _error(str(exc)) from None
    comp = ClipCompositor(
        chosen, restorer, window_cache(cache_mb), strength=strength, window=window, overlap=overlap,
        prefetch=restorer.streams,
    )
    if mask:
        result = _matte_clip(pictures, comp, binary=False)
    elif direct:
        result = _restored_clip(work, comp)
    else:
        result = _merged(pictures, _restored_clip(work, comp), comp, fmt, colour)
    if order is None:
        return result
    return _woven(core.std.ShufflePlanes(clip, 0, vs.GRAY) if mask else clip, result, order)


def _model(
    model: object, backend: str, device_index: int, num_streams: int | None, cache_mb: int, half: bool,
    window: int | None, overlap: int | None, stabilise: int | None, grain: float,
) -> tuple[StreamedOrtRestorer, int, int]:
    """The restorer of these settings (shared by calls that name the same), and the window and
    overlap to run it with, checked against its export."""
    try:
        # Without a cache nothing can be prefetched, and streams alone would leave a core idle.
        streams = num_streams if num_streams is not None or cache_mb else 1
        restorer = _restorer(model, backend, device_index, streams, half)
    except DVFaceError as exc:
        raise _error(f"model={model!r}: {exc}") from None
    cfg = restorer.config
    window = cfg.window if window is None else window
    if not (window >= 1 and (window - 1) % cfg.vae_temporal_stride == 0 and window <= cfg.window):
        raise _error(
            f"window={window}: must be {cfg.vae_temporal_stride}k+1 frames and at most {cfg.window} "
            f"(the length of this model's ONNX export)"
        )
    limit = max_overlap(window, cfg.vae_temporal_stride)
    overlap = min(cfg.overlap, limit) if overlap is None else overlap
    if overlap > limit:
        raise _error(f"overlap={overlap}: at most {limit} for window={window}")
    if stabilise is not None:
        restorer = restorer.with_stabilise(int(stabilise))
    return restorer.with_grain(float(grain)), window, overlap


def _tracks(clip: vs.VideoNode, work: vs.VideoNode, tracks: object, *, fields: bool) -> Tracks:
    """The clip's face tracks: from a tracks file, or analysed here over `work` (its RGB)."""
    if tracks is None:
        try:
            return analyse_clip(partial(_analysis_frames, work), clip.num_frames, _fps(clip), detector(), CROP_SIZE,
                                pixel_aspect=_pixel_aspect(clip))
        except DVFaceError as exc:
            raise _error(f"clip: face analysis failed: {exc}") from None
    if not isinstance(tracks, (str, os.PathLike)):
        raise _error(f"tracks={tracks!r}: must be the path of a tracks .json file or None")
    try:
        return load_tracks_file(tracks, clip.width, clip.height, clip.num_frames)
    except DVFaceError as exc:
        why = (" (this interlaced clip is restored field by field, two pictures a frame, and `dvface track` "
               "tracks an interlaced source the same way)") if fields else ""
        raise _error(f"tracks={str(tracks)!r}: {exc}{why}") from None


def _merged(clip: vs.VideoNode, restored: vs.VideoNode, comp: ClipCompositor, fmt: vs.VideoFormat,
            colour: _Colour) -> vs.VideoNode:
    """A converted clip's restoration back in its format, taken only where a face matte is not 0,
    so every other sample is the clip's own."""
    back = core.resize.Bicubic(restored, format=fmt.id, **colour.from_rgb)
    merged = core.std.MaskedMerge(clip, back, _matte_clip(clip, comp, binary=True), first_plane=True)
    merged = core.std.RemoveFrameProps(merged, [PROP_BOXES, PROP_IDS])
    return core.std.CopyFrameProps(merged, restored, props=[PROP_COUNT, PROP_BOXES, PROP_IDS])


# --- validation ------------------------------------------------------------------------------


def _check_clip(clip: object) -> vs.VideoFormat:
    if not isinstance(clip, vs.VideoNode):
        raise _error(f"clip must be a vapoursynth.VideoNode, got {type(clip).__name__}")
    fmt = clip.format
    if fmt is None or fmt.color_family == vs.UNDEFINED:
        raise _error("clip has a variable format; convert it to one format first (e.g. resize.Bicubic(format=...))")
    if clip.width == 0 or clip.height == 0:
        raise _error("clip has a variable frame size; resize it to one size first")
    if fmt.color_family not in (vs.RGB, vs.YUV, vs.GRAY):
        raise _error(f"clip format {fmt.name} is not RGB, YUV or GRAY")
    return fmt


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _check_options(**o: object) -> None:
    if o["backend"] not in BACKENDS:
        raise _error(f"backend={o['backend']!r}: choose one of {', '.join(map(repr, BACKENDS))}")
    if not _is_int(o["device_index"]) or o["device_index"] < 0:
        raise _error(f"device_index={o['device_index']!r}: must be an integer >= 0")
    streams = o["num_streams"]
    if streams is not None and (not _is_int(streams) or streams < 1):
        raise _error(f"num_streams={streams!r}: must be an integer >= 1 or None")
    if streams is not None and streams > vs.core.num_threads:
        raise _error(
            f"num_streams={streams} exceeds core.num_threads={vs.core.num_threads}: more model runs than "
            "threads to feed them; lower num_streams or raise core.num_threads"
        )
    if not _is_number(o["strength"]) or not 0.0 <= float(o["strength"]) <= 1.0:
        raise _error(f"strength={o['strength']!r}: must be a number in [0, 1]")
    if not isinstance(o["faces"], str) or not o["faces"].strip():
        raise _error(f"faces={o['faces']!r}: use 'all', 'largest', 'center' or track ids like '1,3'")
    if not _is_number(o["min_face"]) or not float(o["min_face"]) >= 0.0:
        raise _error(f"min_face={o['min_face']!r}: must be a number of pixels >= 0")
    if o["window"] is not None and (not _is_int(o["window"]) or o["window"] < 1):
        raise _error(f"window={o['window']!r}: must be a positive integer (4k+1 frames) or None")
    if o["overlap"] is not None and (not _is_int(o["overlap"]) or o["overlap"] < 0):
        raise _error(f"overlap={o['overlap']!r}: must be an integer >= 0 or None")
    if o["stabilise"] is not None and (not _is_int(o["stabilise"]) or o["stabilise"] < 0):
        raise _error(f"stabilise={o['stabilise']!r}: must be an integer >= 0 (0 = off) or None")
    if not _is_number(o["grain"]) or not 0.0 <= float(o["grain"]) <= 1.0:
        raise _error(f"grain={o['grain']!r}: must be a number in [0, 1] (0 = off)")
    if not _is_int(o["cache_mb"]) or o["cache_mb"] < 0:
        raise _error(f"cache_mb={o['cache_mb']!r}: must be an integer number of MiB >= 0")
    if not isinstance(o["mask"], (bool, np.bool_)) and o["mask"] not in (0, 1):
        raise _error(f"mask={o['mask']!r}: must be True or False")


def _field_order(clip: vs.VideoNode) -> int | None:
    """The row parity of the first field (0 top) of an interlaced clip (`_FieldBased` 1 or 2 on its
    first frame, as source filters set it), None for a progressive one."""
    field_based = int(clip.get_frame(0).props.get("_FieldBased", 0))
    if field_based not in (1, 2):
        return None
    first = 0 if field_based == 2 else 1
    said = f"clip is interlaced (_FieldBased={field_based}, {('top', 'bottom')[first]} field first)"
    if not hasattr(core, "bwdif"):
        raise _error(
            f"{said}: it is restored field by field, which needs the bwdif plugin (pip install vapoursynth-bwdif); "
            "or deinterlace it first (e.g. QTGMC), or if its pictures are progressive (PsF, film) say so with "
            "std.SetFieldBased(clip, 0)"
        )
    return first


def _field_pictures(clip: vs.VideoNode, first: int) -> vs.VideoNode:
    """Two full-height pictures per frame, one per field in display order, each keeping its field's
    own rows exactly (bwdif fills the other rows: the other field's lines where nothing moves, so a
    still face keeps its full vertical detail; interpolated where something moves). Half floats,
    which bwdif does not take, go through single floats and back, exactly."""
    field = 3 if first == 0 else 2
    if clip.format.id == vs.RGBH:
        return core.resize.Point(core.bwdif.Bwdif(core.resize.Point(clip, format=vs.RGBS), field=field), format=vs.RGBH)
    return core.bwdif.Bwdif(clip, field=field)


def _woven(clip: vs.VideoNode, pictures: vs.VideoNode, first: int) -> vs.VideoNode:
    """Frame n of `clip` with the rows of its first field from picture 2n and those of its second
    from picture 2n + 1 (chroma rows too: interlaced chroma alternates by field); `clip`'s frame
    properties, and the face properties of the first field's picture."""

    def weave(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        fout = f[0].copy()
        for k, picture in enumerate(f[1:]):
            rows = slice((first + k) % 2, None, 2)
            for p in range(fout.format.num_planes):
                np.asarray(fout[p])[rows] = np.asarray(picture[p])[rows]
        for name in (PROP_COUNT, PROP_IDS, PROP_BOXES):
            if name in f[1].props:
                fout.props[name] = f[1].props[name]
        return fout

    return core.std.ModifyFrame(clip, [clip, pictures[::2], pictures[1::2]], weave)


class _Colour:
    """Resizer arguments to RGBS and back for a clip the filter does not process as it is."""

    def __init__(self, to_rgb: dict, from_rgb: dict) -> None:
        self.to_rgb = to_rgb
        self.from_rgb = from_rgb


def _check_colour(
    clip: vs.VideoNode, fmt: vs.VideoFormat, matrix_in: object, transfer_in: object, range_in: object
) -> _Colour:
    for name, value, allowed in (
        ("matrix_in", matrix_in, MATRICES), ("transfer_in", transfer_in, TRANSFERS), ("range_in", range_in, RANGES)
    ):
        if value is not None and (not _is_int(value) or int(value) not in allowed):
            raise _error(f"{name}={value!r}: use one of {', '.join(map(str, allowed))} (VapourSynth enum values)")
    if fmt.color_family == vs.RGB:
        return _Colour({}, {})
    props = clip.get_frame(0).props
    if fmt.color_family == vs.GRAY:  # black and white: R = G = B = Y; scans are full range unless they say
        rng = int(range_in if range_in is not None else props.get("_Range", vs.RANGE_FULL))
        return _Colour({"range_in": rng}, {"matrix": 6, "range": rng})  # any matrix gives Y back from R = G = B
    matrix = matrix_in if matrix_in is not None else int(props.get("_Matrix", UNSPECIFIED))
    if matrix not in MATRICES:
        raise _error(
            f"the YUV clip's matrix is unknown (_Matrix={props.get('_Matrix', 'absent')}); pass matrix_in= "
            "(e.g. matrix_in=1 for BT.709, 6 for BT.601), and transfer_in= / range_in= if those are missing too"
        )
    rng = range_in if range_in is not None else int(props.get("_Range", vs.RANGE_LIMITED))
    to_rgb = {"matrix_in": int(matrix)}
    if range_in is not None:
        to_rgb["range_in"] = int(range_in)
    if transfer_in is not None:
        to_rgb["transfer_in"] = to_rgb_transfer = int(transfer_in)
        to_rgb["transfer"] = to_rgb_transfer  # keep the signal gamma-encoded: no linearisation
    return _Colour(to_rgb, {"matrix": int(matrix), "range": int(rng)})


def _fps(clip: vs.VideoNode) -> float:
    if clip.fps.numerator > 0:
        return clip.fps.numerator / clip.fps.denominator
    props = clip.get_frame(0).props
    if props.get("_DurationNum", 0) > 0 and props.get("_DurationDen", 0) > 0:
        return props["_DurationDen"] / props["_DurationNum"]
    raise _error("clip has a variable frame rate and no _DurationNum/_DurationDen; use std.AssumeFPS first")


def _pixel_aspect(clip: vs.VideoNode) -> float:
    """_SARNum/_SARDen of the first frame (source filters set them from the file); 1 when absent."""
    props = clip.get_frame(0).props
    num, den = props.get("_SARNum", 0), props.get("_SARDen", 0)
    return num / den if num > 0 and den > 0 else 1.0


def _restorer(
    model: object, backend: str, device_index: int, num_streams: int | None, half: bool
) -> StreamedOrtRestorer:
    if model is not None and not isinstance(model, (str, os.PathLike)):
        raise DVFaceError(f"must be a folder path or None, got {type(model).__name__}")
    key = (str(resolve_model(model).resolve()), backend, device_index, num_streams, half)
    with _LOCK:
        if key not in _RESTORERS:
            _RESTORERS[key] = load_restorer(Path(key[0]), backend, device_index, num_streams, half)
        return _RESTORERS[key]


# --- frames <-> numpy ------------------------------------------------------------------------


def _read(frame: vs.VideoFrame) -> np.ndarray:
    """HxWx3 RGB copy (half floats widened to float32, which the face code works in)."""
    out = np.stack([np.asarray(frame[p]) for p in range(3)], axis=-1)
    return out.astype(np.float32) if out.dtype == np.float16 else out


def _write(frame: vs.VideoFrame, box: tuple[int, int, int, int], rgb: np.ndarray) -> None:
    x0, y0, x1, y1 = box
    for p in range(3):
        plane = np.asarray(frame[p])
        plane[y0:y1, x0:x1] = rgb[..., p].astype(plane.dtype, copy=False)


class _FrameRegions:
    """The frames of one request, read by region (`compositor.FrameRegions`): only the pixels
    around the faces are copied out of the core, and windows already cached read none at all."""

    def __init__(self, frames: list[vs.VideoFrame], first: int) -> None:
        self._frames = frames
        self._first = first

    def __contains__(self, n: object) -> bool:
        return isinstance(n, int) and 0 <= n - self._first < len(self._frames)

    def region(self, n: int, box: tuple[int, int, int, int]) -> np.ndarray:
        x0, y0, x1, y1 = box
        frame = self._frames[n - self._first]
        out = np.stack([np.asarray(frame[p])[y0:y1, x0:x1] for p in range(3)], axis=-1)
        return out.astype(np.float32) if out.dtype == np.float16 else out


def _analysis_frames(work: vs.VideoNode) -> Iterator[np.ndarray]:
    """What the detector sees: 8-bit RGB of every frame, in order (the core prefetches ahead)."""
    feed = work if work.format.id == vs.RGB24 else core.resize.Point(work, format=vs.RGB24)
    for frame in feed.frames(close=True):
        yield _read(frame)


def _set_face_props(frame: vs.VideoFrame, comp: ClipCompositor, n: int) -> None:
    info = comp.frame_faces(n)
    props = frame.props
    props[PROP_COUNT] = len(info.ids)
    for name in (PROP_IDS, PROP_BOXES):
        if name in props:
            del props[name]
    if info.ids:
        props[PROP_IDS] = list(info.ids)
        props[PROP_BOXES] = [v for box in info.boxes for v in box]


# --- graph -----------------------------------------------------------------------------------


def _shift(clip: vs.VideoNode, d: int) -> vs.VideoNode:
    """Frame n of the result is frame n + d of `clip`, clamped to the clip (only in-range ones are used)."""
    if d == 0:
        return clip
    if d > 0:
        return clip[d:] + clip[-1] * d
    return clip[0] * -d + clip[:d]


def _restored_clip(work: vs.VideoNode, comp: ClipCompositor) -> vs.VideoNode:
    shifted: dict[int, vs.VideoNode] = {}  # offset -> the input shifted by it, made when first needed
    plain = core.std.SetFrameProps(core.std.RemoveFrameProps(work, [PROP_BOXES, PROP_IDS]), **{PROP_COUNT: 0})
    nodes: dict[tuple[int, int], vs.VideoNode] = {}

    def render(n: int, f: vs.VideoFrame | list[vs.VideoFrame], first: int) -> vs.VideoFrame:
        frames = f if isinstance(f, list) else [f]
        patch = comp.render(n, _FrameRegions(frames, n + first))
        fout = frames[-first].copy()
        if patch is not None:
            _write(fout, patch.box, patch.pixels)
        _set_face_props(fout, comp, n)
        return fout

    def select(n: int) -> vs.VideoNode:
        if not comp.faces_at(n):
            return plain
        lo, hi = comp.span(n)
        key = (lo - n, hi - n)
        with _LOCK:
            node = nodes.get(key)
            if node is None:
                for d in range(*key):
                    if d not in shifted:
                        shifted[d] = _shift(work, d)
                clips = [shifted[d] for d in range(*key)]
                node = nodes[key] = core.std.ModifyFrame(work, clips, partial(render, first=key[0]))
        return node

    return core.std.FrameEval(work, select)


def _matte_clip(clip: vs.VideoNode, comp: ClipCompositor, *, binary: bool) -> vs.VideoNode:
    """The face matte at the clip's size and sample type, with the source's frame properties.

    binary: 1 wherever the matte is not 0, the mask that merges a converted clip back so that
    every pixel the paste left alone keeps the input's exact value.
    """
    grey = core.std.ShufflePlanes(clip, 0, vs.GRAY)
    peak = (1 << grey.format.bits_per_sample) - 1 if grey.format.sample_type == vs.INTEGER else 1.0

    def draw(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        fout = f.copy()
        plane = np.asarray(fout[0])
        plane[...] = 0
        found = comp.matte(n)
        if found is not None:
            (x0, y0, x1, y1), matte = found
            if binary:
                values = np.where(matte > 0, peak, 0)
            elif grey.format.sample_type == vs.INTEGER:
                values = np.rint(matte * peak)
            else:
                values = matte
            plane[y0:y1, x0:x1] = values.astype(plane.dtype)
        _set_face_props(fout, comp, n)
        return fout

    return core.std.ModifyFrame(grey, grey, draw)
