"""Real footage (research data, only where ../shared/data exists): BestSource in, restore, same
format, size, length and rate out, faces reported on at least one frame of every clip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import vapoursynth as vs

import vsdvface

WHOLE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "realworld" / "whole"
CLIPS = sorted(WHOLE.glob("*.mp4")) if WHOLE.is_dir() else []
FRAMES = 8

pytestmark = pytest.mark.skipif(not CLIPS, reason=f"no real-world clips at {WHOLE}")


@pytest.mark.parametrize("path", CLIPS, ids=[p.stem for p in CLIPS])
def test_real_clip_keeps_its_format_and_finds_a_face(model_dir, path):
    source = vs.core.bs.VideoSource(source=str(path))
    clip = source[:FRAMES]
    if clip.format.color_family == vs.YUV and clip.get_frame(0).props.get("_Matrix", 2) == 2:
        clip = vs.core.std.SetFrameProps(clip, _Matrix=1)  # unspecified in the file: assume BT.709
    out = vsdvface.restore(clip, model=str(model_dir), faces="largest")
    assert (out.format.id, out.width, out.height, out.num_frames) == (clip.format.id, clip.width, clip.height, FRAMES)
    assert (out.fps_num, out.fps_den) == (clip.fps_num, clip.fps_den)
    counts = []
    for n in range(FRAMES):
        frame = out.get_frame(n)
        counts.append(frame.props["DVFaceCount"])
        if frame.props["DVFaceCount"] == 0:
            src = clip.get_frame(n)
            assert all(np.array_equal(np.asarray(frame[p]), np.asarray(src[p])) for p in range(frame.format.num_planes))
    assert max(counts) >= 1, f"no face found in {path.name}"
