"""`dvface eval`: score restored clips against ground truth (PSNR, SSIM, E_warp, flicker,
detail, identity), or without ground truth (self-flow E_warp, flicker; detail and identity
against the input the methods restored).

Matching: ``--pred`` and ``--gt`` take video files or folders. A folder holds either clips
directly (``<root>/<clip>.mp4``: clip = file name, method = folder name) or one folder per clip
(``<root>/<clip>/<method>.mp4``, the benchmark layout: every file except ``--gt-name`` is a
method to score). An explicit file is named by its folder (clip) and file name (method) when it
sits beside a ``--gt-name`` file or shares its file name with another given file, and otherwise
by its file name (clip) and folder (method). Predictions are paired with the ground truth of
the same clip name; a single ground-truth file takes any single-clip prediction.

Detail is the Laplacian variance of the face (centre half of the crop) as a ratio to the
reference's on the same frames (1 = as sharp, below 1 = softer); identity is the distance between
dlib face descriptors of each frame and its reference frame on every 8th reference frame (lower
is better, < 0.6 = same person; needs `pip install "dvface-plugin[eval]"`, else it is left out).
The reference is the ground truth with ``--gt``; without it, the clip's input: the method named
``--ref`` (default LQ) in the same clip folder, or a video file given to ``--ref`` for a single
clip. The reference's own row has detail 1 and identity 0; methods are offset-searched against
it. ``--json`` rows also hold ``detail_var``, the mean Laplacian variance itself. Stripes is the
share of the face's high-band spectrum on the two frequency axes (metrics.py): a painted lattice
raises detail and stripes together, real texture detail alone.

Each clip is decoded once per pass and frames are streamed, so memory does not grow with clip
length; the ground-truth flow is computed once per clip and shared by every method.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from . import face_identity
from .errors import InputError
from .face_identity import Box, FaceIdentity, IdentityUnavailable
from .metrics import (
    FlickerMeter,
    FlowEstimator,
    OnnxFaceModel,
    WarpMeter,
    descriptor_distance,
    detail,
    detail_ratio,
    find_offset,
    keypoint_distance,
    luma_u8,
    mean_psnr,
    psnr_luma,
    rgb_to_y,
    ssim_luma,
    stripe_share,
)

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".y4m"}
OFFSET_FRAMES = 40  # leading frames used to find the temporal offset
OFFSET_SIZE = 128  # offset search runs on frames downscaled to this size
IDENTITY_STEP = 8  # identity is scored on reference frames t with t % 8 == 0 (dlib is slow)
METRIC_KEYS = ("psnr", "ssim", "ewarp", "flicker", "detail", "stripes", "identity", "akd")


def _read_frames(path: Path) -> Iterator[np.ndarray]:
    """Decode a video to RGB uint8 frames, one at a time (swap for the media module later)."""
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as exc:
        raise InputError(f"cannot open video {path}: {exc}") from exc
    with container:
        if not container.streams.video:
            raise InputError(f"{path} has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            yield frame.to_ndarray(format="rgb24")


@dataclass(frozen=True)
class Video:
    path: Path
    clip: str
    method: str


def _videos_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)


def collect(paths: list[Path], gt_name: str, want_gt: bool) -> list[Video]:
    """Videos named by clip and method, from files and folders (see module docstring)."""
    videos: list[Video] = []
    files: list[Path] = []
    for path in paths:
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            direct = _videos_in(path)
            if direct:
                videos += [Video(p, p.stem, path.name) for p in direct]
                continue
            for sub in sorted(p for p in path.iterdir() if p.is_dir()):
                for p in _videos_in(sub):
                    if (p.stem == gt_name) == want_gt:
                        videos.append(Video(p, sub.name, p.stem))
        else:
            raise InputError(f"{path} does not exist; pass a video file or a folder of clips")
    stems = [p.stem for p in files]
    for p in files:
        in_clip_folder = any(q.stem == gt_name for q in _videos_in(p.parent))
        if in_clip_folder or stems.count(p.stem) > 1:
            videos.append(Video(p, p.parent.name, p.stem))
        else:
            videos.append(Video(p, p.stem, p.parent.name or p.stem))
    if not videos:
        kind = "ground-truth" if want_gt else "prediction"
        raise InputError(f"no {kind} videos found in {', '.join(map(str, paths))} "
                         f"(looked for {', '.join(sorted(VIDEO_SUFFIXES))})")
    return videos


def pair_videos(preds: list[Video], gts: list[Video]) -> dict[str, tuple[Video, list[Video]]]:
    """{clip: (gt, [preds])}; a single GT file takes a single prediction whatever its name."""
    by_clip: dict[str, Video] = {}
    for gt in gts:
        if gt.clip in by_clip:
            raise InputError(f"two ground-truth videos for clip {gt.clip!r}: "
                             f"{by_clip[gt.clip].path} and {gt.path}")
        by_clip[gt.clip] = gt
    if len(gts) == 1 and len({p.clip for p in preds}) == 1:
        gt = gts[0]
        return {gt.clip: (gt, [Video(p.path, gt.clip, p.method) for p in preds])}
    pairs: dict[str, tuple[Video, list[Video]]] = {}
    for pred in preds:
        if pred.clip not in by_clip:
            raise InputError(f"no ground truth for clip {pred.clip!r} ({pred.path}); ground "
                             f"truth clips are {sorted(by_clip)}")
        pairs.setdefault(pred.clip, (by_clip[pred.clip], []))[1].append(pred)
    return pairs


def _small_y(frame: np.ndarray) -> np.ndarray:
    return cv2.resize(frame, (OFFSET_SIZE, OFFSET_SIZE), interpolation=cv2.INTER_AREA)


def search_offset(pred: Path, gt: Path, max_shift: int) -> int:
    """Temporal offset of ``pred`` against ``gt`` from their leading frames (pred[t+s] ~ gt[t])."""
    if max_shift <= 0:
        return 0
    p = [_small_y(f) for f in islice(_read_frames(pred), OFFSET_FRAMES)]
    g = [_small_y(f) for f in islice(_read_frames(gt), OFFSET_FRAMES)]
    return find_offset(p, g, max_shift)[0]


@dataclass
class _Scorer:
    """Per-method running metrics for one clip."""

    video: Video
    offset: int = 0
    frames: Iterator[np.ndarray] | None = None
    next_index: int = 0
    prev: np.ndarray | None = None
    done: bool = False
    psnr: list[float] = field(default_factory=list)
    ssim: list[float] = field(default_factory=list)
    detail: dict[int, float] = field(default_factory=dict)  # by this clip's frame index
    stripes: list[float] = field(default_factory=list)
    identity: list[float] = field(default_factory=list)
    faces: dict[int, tuple[Box, np.ndarray] | None] = field(default_factory=dict)  # as reference
    akd: list[float] = field(default_factory=list)
    warp: WarpMeter = field(default_factory=WarpMeter)
    flicker: FlickerMeter = field(default_factory=FlickerMeter)

    def fetch(self, index: int) -> np.ndarray | None:
        """Frame ``index`` of the prediction (indices only increase), None past the end."""
        if self.frames is None:
            self.frames = _read_frames(self.video.path)
        while not self.done and self.next_index <= index:
            frame = next(self.frames, None)
            if frame is None:
                self.done = True
                return None
            self.next_index += 1
            if self.next_index - 1 == index:
                return frame
        return None


@dataclass(frozen=True)
class FaceModels:
    """dlib identity (None when not installed, ``identity_missing`` says why) and an optional
    ONNX landmark model for AKD."""

    identity: FaceIdentity | None = None
    landmarks: OnnxFaceModel | None = None
    identity_missing: str = "identity model not loaded"

    @classmethod
    def load(cls, landmarks: OnnxFaceModel | None = None) -> FaceModels:
        """With dlib's models when installed; without them identity is left out, not an error."""
        try:
            return cls(face_identity.load_face_identity(), landmarks)
        except IdentityUnavailable as exc:
            return cls(None, landmarks, str(exc))


