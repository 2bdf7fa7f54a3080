"""Stream a clip through per-track engine sessions and paste every restored face back.

One forward decoding pass feeds everything. Each selected track gets its own `FaceTrackSession`
on the track's own window grid (so frame n's face depends only on that track's frames, never on
the order frames are asked for or on the other faces) whose crops are cut lazily with
`warp_to_crop` from the decoded frames the moment a window needs them. A window needs at most
`window - 1` frames beyond the frame being written, so only that look-ahead of frames is held in
memory, plus at most two restored windows per track that is on screen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..engine import FaceTrackSession, WindowCache, WindowGrid
from ..errors import InputError
from ..faces import Track, Tracks, paste_faces, warp_to_crop
from ..media import MediaWriter
from ..runtime.base import TrackRestorer
from .stages import StageTimer


class FrameLookahead:
    """Decoded frames from the oldest one still needed up to the furthest one a window asked for."""

    def __init__(self, frames: Iterator[np.ndarray], n_frames: int, name: str, first: int = 0) -> None:
        self._frames = frames  # yields frames first, first + 1, ...
        self._n_frames = n_frames
        self._held: dict[int, np.ndarray] = {}
        self._next = first
        self._name = name

    def get(self, n: int) -> np.ndarray:
        if not 0 <= n < self._n_frames:
            raise InputError(f"frame {n} is outside {self._name}'s {self._n_frames} frames")
        while self._next <= n:
            frame = next(self._frames, None)
            if frame is None:
                raise InputError(
                    f"{self._name} ended after {self._next} frames but its face tracks cover "
                    f"{self._n_frames}; the file is truncated or changed since the analysis"
                )
            self._held[self._next] = frame
            self._next += 1
        if n not in self._held:
            raise InputError(f"frame {n} was asked for again after it was released (read order bug)")
        return self._held[n]

    def release_through(self, n: int) -> None:
        """Forget frames up to and including n: nothing asks for them again."""
        for k in [k for k in self._held if k <= n]:
            del self._held[k]

    @property
    def held(self) -> int:
        return len(self._held)

    def check_exhausted(self) -> None:
        if next(self._frames, None) is not None:
            raise InputError(
                f"{self._name} holds more frames than the {self._n_frames} its face tracks cover; "
                "it changed since the analysis: run again without --tracks, or re-run `dvface track`"
            )


class TrackRestore:
    """One face track's engine session, fed with crops cut from the look-ahead on demand."""

    def __init__(
        self,
        restorer: TrackRestorer,
        track: Track,
        frames: FrameLookahead,
        timer: StageTimer,
        *,
        crop_size: int,
        tracks_crop_size: int,
        window: int | None,
        overlap: int | None,
        frames_range: tuple[int, int] | None = None,
        on_window: Callable[[int], None] | None = None,
    ) -> None:
        self.track = track
        self._range = frames_range  # host frames [start, stop) of this track to restore (default: all)
        self._frames = frames
        self._timer = timer
        self._size = crop_size
        # Stored affines map to the analysis' crop size; rescale them to the model's.
        scale = crop_size / tracks_crop_size
        self.matrices = [np.asarray(f.affine, dtype=np.float64) * scale for f in track.faces]
        self.session: FaceTrackSession = FaceTrackSession(
            restorer,
            self._crop,
            len(track.faces),
            first_frame=track.first_frame,
            window=window,
            overlap=overlap,
            crop_size=crop_size,
            # Frames are asked for once, in order: the session's own two held windows are all it
            # needs, and a cache would keep windows nobody asks for again.
            cache=WindowCache(0),
            on_window=on_window,
            ahead=restorer.streams,  # every model copy busy, and the model runs while frames are pasted
        )
        self._outputs: Iterator[np.ndarray] | None = None

    def matrix(self, n: int) -> np.ndarray:
        return self.matrices[n - self.track.first_frame]

    def _crop(self, n: int) -> np.ndarray:
        with self._timer.stage("align"):
            frame = self._frames.get(n)
            crop = warp_to_crop(frame, self.matrix(n), self._size)
            if crop.dtype == np.float32:  # scene-referred floats above 1 would be refused by the model
                np.clip(crop, 0.0, 1.0, out=crop)
            return crop

    def model_frames(self) -> int:
        """Crops the model runs for this track's frames in the range."""
        return self.session.model_frames(*(self._range or (None, None)))

    def next_face(self) -> np.ndarray:
        """The restored crop of the next frame of this track (frames are taken in order)."""
        if self._outputs is None:
            self._outputs = self.session.iter_frames(*(self._range or (None, None)))
        with self._timer.stage("model"):
            return next(self._outputs)

    def close(self) -> None:
        if self._outputs is not None:
            self._outputs.close()  # ends the windows still restoring ahead
        self.session.close()
        self._outputs = None


