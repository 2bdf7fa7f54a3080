"""`dvface eval`: score restored clips against ground truth (PSNR, SSIM, E_warp, flicker),
or on their own without ground truth (self-flow E_warp, flicker).

Matching: ``--pred`` and ``--gt`` take video files or folders. A folder holds either clips
directly (``<root>/<clip>.mp4``: clip = file name, method = folder name) or one folder per clip
(``<root>/<clip>/<method>.mp4``, the benchmark layout: every file except ``--gt-name`` is a
method to score). An explicit file is named by its folder (clip) and file name (method) when it
sits beside a ``--gt-name`` file or shares its file name with another given file, and otherwise
by its file name (clip) and folder (method). Predictions are paired with the ground truth of
the same clip name; a single ground-truth file takes any single-clip prediction.

Each clip is decoded once per pass and frames are streamed, so memory does not grow with clip
length; the ground-truth flow is computed once per clip and shared by every method.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from .errors import InputError
from .metrics import (FlickerMeter, FlowEstimator, OnnxFaceModel, OnnxSpec, WarpMeter,
                      cosine_similarity, find_offset, keypoint_distance, mean_psnr, psnr_luma,
                      rgb_to_y, ssim_luma)

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".y4m"}
OFFSET_FRAMES = 40  # leading frames used to find the temporal offset
OFFSET_SIZE = 128  # offset search runs on frames downscaled to this size
METRIC_KEYS = ("psnr", "ssim", "ewarp", "flicker", "identity", "akd")


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
    identity: list[float] = field(default_factory=list)
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
    identity: OnnxFaceModel | None = None
    landmarks: OnnxFaceModel | None = None

    def omitted(self) -> dict[str, str]:
        out = {}
        if self.identity is None:
            out["identity"] = "no recognition model given (--id-model MODEL.onnx)"
        if self.landmarks is None:
            out["akd"] = "no landmark model given (--landmark-model MODEL.onnx)"
        return out


def _result(scorer: _Scorer, gt: Video | None, models: FaceModels) -> dict[str, Any]:
    row: dict[str, Any] = {
        "clip": scorer.video.clip, "method": scorer.video.method, "pred": str(scorer.video.path),
        "gt": str(gt.path) if gt else None, "offset": scorer.offset if gt else None,
        "frames": len(scorer.psnr) if gt else scorer.next_index,
        "psnr": mean_psnr(scorer.psnr) if gt else None,
        "ssim": float(np.mean(scorer.ssim)) if gt and scorer.ssim else None,
        "ewarp": scorer.warp.value * 1e3, "ewarp_flow": "gt" if gt else "self",
        "flicker": scorer.flicker.value,
        "identity": float(np.mean(scorer.identity)) if scorer.identity else None,
        "akd": float(np.mean(scorer.akd)) if scorer.akd else None,
    }
    if gt is None:
        row["omitted"] = dict.fromkeys(("psnr", "ssim", "identity", "akd"),
                                       "needs ground truth (--gt)")
    else:
        row["omitted"] = models.omitted()
    return row


def _face_scores(scorer: _Scorer, pred: np.ndarray, gt: np.ndarray, models: FaceModels) -> None:
    if models.identity is not None:
        scorer.identity.append(cosine_similarity(models.identity(pred), models.identity(gt)))
    if models.landmarks is not None:
        scorer.akd.append(keypoint_distance(models.landmarks.landmarks(pred),
                                            models.landmarks.landmarks(gt)))


def evaluate_clip(gt: Video, preds: list[Video], max_shift: int = 2,
                  models: FaceModels = FaceModels()) -> list[dict[str, Any]]:
    """Score every prediction of one clip against its ground truth in a single GT pass.

    Returns one row per prediction and a final reference row (method "GT") holding the
    ground truth's own E_warp and flicker, the floor the methods should be read against."""
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
            _face_scores(s, frame, gt_frame, models)
            s.prev = frame
        prev_y, prev_gt = gt_y, gt_frame
    rows = [_result(s, gt, models) for s in scorers]
    ref = _result(reference, None, FaceModels())
    ref.update(method="GT", pred=str(gt.path), frames=reference.next_index, omitted={})
    return rows + [ref]