def _reference_face(ref: _Scorer, t: int, frame: np.ndarray, models: FaceModels) -> None:
    """Face box and descriptor of reference frame ``t``, on every IDENTITY_STEP-th frame."""
    if models.identity is None or t % IDENTITY_STEP or t in ref.faces:
        return
    box = models.identity.face_box(frame)
    ref.faces[t] = (box, models.identity.descriptor(frame, box)) if box else None


def _identity(scorer: _Scorer, frame: np.ndarray, ref: _Scorer, t: int,
              models: FaceModels) -> None:
    """Distance to reference frame ``t``, seeded with the reference's face box."""
    face = ref.faces.get(t)
    if models.identity is not None and face is not None:
        box, ref_descriptor = face
        scorer.identity.append(descriptor_distance(models.identity.descriptor(frame, box),
                                                   ref_descriptor))


def _result(s: _Scorer, ref: _Scorer | None, paired: bool, models: FaceModels) -> dict[str, Any]:
    """One row. ``ref`` is what detail and identity compare with (the ground truth when
    ``paired``, else the input); ``s is ref`` for the reference's own row."""
    own = s is ref
    scored = paired and not own
    pairs = [(v, ref.detail[j - s.offset]) for j, v in s.detail.items()
             if ref is not None and j - s.offset in ref.detail]
    faces = ref is not None and any(ref.faces.values())
    row: dict[str, Any] = {
        "clip": s.video.clip, "method": s.video.method, "pred": str(s.video.path),
        "gt": str(ref.video.path) if paired and ref else None,
        "ref": str(ref.video.path) if ref else None,
        "offset": s.offset if ref and not own else None,
        "frames": len(s.psnr) if scored else s.next_index,
        "psnr": mean_psnr(s.psnr) if scored else None,
        "ssim": float(np.mean(s.ssim)) if scored and s.ssim else None,
        "ewarp": s.warp.value * 1e3, "ewarp_flow": "gt" if paired else "self",
        "flicker": s.flicker.value,
        "detail": detail_ratio([v for v, _ in pairs], [r for _, r in pairs]) if pairs else None,
        "detail_var": float(np.mean(list(s.detail.values()))) if s.detail else None,
        "stripes": float(np.nanmean(s.stripes)) if any(map(math.isfinite, s.stripes)) else None,
        "identity": (0.0 if faces else None) if own else
                    (float(np.mean(s.identity)) if s.identity else None),
        "akd": float(np.mean(s.akd)) if s.akd else None,
    }
    omitted: dict[str, str] = {}
    if not paired:
        omitted.update(dict.fromkeys(("psnr", "ssim", "akd"), "needs ground truth (--gt)"))
    elif scored and models.landmarks is None:
        omitted["akd"] = "no landmark model given (--landmark-model MODEL.onnx)"
    if ref is None:
        omitted.update(dict.fromkeys(("detail", "identity"), "no reference input in the clip "
                                     "(--ref NAME_OR_PATH, default LQ)"))
    elif models.identity is None:
        omitted["identity"] = models.identity_missing
    elif not faces:
        omitted["identity"] = "dlib found no frontal face in the reference's sampled frames"
    row["omitted"] = omitted
    return row


