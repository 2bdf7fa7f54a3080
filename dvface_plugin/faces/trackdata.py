"""The result of face analysis and its JSON file.

The file is the contract between the analysis pass and everything that restores or composites:
hosts may read it directly, artists may fix a bad landmark by hand, and a render farm reuses it
for every frame range. So it is versioned, carries the digest of the input and the settings that
produced it (to decide whether a cached file still applies), and is validated on load with errors
that point at the offending entry.

Format (version 1); coordinates are frame pixels, x right, y down, pixel centres at +0.5:

    {"format": "dvface-tracks", "version": 1,
     "input": {"sha256": <64 hex: frames_digest of the decoded frames>, "width": W, "height": H,
               "frames": N, "fps": F},
     "crop_size": 512,
     "settings": {"detector": {...}, "tracking": {...}, "smoothing": {...}, "crop_size": 512,
                  "pixel_aspect": 1.0,                 # pixel width / height; absent: 1
                  "rotation": 0},                      # display rotation the faces were found in
     "tracks": [{"id": 1,                          # unique, >= 1
                 "faces": [{"frame": 0,            # consecutive frames, ascending, < N
                            "box": [x0, y0, x1, y1],
                            "score": 0.93,         # null: interpolated across a detection gap
                            "landmarks_raw": [[x, y] x 5],  # left eye, right eye, nose,
                            "landmarks": [[x, y] x 5],      # left and right mouth corner
                            "affine": [[a, b, c], [d, e, f]]}]}]}  # frame -> crop; null: recompute

"landmarks" are the temporally smoothed points the affine is built from (fitted to the face as
displayed, so with non-square pixels it scales x and y apart); after editing them by hand, set
"affine" to null (or delete it) and it is recomputed on load.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .align import CROP_SIZE, alignment_matrix, check_pixel_aspect, transform_points

FORMAT = "dvface-tracks"
VERSION = 1
# Largest disagreement, in crop pixels at the landmarks, between a stored affine and the one the
# stored landmarks imply; above it the file was edited inconsistently.
_AFFINE_TOLERANCE = 0.01


@dataclass
class FaceState:
    """One face in one frame. `score` is None where the face was interpolated across a detection gap."""

    frame: int
    box: np.ndarray  # (4,) x0 y0 x1 y1, frame pixels
    score: float | None
    landmarks_raw: np.ndarray  # (5, 2) as detected (or interpolated)
    landmarks: np.ndarray  # (5, 2) temporally smoothed; what the affine is built from
    affine: np.ndarray  # (2, 3) frame pixels -> crop pixels

    @property
    def size(self) -> float:
        """Longer side of the box in pixels."""
        return float(max(self.box[2] - self.box[0], self.box[3] - self.box[1]))


@dataclass
class Track:
    id: int
    faces: list[FaceState]  # consecutive frames, ascending

    @property
    def first_frame(self) -> int:
        return self.faces[0].frame

    @property
    def last_frame(self) -> int:
        return self.faces[-1].frame

    @property
    def median_size(self) -> float:
        return float(np.median([f.size for f in self.faces]))

    def at(self, frame: int) -> FaceState | None:
        i = frame - self.first_frame
        return self.faces[i] if 0 <= i < len(self.faces) else None


@dataclass
class Tracks:
    width: int
    height: int
    frame_count: int
    fps: float
    input_sha256: str
    settings: dict[str, Any]
    tracks: list[Track] = field(default_factory=list)
    crop_size: int = CROP_SIZE

    @property
    def pixel_aspect(self) -> float:
        """Pixel width over height of the frames the faces were found in (the affines account for it)."""
        return float(self.settings.get("pixel_aspect", 1.0))

    @property
    def rotation(self) -> int:
        """Display rotation (degrees counter-clockwise) the faces were found in."""
        return int(self.settings.get("rotation", 0))

    def faces_at(self, frame: int) -> list[tuple[int, FaceState]]:
        """(track id, face) for every tracked face in this frame."""
        out = []
        for t in self.tracks:
            face = t.at(frame)
            if face is not None:
                out.append((t.id, face))
        return out

    def __iter__(self) -> Iterator[Track]:
        return iter(self.tracks)

    def __len__(self) -> int:
        return len(self.tracks)

    def is_for(self, input_sha256: str, settings: dict[str, Any]) -> bool:
        """Whether this analysis can be reused for that input and those settings."""
        return self.input_sha256 == input_sha256 and _canonical(self.settings) == _canonical(settings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "input": {
                "sha256": self.input_sha256,
                "width": self.width,
                "height": self.height,
                "frames": self.frame_count,
                "fps": self.fps,
            },
            "crop_size": self.crop_size,
            "settings": self.settings,
            "tracks": [
                {
                    "id": t.id,
                    "faces": [
                        {
                            "frame": f.frame,
                            "box": _floats(f.box),
                            "score": None if f.score is None else float(f.score),
                            "landmarks_raw": _floats(f.landmarks_raw),
                            "landmarks": _floats(f.landmarks),
                            "affine": _floats(f.affine),
                        }
                        for f in t.faces
                    ],
                }
                for t in self.tracks
            ],
        }

    @classmethod
    def from_dict(cls, data: Any) -> Tracks:
        """Validated Tracks; raises InputError naming the first bad entry and how to fix it."""
        return _parse(data)

    def save(self, path: str | Path) -> None:
        """Write JSON atomically, so an interrupted save never leaves a truncated cache file."""
        path = Path(path)
        fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(self.to_dict(), fh, allow_nan=False)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | Path) -> Tracks:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot read face tracks file {path}: {exc.strerror or exc}") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(
                f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
                "fix the edit or delete the file to re-run face analysis"
            ) from exc
        try:
            return _parse(data)
        except InputError as exc:
            raise InputError(f"{path}: {exc}") from exc


def _floats(a: np.ndarray) -> list[Any]:
    return np.asarray(a, dtype=np.float64).tolist()


def _canonical(settings: dict[str, Any]) -> str:
    return json.dumps(settings, sort_keys=True, default=str)


def _need(cond: bool, where: str, what: str) -> None:
    if not cond:
        raise InputError(f"{where}: {what}")


def _int(value: Any, where: str, low: int = 0) -> int:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
    _need(ok, where, f"must be an integer >= {low}, got {value!r}")
    return value


def _number(value: Any, where: str) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    _need(ok, where, f"must be a finite number, got {value!r}")
    return float(value)


def _array(value: Any, shape: tuple[int, ...], where: str) -> np.ndarray:
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        arr = None
    ok = arr is not None and arr.shape == shape
    _need(ok, where, f"must be a list of numbers of shape {list(shape)}")
    _need(bool(np.isfinite(arr).all()), where, "contains NaN or infinite values")
    return arr


def _parse(data: Any) -> Tracks:
    _need(isinstance(data, dict), "file", "must contain a JSON object")
    _need(data.get("format") == FORMAT, "format", f"must be {FORMAT!r}; not a DVFace face tracks file")
    version = data.get("version")
    _need(isinstance(version, int), "version", f"must be an integer, got {version!r}")
    _need(version <= VERSION, "version", f"{version} is from a newer DVFace (this one reads {VERSION}); upgrade")
    _need(version == VERSION, "version", f"{version} is not supported (expected {VERSION}); re-run analysis")
    inp = data.get("input")
    _need(isinstance(inp, dict), "input", "missing or not an object")
    sha = inp.get("sha256")
    ok = isinstance(sha, str) and len(sha) == 64 and all(c in "0123456789abcdef" for c in sha)
    _need(ok, "input.sha256", "must be 64 lowercase hex digits")
    width = _int(inp.get("width"), "input.width", 1)
    height = _int(inp.get("height"), "input.height", 1)
    frame_count = _int(inp.get("frames"), "input.frames", 0)
    fps = _number(inp.get("fps"), "input.fps")
    _need(fps > 0, "input.fps", "must be positive")
    crop_size = _int(data.get("crop_size"), "crop_size", 16)
    settings = data.get("settings")
    _need(isinstance(settings, dict), "settings", "missing or not an object")
    try:
        pixel_aspect = check_pixel_aspect(settings.get("pixel_aspect", 1.0))
    except InputError as exc:
        raise InputError(f"settings.pixel_aspect: {exc}") from None
    raw_tracks = data.get("tracks")
    _need(isinstance(raw_tracks, list), "tracks", "missing or not a list")
    tracks, seen = [], set()
    for ti, rt in enumerate(raw_tracks):
        where = f"tracks[{ti}]"
        _need(isinstance(rt, dict), where, "must be an object")
        tid = _int(rt.get("id"), f"{where}.id", 1)
        _need(tid not in seen, f"{where}.id", f"track id {tid} is used twice; give each track its own id")
        seen.add(tid)
        raw_faces = rt.get("faces")
        _need(isinstance(raw_faces, list) and len(raw_faces) > 0, f"{where}.faces", "must be a non-empty list")
        faces = [
            _parse_face(rf, f"{where}.faces[{fi}]", frame_count, crop_size, pixel_aspect)
            for fi, rf in enumerate(raw_faces)
        ]
        for fi in range(1, len(faces)):
            _need(
                faces[fi].frame == faces[fi - 1].frame + 1,
                f"{where}.faces[{fi}].frame",
                f"is {faces[fi].frame} after {faces[fi - 1].frame}; a track's faces must cover consecutive "
                "frames in order (split the track, or add the missing frames)",
            )
        tracks.append(Track(tid, faces))
    return Tracks(width, height, frame_count, fps, sha, settings, tracks, crop_size)


def _parse_face(rf: Any, where: str, frame_count: int, crop_size: int, pixel_aspect: float) -> FaceState:
    _need(isinstance(rf, dict), where, "must be an object")
    frame = _int(rf.get("frame"), f"{where}.frame")
    _need(frame < frame_count, f"{where}.frame", f"{frame} is past the clip's last frame {frame_count - 1}")
    box = _array(rf.get("box"), (4,), f"{where}.box")
    ok = box[2] > box[0] and box[3] > box[1]
    _need(ok, f"{where}.box", "must be [x0, y0, x1, y1] with x1 > x0 and y1 > y0")
    score = rf.get("score")
    if score is not None:
        score = _number(score, f"{where}.score")
        _need(0.0 <= score <= 1.0, f"{where}.score", "must be in [0, 1], or null for an interpolated face")
    raw = _array(rf.get("landmarks_raw"), (5, 2), f"{where}.landmarks_raw")
    lms = _array(rf.get("landmarks"), (5, 2), f"{where}.landmarks")
    try:
        implied = alignment_matrix(lms, crop_size, pixel_aspect)
    except InputError as exc:
        raise InputError(f"{where}.landmarks: {exc}") from exc
    if rf.get("affine") is None:
        affine = implied
    else:
        affine = _array(rf["affine"], (2, 3), f"{where}.affine")
        gap = np.abs(transform_points(affine, lms) - transform_points(implied, lms)).max()
        _need(
            gap <= _AFFINE_TOLERANCE,
            f"{where}.affine",
            f"does not match the landmarks (off by {gap:.3g} crop px); after editing landmarks, delete "
            "the 'affine' entry (or set it to null) and it is recomputed on load",
        )
    return FaceState(frame, box, score, raw, lms, affine)