def read_span(tracks: Tracks, start: int, stop: int, window: int, overlap: int, quantum: int) -> tuple[int, int]:
    """Host frames [lo, hi) that writing frames [start, stop) decodes: those frames and every
    frame the windows of their faces read (each track on its own grid, as `TrackRestore` runs it)."""
    lo, hi = start, stop
    for track in tracks:
        s, e = max(start, track.first_frame), min(stop, track.last_frame + 1)
        if s < e:
            grid = WindowGrid(len(track.faces), window, overlap, quantum)
            t_lo, t_hi = grid.input_span(s - track.first_frame, e - track.first_frame)
            lo, hi = min(lo, t_lo + track.first_frame), max(hi, t_hi + track.first_frame)
    return lo, hi


class ProgressBar(Protocol):
    """What `restore_stream` reports to (a tqdm bar fits)."""

    def update(self, n: int) -> object: ...

    def close(self) -> None: ...


@dataclass
class StreamResult:
    faces_per_frame: list[int]
    max_frames_held: int


def matte_rgb(matte: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    """The face matte as 16-bit grey RGB (what image and video writers take); zeros without faces."""
    if matte is None:
        return np.zeros((*shape, 3), np.uint16)
    grey = np.rint(np.clip(matte, 0.0, 1.0) * 65535.0).astype(np.uint16)
    return np.repeat(grey[:, :, None], 3, axis=2)


def restore_stream(
    frames: Iterator[np.ndarray],
    tracks: Tracks,
    restorer: TrackRestorer,
    writer: MediaWriter,
    timer: StageTimer,
    *,
    name: str,
    strength: float = 1.0,
    window: int | None = None,
    overlap: int | None = None,
    mask_writer: MediaWriter | None = None,
    progress: Callable[[int], ProgressBar] | None = None,
    span: tuple[int, int, int] | None = None,
) -> StreamResult:
    """Restore every face of `tracks` in `frames` and write each frame (and its matte) in order.

    Frames without a selected face are written as decoded, so they stay bit-identical wherever the
    output format is lossless; `paste_faces` keeps every pixel outside the mattes bit-identical too.

    `span = (first, start, stop)` writes only frames [start, stop) from `frames` that begin at host
    frame `first` (a `dvface batch` chunk and its warm-up): each track's session still runs on the
    track's whole window grid, so the frames equal those of a whole-clip run.

    `progress(total)` opens a bar counted in face crops through the model, the work that takes
    the time (`total` over all tracks), which this advances as each window is restored.
    """
    n_frames = tracks.frame_count
    first, start, stop = span or (0, 0, n_frames)
    ahead = FrameLookahead(timer.iterate(frames, "decode"), n_frames, name, first)
    crop_size = restorer.config.crop_size
    bar = None
    restores = [
        TrackRestore(
            restorer, track, ahead, timer,
            crop_size=crop_size, tracks_crop_size=tracks.crop_size,
            window=window, overlap=overlap,
            frames_range=(max(start, track.first_frame), min(stop, track.last_frame + 1)),
            on_window=lambda frames: bar.update(frames) if bar is not None else None,
        )
        for track in tracks
        if track.first_frame < stop and track.last_frame >= start
    ]
    if progress is not None:
        bar = progress(sum(item.model_frames() for item in restores))
    faces_per_frame: list[int] = []
    max_held = 0
    try:
        for n in range(start, stop):
            frame = ahead.get(n)
            faces = []
            for item in restores:
                if item.track.first_frame <= n <= item.track.last_frame:
                    faces.append((item.next_face(), item.matrix(n)))
                    if n == min(item.track.last_frame, stop - 1):
                        item.close()
            max_held = max(max_held, ahead.held)
            matte = None
            if faces:
                with timer.stage("paste"):
                    frame, matte = paste_faces(frame, faces, strength=strength)
            with timer.stage("encode"):
                writer.write(frame, matte)
                if mask_writer is not None:
                    mask_writer.write(matte_rgb(matte, frame.shape[:2]))
            ahead.release_through(n)
            faces_per_frame.append(len(faces))
        if span is None:
            with timer.stage("decode"):
                ahead.check_exhausted()
    finally:
        for item in restores:
            item.close()
        if bar is not None:
            bar.close()
    return StreamResult(faces_per_frame, max_held)