def evaluate_clip(gt: Video, preds: list[Video], max_shift: int = 2,
                  models: FaceModels | None = None) -> list[dict[str, Any]]:
    """Score every prediction of one clip against its ground truth in a single GT pass.

    Returns one row per prediction and a final reference row (method "GT") holding the
    ground truth's own E_warp and flicker, the floor the methods should be read against."""
    models = FaceModels.load() if models is None else models
    scorers = [_Scorer(p, search_offset(p.path, gt.path, max_shift)) for p in preds]
    reference = _Scorer(gt)
    flows = FlowEstimator()
    prev_y = prev_gt = None
    for t, gt_frame in enumerate(_read_frames(gt.path)):
        if all(s.done for s in scorers):
            break
        gt_luma = rgb_to_y(gt_frame)
        gt_y = np.clip(np.rint(gt_luma), 0, 255).astype(np.uint8)
        flow = mask = None
        if prev_y is not None:
            flow, mask = flows.pair(prev_y, gt_y)
            reference.warp.update(prev_gt, gt_frame, flow, mask)
        reference.flicker.update(gt_frame)
        reference.detail[t] = detail(gt_frame)
        reference.stripes.append(stripe_share(gt_frame))
        _reference_face(reference, t, gt_frame, models)
        reference.next_index = t + 1
        for s in scorers:
            j = t + s.offset
            if j < 0 or s.done:
                continue
            frame = s.fetch(j)
            if frame is None:
                continue
            if frame.shape != gt_frame.shape:
                raise InputError(f"{s.video.path} is {frame.shape[1]}x{frame.shape[0]} but its "
                                 f"ground truth {gt.path} is {gt_frame.shape[1]}x"
                                 f"{gt_frame.shape[0]}; resize one to match")
            luma = rgb_to_y(frame)
            s.psnr.append(psnr_luma(luma, gt_luma))
            s.ssim.append(ssim_luma(luma, gt_luma))
            if s.prev is not None and flow is not None:
                s.warp.update(s.prev, frame, flow, mask)
            s.flicker.update(frame)
            s.detail[j] = detail(frame)
            s.stripes.append(stripe_share(frame))
            _identity(s, frame, reference, t, models)
            if models.landmarks is not None:
                s.akd.append(keypoint_distance(models.landmarks.landmarks(frame),
                                               models.landmarks.landmarks(gt_frame)))
            s.prev = frame
        prev_y, prev_gt = gt_y, gt_frame
    rows = [_result(s, reference, True, models) for s in scorers]
    return rows + [{**_result(reference, reference, True, models), "method": "GT"}]


