"""Real footage (research data, only where /work/shared/data exists): every clip has a face track.

Marked `realdata` so it can be deselected with `-m "not realdata"`; skipped when the data is absent.
"""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import numpy as np
import pytest

from dvface_plugin.faces.analysis import analyze
from dvface_plugin.faces.detector import CenterFaceDetector

WHOLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "realworld" / "whole"
CLIPS = sorted(WHOLE.glob("*.mp4")) if WHOLE.is_dir() else []
FRAMES = 24

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(not CLIPS, reason=f"no real-world clips at {WHOLE}"),
]


@pytest.fixture(scope="module")
def detector() -> CenterFaceDetector:
    return CenterFaceDetector()


def decode(path: Path) -> tuple[list[np.ndarray], float]:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or 25)
        frames = [f.to_ndarray(format="rgb24") for f in islice(container.decode(stream), FRAMES)]
    return frames, fps


@pytest.mark.parametrize("path", CLIPS, ids=[p.stem for p in CLIPS])
def test_each_clip_has_a_face_track(path, detector):
    frames, fps = decode(path)
    tracks = analyze(frames, fps, detector=detector)
    assert len(tracks) >= 1
    longest = max(len(t.faces) for t in tracks)
    assert longest >= FRAMES // 2  # a face followed through most of the excerpt, not a stray hit
