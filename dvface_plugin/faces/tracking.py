"""Associate per-frame detections into face tracks with stable ids.

Matching uses a constant-velocity prediction of every open track, scored by box overlap and by
landmark distance in units of the face size, and solved jointly per frame (Hungarian), so two faces
that cross keep their ids. Short detection gaps are bridged by linear interpolation, because a
face that flickers in and out of restoration is worse than a face restored through a missed frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from .detector import Detection

_NO_MATCH = 1e6


@dataclass
class TrackPoint:
    """A face in one frame of a track; `score` is None where the point was interpolated."""

    frame: int
    box: np.ndarray  # (4,) x0 y0 x1 y1
    landmarks: np.ndarray  # (5, 2)
    score: float | None


@dataclass
class _OpenTrack:
    points: list[TrackPoint] = field(default_factory=list)
    box_velocity: np.ndarray = field(default_factory=lambda: np.zeros(4))
    lm_velocity: np.ndarray = field(default_factory=lambda: np.zeros((5, 2)))

    @property
    def last(self) -> TrackPoint:
        return self.points[-1]

    def predict(self, frame: int) -> tuple[np.ndarray, np.ndarray]:
        dt = frame - self.last.frame
        return self.last.box + self.box_velocity * dt, self.last.landmarks + self.lm_velocity * dt

    def add(self, frame: int, det: Detection) -> None:
        box = det.box.astype(np.float64)
        lms = det.landmarks.astype(np.float64)
        if self.points:
            dt = frame - self.last.frame
            # Exponential averaging keeps one noisy detection from throwing the prediction off.
            self.box_velocity = 0.5 * self.box_velocity + 0.5 * (box - self.last.box) / dt
            self.lm_velocity = 0.5 * self.lm_velocity + 0.5 * (lms - self.last.landmarks) / dt
        self.points.append(TrackPoint(frame, box, lms, det.score))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def _face_size(box: np.ndarray) -> float:
    return float(max(np.sqrt(max((box[2] - box[0]) * (box[3] - box[1]), 0.0)), 1.0))


def _cost(track: _OpenTrack, frame: int, det: Detection, max_distance: float) -> float:
    box, lms = track.predict(frame)
    size = _face_size(box)
    distance = float(np.linalg.norm(lms - det.landmarks, axis=1).mean()) / size
    ratio = _face_size(det.box) / size
    # A track seen once has no velocity yet, so its prediction is rougher: allow twice the distance.
    gate = max_distance * (2.0 if len(track.points) == 1 else 1.0)
    if distance > gate or not 0.5 < ratio < 2.0:
        return _NO_MATCH
    return distance + 0.5 * (1.0 - _iou(box, det.box))


def _interpolate(points: list[TrackPoint]) -> list[TrackPoint]:
    """Fill every missing frame between two detections linearly."""
    out = [points[0]]
    for a, b in zip(points, points[1:]):
        for f in range(a.frame + 1, b.frame):
            t = (f - a.frame) / (b.frame - a.frame)
            out.append(
                TrackPoint(f, (1 - t) * a.box + t * b.box, (1 - t) * a.landmarks + t * b.landmarks, None)
            )
        out.append(b)
    return out


def track_faces(
    detections: Sequence[Sequence[Detection]],
    *,
    max_gap: int = 5,
    min_hits: int = 3,
    max_distance: float = 1.0,
) -> list[list[TrackPoint]]:
    """Tracks (each a list of consecutive-frame points), ordered by first frame.

    max_gap: frames a face may go undetected and still continue its track (gaps are interpolated).
    min_hits: tracks with fewer real detections are dropped as false positives (capped at the clip
        length, so a two-frame clip can still have faces).
    max_distance: largest mean landmark distance, in face sizes, from the predicted position that
        still counts as the same face (twice that for a track seen only once).
    """
    open_tracks: list[_OpenTrack] = []
    closed: list[_OpenTrack] = []
    for frame, dets in enumerate(detections):
        still_open = []
        for t in open_tracks:
            (still_open if frame - t.last.frame <= max_gap + 1 else closed).append(t)
        open_tracks = still_open
        matched_dets: set[int] = set()
        if open_tracks and dets:
            cost = np.array([[_cost(t, frame, d, max_distance) for d in dets] for t in open_tracks])
            rows, cols = linear_sum_assignment(cost)
            for r, c in zip(rows, cols):
                if cost[r, c] < _NO_MATCH:
                    open_tracks[r].add(frame, dets[c])
                    matched_dets.add(c)
        for c, det in enumerate(dets):
            if c not in matched_dets:
                track = _OpenTrack()
                track.add(frame, det)
                open_tracks.append(track)
    closed.extend(open_tracks)
    needed = max(1, min(min_hits, len(detections)))
    kept = [t.points for t in closed if len(t.points) >= needed]
    kept.sort(key=lambda pts: (pts[0].frame, pts[0].box[0]))
    return [_interpolate(pts) for pts in kept]