def _score_alone(video: Video, models: FaceModels, ref: _Scorer | None = None,
                 offset: int = 0, is_ref: bool = False) -> _Scorer:
    """Self-flow E_warp, flicker and per-frame detail of a whole clip; identity against
    ``ref`` (frame j is compared with reference frame j - offset), or, for the reference
    itself (``is_ref``), its sampled faces."""
    scorer = _Scorer(video, offset)
    flows = FlowEstimator()
    prev_y = None
    for j, frame in enumerate(_read_frames(video.path)):
        y = luma_u8(frame)
        if prev_y is not None:
            flow, mask = flows.pair(prev_y, y)
            scorer.warp.update(scorer.prev, frame, flow, mask)
        scorer.flicker.update(frame)
        scorer.detail[j] = detail(frame)
        scorer.stripes.append(stripe_share(frame))
        if is_ref:
            _reference_face(scorer, j, frame, models)
        elif ref is not None:
            _identity(scorer, frame, ref, j - offset, models)
        scorer.prev, prev_y = frame, y
        scorer.next_index += 1
    return scorer


def evaluate_no_reference(preds: list[Video], ref: Video | None = None, max_shift: int = 2,
                          models: FaceModels | None = None) -> list[dict[str, Any]]:
    """Rows for the clips of one clip name without ground truth: self-flow E_warp and flicker,
    and with ``ref`` (the input they restored) detail and identity against it, after the same
    offset search as with ground truth. ``ref`` scores 1 and 0 on its own row."""
    models = FaceModels.load() if models is None else models
    reference = _score_alone(ref, models, is_ref=True) if ref else None
    rows = []
    for video in preds:
        if reference is not None and video.path.resolve() == reference.video.path.resolve():
            scorer = reference
        else:
            offset = search_offset(video.path, ref.path, max_shift) if ref else 0
            scorer = _score_alone(video, models, reference, offset)
        rows.append(_result(scorer, reference, False, models))
    return rows