def evaluate_no_reference(pred: Video) -> dict[str, Any]:
    """Self-flow E_warp and flicker of a clip without ground truth."""
    scorer = _Scorer(pred)
    flows = FlowEstimator()
    prev_y = None
    for frame in _read_frames(pred.path):
        y = np.clip(np.rint(rgb_to_y(frame)), 0, 255).astype(np.uint8)
        if prev_y is not None:
            flow, mask = flows.pair(prev_y, y)
            scorer.warp.update(scorer.prev, frame, flow, mask)
        scorer.flicker.update(frame)
        scorer.prev, prev_y = frame, y
        scorer.next_index += 1
    return _result(scorer, None, FaceModels())


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
           ("identity", "ID sim", 4), ("akd", "AKD", 4))


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """A markdown table of the rows; columns no row has a value for are left out."""
    cols = [c for c in COLUMNS if any(r.get(c[0]) is not None for r in rows)]
    lines = ["| " + " | ".join(c[1] for c in cols) + " |",
             "|" + "|".join("---" for _ in cols) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(k), d) for k, _, d in cols) + " |")
    return "\n".join(lines)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def evaluate(preds: list[Path], gts: list[Path] | None, max_shift: int = 2,
             gt_name: str = "GT", models: FaceModels = FaceModels()) -> list[dict[str, Any]]:
    """Rows for every prediction (and GT reference rows), then per-method means."""
    pred_videos = collect(preds, gt_name, want_gt=False)
    if not gts:
        rows = [evaluate_no_reference(v) for v in pred_videos]
    else:
        rows = []
        gt_videos = collect(gts, gt_name, want_gt=True)
        for gt, clip_preds in pair_videos(pred_videos, gt_videos).values():
            rows += evaluate_clip(gt, clip_preds, max_shift, models)
    return rows + _mean_rows(rows)


def _notes(rows: list[dict[str, Any]]) -> list[str]:
    notes = {f"{k} omitted: {v}" for r in rows for k, v in r.get("omitted", {}).items()}
    return sorted(notes)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval", help="score restored clips: PSNR, SSIM, E_warp, flicker",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pred", type=Path, nargs="+", action="extend", required=True,
                   help="restored video(s) or folder(s) of clips; repeatable")
    p.add_argument("--gt", type=Path, nargs="+", action="extend",
                   help="ground-truth video(s) or folder(s); omit for no-reference metrics")
    p.add_argument("--gt-name", default="GT",
                   help="file name (without suffix) of the ground truth in per-clip folders")
    p.add_argument("--offset-search", type=int, default=2, metavar="N",
                   help="search temporal offsets in [-N, N] frames (0 disables; default 2)")
    p.add_argument("--id-model", type=Path,
                   help="ONNX face-recognition model for identity similarity")
    p.add_argument("--landmark-model", type=Path, help="ONNX landmark model for AKD")
    p.add_argument("--landmark-coords", choices=("pixels", "unit", "signed"), default="pixels",
                   help="how the landmark model's outputs are scaled (default pixels)")
    p.add_argument("--landmark-mean", type=float, default=0.0,
                   help="input normalisation of the landmark model: (x - mean) / std, x in 0..255")
    p.add_argument("--landmark-std", type=float, default=255.0)
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print JSON rows")
    out.add_argument("--markdown", action="store_true", help="print a markdown table only")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.offset_search < 0:
        raise InputError("--offset-search must be 0 or more")
    if not args.gt and (args.id_model or args.landmark_model):
        raise InputError("--id-model and --landmark-model compare against ground truth; add --gt")
    models = FaceModels(
        OnnxFaceModel(OnnxSpec(args.id_model)) if args.id_model else None,
        OnnxFaceModel(OnnxSpec(args.landmark_model, args.landmark_mean, args.landmark_std,
                               args.landmark_coords)) if args.landmark_model else None)
    rows = evaluate(args.pred, args.gt, args.offset_search, args.gt_name, models)
    if args.json:
        print(json.dumps(_json_safe(rows), indent=2))
        return 0
    print(markdown_table(rows))
    if not args.markdown:
        mode = "ground-truth flow" if args.gt else "the clip's own flow (no reference)"
        print(f"\nE*warp: warping error x1e-3 ([0,1] RGB, DIS flow from {mode}); "
              "flicker: mean |median change| of 8x8-cell luma, 8-bit levels; "
              "offset s: pred frame t+s is compared with GT frame t.")
        for note in _notes(rows):
            print(note)
    return 0
