"""Chunks of one clip, aligned to the engine's window grid.

A chunk renders output frames [start, stop) with a session over the WHOLE clip's grid
(`n_frames` of the clip, `first_frame=0`), so its frames equal the same frames of a whole-clip
render; it reads the input frames `WindowGrid.input_span(start, stop)` (the warm-up overlap).
Boundaries are snapped to window starts so that only the windows straddling a boundary are
computed twice.

Face tracking: in --aligned mode a clip is one face track, so tracking is planned per file by
construction. For whole frames the driver runs the analysis pass (detection, track ids, landmark
smoothing) over each whole file before splitting it and gives every chunk the file's tracks, so
ids and smoothing do not change at chunk boundaries; each track keeps its own window grid, and a
chunk reads the union of its tracks' warm-up spans (`plan_frame_chunks`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from itertools import pairwise

from ..engine.windows import WindowGrid
from ..faces import Tracks
from ..wholeframe.compositor import read_span


@dataclass(frozen=True)
class Chunk:
    index: int
    start: int  # first output frame
    stop: int  # one past the last output frame
    read_start: int  # first input frame the chunk reads
    read_stop: int  # one past the last input frame it reads

    @property
    def frames(self) -> int:
        return self.stop - self.start

    def to_json(self) -> dict:
        return asdict(self)


def plan_chunks(grid: WindowGrid, chunk_frames: int) -> list[Chunk]:
    """Split [0, n_frames) into chunks of about `chunk_frames` output frames each.

    A boundary is the first window start at or after each multiple of `chunk_frames`, so a chunk
    is never shorter than asked (except the last) and every chunk holds at least one frame.
    """
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
    n = grid.n_frames
    starts = [w.start for w in grid.windows]
    bounds = [0]
    for s in starts[1:]:
        if s - bounds[-1] >= chunk_frames:
            bounds.append(s)
    bounds.append(n)
    chunks = []
    for i, (a, b) in enumerate(pairwise(bounds)):
        lo, hi = grid.input_span(a, b)
        chunks.append(Chunk(i, a, b, lo, hi))
    return chunks


def plan_frame_chunks(n_frames: int, tracks: Tracks, chunk_frames: int, window: int, overlap: int,
                      quantum: int) -> list[Chunk]:
    """Whole-frame chunks of `chunk_frames` frames; each reads what its tracks' windows need.

    Tracks have grids of their own, so no boundary suits them all: a boundary costs each track
    crossing it at most one extra window.
    """
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
    bounds = [*range(0, n_frames, chunk_frames), n_frames]
    return [Chunk(i, a, b, *read_span(tracks, a, b, window, overlap, quantum))
            for i, (a, b) in enumerate(pairwise(bounds))]
