"""Whole-frame restore on real footage (research data, only where /work/shared/data exists).

Every clip's first frames are cut losslessly into a temp file (exact rate kept) and restored with a
tiny random model: the output must keep size, frame count and rate, and a face track must be found.
The shortest clip is also restored whole, from the original file, audio included. Only the largest
face is restored (`--faces largest`), which keeps crowd shots as fast as close-ups.
"""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path

import av
import pytest

from tiny_models import save_tiny

from dvface_plugin.cli import main
from dvface_plugin.media import MediaWriter, open_media

WHOLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "realworld" / "whole"
CLIPS = sorted(WHOLE.glob("*.mp4")) if WHOLE.is_dir() else []
FRAMES = 12

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(not CLIPS, reason=f"no real-world clips at {WHOLE}"),
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("model"), 64)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DVFACE_CACHE_DIR", str(tmp_path / "cache"))


def run_json(argv: list[str]) -> tuple[int, dict]:
    buf = io.StringIO()
    with redirect_stdout(buf):
        code = main(argv)
    return code, json.loads(buf.getvalue()) if buf.getvalue().strip() else {}


def audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(container.streams.audio[0]) if p.size]


@pytest.mark.parametrize("clip", CLIPS, ids=[p.stem for p in CLIPS])
def test_first_frames_of_each_clip(clip, model_dir, tmp_path):
    src = open_media(clip)
    head = tmp_path / "head.mkv"
    with MediaWriter(head, fps=src.fps, width=src.width, height=src.height, bit_depth=src.source_bits) as w:
        for frame in src.frames(0, FRAMES):
            w.write(frame)
    out = tmp_path / "out.mkv"
    code, summary = run_json(["restore", str(head), "-o", str(out), "--model", str(model_dir), "--quiet", "--json",
                                 "--faces", "largest"])
    assert code == 0
    res = open_media(out)
    assert (res.width, res.height, res.frame_count, res.fps) == (src.width, src.height, FRAMES, src.fps)
    assert len(summary["tracks"]) >= 1 and max(summary["faces_per_frame"]) == 1


def test_shortest_clip_whole_with_audio(model_dir, tmp_path):
    clip = min(CLIPS, key=lambda p: open_media(p).frame_count)
    src = open_media(clip)
    out = tmp_path / "out.mkv"
    code, summary = run_json(["restore", str(clip), "-o", str(out), "--model", str(model_dir), "--quiet", "--json",
                                 "--faces", "largest"])
    assert code == 0
    res = open_media(out)
    assert (res.width, res.height, res.frame_count, res.fps) == (src.width, src.height, src.frame_count, src.fps)
    assert len(summary["tracks"]) >= 1
    if src.has_audio:
        assert audio_packets(out) == audio_packets(clip)
