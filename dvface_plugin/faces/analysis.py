"""The analysis pass: detect, track and smooth faces over a whole clip, once, in frame order.

Running it up front (instead of per frame inside the host) makes every later frame request
independent of access order and of where a farm render's frame range starts: frame n always gets
the same face boxes and alignment, because they were computed from the whole clip.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from .align import CROP_SIZE, alignment_matrix, check_pixel_aspect
from .detector import CenterFaceDetector, Detection, FaceDetector
from .imageops import check_frame
from .smoothing import SmoothingSettings, smooth_points
from .trackdata import FaceState, Track, Tracks
from .tracking import track_faces


@dataclass(frozen=True)
class TrackingSettings:
    max_gap_seconds: float = 0.25  # detection gaps up to this long are interpolated, not split
    min_hits: int = 3  # tracks with fewer detections are treated as false positives
    max_distance: float = 1.0  # landmark distance (face sizes) still counted as the same face

    @classmethod
    def for_clip(cls, frame_count: int) -> "TrackingSettings":
        """The defaults, except that clips shorter than `min_hits` (photos) keep single detections."""
        return cls(min_hits=max(1, min(cls.min_hits, frame_count)))

    def max_gap(self, fps: float) -> int:
        return max(0, round(self.max_gap_seconds * fps))

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


def analysis_settings(
    detector: FaceDetector,
    tracking: TrackingSettings | None = None,
    smoothing: SmoothingSettings | None = None,
    crop_size: int = CROP_SIZE,
    pixel_aspect: float = 1.0,
    rotation: int = 0,
) -> dict[str, Any]:
    """Every setting that changes the result: with the input digest, the key of a cached analysis."""
    return {
        "detector": detector.settings,
        "tracking": (tracking or TrackingSettings()).as_dict(),
        "smoothing": (smoothing or SmoothingSettings()).as_dict(),
        "crop_size": crop_size,
        "pixel_aspect": pixel_aspect,
        "rotation": 90 * _quarter_turns(rotation),
    }


def _quarter_turns(rotation: int) -> int:
    """Counter-clockwise quarter turns (0-3) of a display rotation that is a multiple of 90 degrees."""
    if not isinstance(rotation, int) or rotation % 90:
        raise InputError(f"rotation must be a whole number of quarter turns in degrees (0, 90, 180, 270), "
                         f"got {rotation!r}")
    return rotation // 90 % 4


def _stored_points(points: np.ndarray, turns: int, width: int, height: int) -> np.ndarray:
    """Points of np.rot90(frame, turns) as points of the frame (width x height) itself, on the
    pixel grid the crops are sampled on (cv2's: pixel centres at integers), so a turned frame's
    crops are the upright frame's crops exactly."""
    x, y = points[..., 0], points[..., 1]
    right, bottom = width - 1, height - 1
    mapped = {0: (x, y), 1: (right - y, x), 2: (right - x, bottom - y), 3: (y, bottom - x)}[turns]
    return np.stack(mapped, axis=-1).astype(points.dtype)


def _detect_upright(detector: FaceDetector, frames: list[np.ndarray], turns: int,
                    pixel_aspect: float) -> list[list[Detection]]:
    """Detections in frames stored `turns` quarter turns from upright, in the stored frames'
    coordinates. The detector sees the pictures as displayed: it finds upright faces only."""
    if turns == 0:
        return detector.detect_batch(frames, pixel_aspect)
    h, w = frames[0].shape[:2]
    upright = detector.detect_batch([np.rot90(f, turns) for f in frames],
                                    pixel_aspect if turns == 2 else 1.0 / pixel_aspect)
    out = []
    for found in upright:
        faces = []
        for d in found:
            corners = _stored_points(d.box[[0, 1, 2, 3, 0, 3, 2, 1]].reshape(4, 2), turns, w, h)
            box = np.concatenate([corners.min(0), corners.max(0)]).astype(np.float32)
            faces.append(Detection(box, d.score, _stored_points(d.landmarks, turns, w, h)))
        out.append(faces)
    return out


def _hash_frame(h: Any, frame: np.ndarray) -> None:
    h.update(f"{frame.shape}{frame.dtype.str}".encode())
    h.update(np.ascontiguousarray(frame).data)


def frames_digest(frames: Iterable[np.ndarray]) -> str:
    """sha256 of the decoded frames (shape, dtype and pixels), as stored by `analyze`.

    Hashing decoded pixels rather than a file lets VapourSynth clips, Nuke renders and files share
    one cache rule.
    """
    h = hashlib.sha256()
    for frame in frames:
        _hash_frame(h, frame)
    return h.hexdigest()


def analyze(
    frames: Iterable[np.ndarray],
    fps: float,
    *,
    detector: FaceDetector | None = None,
    tracking: TrackingSettings | None = None,
    smoothing: SmoothingSettings | None = None,
    crop_size: int = CROP_SIZE,
    batch_size: int | None = None,
    progress: Callable[[int], None] | None = None,
    pixel_aspect: float = 1.0,
    rotation: int = 0,
) -> Tracks:
    """Detect, track and smooth every face of a clip; frames are consumed once, in order.

    frames: HxWx3 RGB uint8/uint16/float32 (0..1) arrays of one size; only an 8-bit copy reaches
        the detector. A clip without faces gives an empty `Tracks`.
    batch_size: frames per detector call; by default the detector's `preferred_batch` (1 if it
        has none).
    progress: called with the number of frames done after each batch (raise in it to cancel).
    pixel_aspect: pixel width over height (64/45 for anamorphic 16:9 PAL), and
    rotation: the display rotation in degrees counter-clockwise, a multiple of 90 (`media.display_geometry`):
        faces are detected and aligned as they are displayed, so crops show them upright.
    """
    try:
        fps = float(fps)
    except (TypeError, ValueError):
        raise InputError(f"fps must be a positive number, got {fps!r}") from None
    if not (fps > 0 and np.isfinite(fps)):
        raise InputError(f"fps must be a positive number, got {fps!r}")
    pixel_aspect = check_pixel_aspect(pixel_aspect)
    turns = _quarter_turns(rotation)
    detector = detector or CenterFaceDetector()
    if batch_size is None:
        batch_size = int(getattr(detector, "preferred_batch", 1))
    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}")
    tracking = tracking or TrackingSettings()
    smoothing = smoothing or SmoothingSettings()
    digest = hashlib.sha256()
    detections: list[list[Detection]] = []
    shape: tuple[int, ...] | None = None
    batch: list[np.ndarray] = []

    def flush() -> None:
        detections.extend(_detect_upright(detector, batch, turns, pixel_aspect))
        batch.clear()
        if progress is not None:
            progress(len(detections))

    for frame in frames:
        check_frame(frame)
        if shape is None:
            shape = frame.shape
        elif frame.shape != shape:
            raise InputError(
                f"frame {len(detections) + len(batch)} is {frame.shape}, the clip started at {shape}; "
                "all frames must share one size"
            )
        _hash_frame(digest, frame)
        batch.append(frame)
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    if shape is None:
        raise InputError("the clip has no frames")

    raw_tracks = track_faces(
        detections,
        max_gap=tracking.max_gap(fps),
        min_hits=tracking.min_hits,
        max_distance=tracking.max_distance,
    )
    tracks = []
    for tid, points in enumerate(raw_tracks, start=1):
        raw = np.stack([p.landmarks for p in points])
        smooth = smooth_points(raw, fps, smoothing)
        faces = [
            FaceState(p.frame, p.box, p.score, p.landmarks, s, alignment_matrix(s, crop_size, pixel_aspect))
            for p, s in zip(points, smooth)
        ]
        tracks.append(Track(tid, faces))
    return Tracks(
        width=shape[1],
        height=shape[0],
        frame_count=len(detections),
        fps=fps,
        input_sha256=digest.hexdigest(),
        settings=analysis_settings(detector, tracking, smoothing, crop_size, pixel_aspect, rotation),
        tracks=tracks,
        crop_size=crop_size,
    )