def _mean_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-method means over clips (missing values skipped), appended when there are >1 clips."""
    clips = {r["clip"] for r in rows}
    if len(clips) < 2:
        return []
    out = []
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        mean: dict[str, Any] = {"clip": "mean", "method": method,
                                "frames": sum(r["frames"] for r in mine)}
        for key in METRIC_KEYS:
            vals = [r[key] for r in mine if r.get(key) is not None and not math.isnan(r[key])]
            mean[key] = float(np.mean(vals)) if vals else None
        out.append(mean)
    return out


def _fmt(value: Any, digits: int) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return "inf" if math.isinf(value) else f"{value:.{digits}f}"
    return str(value)


COLUMNS = (("clip", "clip", 0), ("method", "method", 0), ("offset", "offset", 0),
           ("frames", "frames", 0), ("psnr", "PSNR", 2), ("ssim", "SSIM", 4),
           ("ewarp", "E*warp (1e-3)", 3), ("flicker", "flicker", 3),
           ("detail", "detail", 2), ("stripes", "stripes", 3), ("identity", "identity", 3),
           ("akd", "AKD", 4))


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """A markdown table of the rows; columns no row has a value for are left out."""
    cols = [c for c in COLUMNS if any(r.get(c[0]) is not None for r in rows)]
    lines = ["| " + " | ".join(c[1] for c in cols) + " |",
             "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(k), d) for k, _, d in cols) + " |")
    return "\n".join(lines)


def json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


def _input_reference(videos: list[Video], ref: str) -> Video | None:
    """The input video of one clip: ``ref`` as a video file, else the method named ``ref``
    among the clip's videos or beside them in its clip folder (None when there is none)."""
    path, first = Path(ref), videos[0]
    if path.is_file():
        return Video(path, first.clip, path.stem)
    if path.suffix.lower() in VIDEO_SUFFIXES or len(path.parts) > 1:
        raise InputError(f"--ref {ref} does not exist; give a video file or a method name")
    named = next((v for v in videos if v.method == ref), None)
    if named is None and first.path.parent.name == first.clip:  # <clip>/<method> layout
        named = next((Video(p, first.clip, ref) for p in _videos_in(first.path.parent)
                      if p.stem == ref), None)
    return named


def evaluate(preds: list[Path], gts: list[Path] | None, max_shift: int = 2,
             gt_name: str = "GT", models: FaceModels | None = None,
             ref: str = "LQ") -> list[dict[str, Any]]:
    """Rows for every prediction (and GT reference rows), then per-method means. Without
    ``gts``, ``ref`` names the input of each clip (a method name, or one video file when all
    predictions are of one clip) that detail and identity compare with."""
    models = FaceModels.load() if models is None else models
    pred_videos = collect(preds, gt_name, want_gt=False)
    rows = []
    if not gts:
        clips: dict[str, list[Video]] = {}
        for v in pred_videos:
            clips.setdefault(v.clip, []).append(v)
        if len(clips) > 1 and Path(ref).is_file():
            raise InputError(f"--ref {ref} is one video but the predictions hold clips "
                             f"{sorted(clips)}; give the input's method name instead (e.g. LQ)")
        for videos in clips.values():
            rows += evaluate_no_reference(videos, _input_reference(videos, ref), max_shift,
                                          models)
    else:
        gt_videos = collect(gts, gt_name, want_gt=True)
        for gt, clip_preds in pair_videos(pred_videos, gt_videos).values():
            rows += evaluate_clip(gt, clip_preds, max_shift, models)
    return rows + _mean_rows(rows)
