"""Restore and composite the faces of one frame from the frames its windows need.

Pure numpy logic between the engine and the VapourSynth glue: the host hands in the frames of a
request (the frame itself and its neighbours, which the core prefetched) and gets the restored
region of the frame back. Each selected track has one `FaceTrackSession` on its own window grid,
all sharing one `WindowCache`, so frame n is the same whatever order or thread it is asked from
in, and a window once computed is reused by every later request, at any strength (which only
scales the matte it is pasted with). The sessions read crops from the frames of the request being
served: the frames are kept per thread, and a thread that computes a window for its request holds
every frame of it.

Only the region around each face is read and written: the square a face's crop covers in the
frame, widened by the anti-alias blur's reach and clipped to the frame. Which region that is
depends only on the face's alignment matrix, so results stay independent of access order, and a
720p frame is never copied whole into numpy.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from functools import partial
from typing import Protocol

import numpy as np

from dvface_plugin.engine import FaceTrackSession, WindowCache
from dvface_plugin.faces import FaceState, Tracks, invert_affine, paste_faces, warp_to_crop
from dvface_plugin.faces.align import crop_scale, transform_points
from dvface_plugin.runtime.base import TrackRestorer

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in frame pixels, x1/y1 exclusive


class FrameRegions(Protocol):
    """Frames of one request, read by region."""

    def __contains__(self, n: object) -> bool: ...

    def region(self, n: int, box: Box) -> np.ndarray:
        """Writable (y1-y0, x1-x0, 3) RGB copy of frame n's box: uint8, uint16 or float32."""
        ...


class ArrayFrames:
    """`FrameRegions` over in-memory HxWx3 frames (benchmarks, tests)."""

    def __init__(self, frames: dict[int, np.ndarray]) -> None:
        self._frames = frames

    def __contains__(self, n: object) -> bool:
        return n in self._frames

    def region(self, n: int, box: Box) -> np.ndarray:
        x0, y0, x1, y1 = box
        return self._frames[n][y0:y1, x0:x1].copy()


@dataclass(frozen=True)
class FrameFaces:
    """The restored faces of one frame: track ids and boxes (x0, y0, x1, y1, frame pixels)."""

    ids: tuple[int, ...]
    boxes: tuple[tuple[float, float, float, float], ...]


@dataclass(frozen=True)
class Patch:
    """Frame n's restored region: `pixels` belong at `box`; `matte` (float32) is where they changed."""

    box: Box
    pixels: np.ndarray
    matte: np.ndarray


class ClipCompositor:
    def __init__(
        self,
        tracks: Tracks,
        restorer: TrackRestorer,
        cache: WindowCache,
        *,
        strength: float,
        window: int,
        overlap: int,
        prefetch: int = 0,
    ) -> None:
        self.tracks = tracks
        self.strength = strength  # scales the matte: restored windows are cached at full strength
        self.crop_size = restorer.config.crop_size
        scale = self.crop_size / tracks.crop_size  # stored affines map to the analysis' crop size
        self._matrices = {t.id: [np.asarray(f.affine, np.float64) * scale for f in t.faces] for t in tracks}
        self._firsts = {t.id: t.first_frame for t in tracks}
        self._local = threading.local()
        self.sessions = {
            t.id: FaceTrackSession(
                restorer,
                partial(self._crop, t.id),
                len(t.faces),
                first_frame=t.first_frame,
                window=window,
                overlap=overlap,
                crop_size=self.crop_size,
                cache=cache,
                prefetch=prefetch,
                immutable_input=True,  # a clip's frames never change: each window's crops are read once
            )
            for t in tracks
        }

    def faces_at(self, n: int) -> list[tuple[int, FaceState]]:
        return self.tracks.faces_at(n)

    def frame_faces(self, n: int) -> FrameFaces:
        faces = self.faces_at(n)
        return FrameFaces(
            tuple(tid for tid, _ in faces), tuple(tuple(float(v) for v in face.box) for _, face in faces)
        )

    def span(self, n: int) -> tuple[int, int]:
        """Frames [lo, hi) a request for frame n reads (n alone when it has no face): its windows', and
        those of the windows after them that are still to be prefetched."""
        lo, hi = n, n + 1
        for tid, _ in self.faces_at(n):
            session = self.sessions[tid]
            a, b = session.input_span(n, n + 1)
            ahead = session.prefetch_span(n)
            lo, hi = min(lo, a), max(hi, b, ahead[1] if ahead else b)
        return lo, hi

    def matrix(self, tid: int, n: int) -> np.ndarray:
        return self._matrices[tid][n - self._firsts[tid]]

    def box(self, n: int) -> Box | None:
        """The region of frame n that `render` reads and may change (None: no face)."""
        boxes = [self._face_box(self.matrix(tid, n)) for tid, _ in self.faces_at(n)]
        if not boxes:
            return None
        x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
        return x0, y0, max(b[2] for b in boxes), max(b[3] for b in boxes)

    def render(self, n: int, frames: FrameRegions) -> Patch | None:
        """Frame n's restored region, or None when it has no face; frames must hold `span(n)`.

        Float values outside [0, 1] stay as they are outside the faces (the model sees them clipped).
        """
        faces = self.faces_at(n)
        box = self.box(n)
        if box is None:
            return None
        self._local.frames = frames
        try:
            for tid, _ in faces:  # started first, so that they run beside this frame's own windows
                ahead = self.sessions[tid].prefetch_span(n)
                if ahead and ahead[0] in frames and ahead[1] - 1 in frames:
                    self.sessions[tid].prefetch(n)
            restored = [(self.sessions[tid].frame(n), _shifted(self.matrix(tid, n), box)) for tid, _ in faces]
        finally:
            self._local.frames = None
        pixels, matte = paste_faces(frames.region(n, box), restored, strength=self.strength)
        return Patch(box, pixels, matte)

    def matte(self, n: int) -> tuple[Box, np.ndarray] | None:
        """The face matte `render` pastes frame n with, on its box, without running the model."""
        box = self.box(n)
        if box is None:
            return None
        x0, y0, x1, y1 = box
        blank = np.zeros((y1 - y0, x1 - x0, 3), np.uint8)  # only the matte is used: the smallest plate
        crop = np.zeros((self.crop_size, self.crop_size, 3), np.uint8)
        faces = [(crop, _shifted(self.matrix(tid, n), box)) for tid, _ in self.faces_at(n)]
        return box, paste_faces(blank, faces, colour_match=False, strength=self.strength)[1]

    def _face_box(self, matrix: np.ndarray) -> Box:
        size = self.crop_size
        corners = transform_points(invert_affine(matrix), [[0, 0], [size, 0], [0, size], [size, size]])
        margin = math.ceil(1.5 / crop_scale(matrix)) + 4  # warp_to_crop's anti-alias blur reach, and rounding
        x0, y0 = (max(0, math.floor(v) - margin) for v in corners.min(0))
        x1 = min(self.tracks.width, math.ceil(corners[:, 0].max()) + margin)
        y1 = min(self.tracks.height, math.ceil(corners[:, 1].max()) + margin)
        return x0, y0, max(x0 + 1, x1), max(y0 + 1, y1)

    def _crop(self, tid: int, n: int) -> np.ndarray:
        frames = getattr(self._local, "frames", None)
        if frames is None or n not in frames:
            raise RuntimeError(f"frame {n} was not fetched for this request (span bug)")
        matrix = self.matrix(tid, n)
        box = self._face_box(matrix)
        crop = warp_to_crop(frames.region(n, box), _shifted(matrix, box), self.crop_size)
        if crop.dtype == np.float32:
            np.clip(crop, 0.0, 1.0, out=crop)
        return crop


def _shifted(matrix: np.ndarray, box: Box) -> np.ndarray:
    """The frame->crop matrix for the region starting at the box's corner."""
    out = np.array(matrix, dtype=np.float64)
    out[:, 2] += out[:, :2] @ np.array(box[:2], dtype=np.float64)
    return out
