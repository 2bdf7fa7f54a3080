"""Synthetic clips from `skimage.data.astronaut()` and the exported tiny test model.

The model comes from `make_fixture_model.py` (needs torch, so it runs in the 3.11 dev venv);
`run_tests.sh` makes it and points $VSDVFACE_TEST_MODEL at it.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import vapoursynth as vs
from skimage.data import astronaut

core = vs.core

WIDTH, HEIGHT, LENGTH, FACE_FRAMES = 320, 240, 14, 10  # frames 10..13 have no face
DEFAULT_MODEL = Path(__file__).resolve().parents[2] / "build" / "vs-fixture-model"


@pytest.fixture(autouse=True, scope="session")
def tracks_cache(tmp_path_factory) -> Path:
    """Analyses are cached on disk: keep the tests' out of the user's cache folder."""
    path = tmp_path_factory.mktemp("tracks-cache")
    os.environ["DVFACE_CACHE_DIR"] = str(path)
    return path


@pytest.fixture(scope="session")
def model_dir() -> Path:
    path = Path(os.environ.get("VSDVFACE_TEST_MODEL", DEFAULT_MODEL))
    if not (path / "onnx" / "manifest.json").is_file():
        pytest.skip(f"test model {path} missing: run vapoursynth_filter/run_tests.sh (it exports it)")
    return path


def make_frames(length: int = LENGTH, face_frames: int = FACE_FRAMES, width: int = WIDTH, height: int = HEIGHT):
    """A moving astronaut face on a noisy plate, then plate-only frames."""
    size = min(200, height - 40)
    face = cv2.resize(astronaut(), (size, size), interpolation=cv2.INTER_AREA)
    bg = np.random.default_rng(0).integers(60, 90, (height, width, 3), dtype=np.uint8)
    frames = []
    for i in range(length):
        frame = bg.copy()
        if i < face_frames:
            x, y = 40 + 3 * i, 20 + (i % 3)
            frame[y : y + size, x : x + size] = face
        frames.append(frame)
    return frames


def rgb24_clip(frames, fps: int = 25) -> vs.VideoNode:
    h, w = frames[0].shape[:2]
    blank = core.std.BlankClip(format=vs.RGB24, width=w, height=h, length=len(frames), fpsnum=fps, fpsden=1)

    def put(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        out = f.copy()
        for p in range(3):
            np.asarray(out[p])[...] = frames[n][..., p]
        return out

    return core.std.SetFrameProps(core.std.ModifyFrame(blank, blank, put), DVTestSource=1)


def clip_in(fmt: int, frames=None, **resize) -> vs.VideoNode:
    clip = rgb24_clip(frames if frames is not None else make_frames())
    if fmt == vs.RGB24:
        return clip
    return core.resize.Bicubic(clip, format=fmt, **resize)


def planes(frame: vs.VideoFrame) -> list[np.ndarray]:
    return [np.array(frame[p]) for p in range(frame.format.num_planes)]


def render(clip: vs.VideoNode, order=None) -> dict[int, list[np.ndarray]]:
    """Frames as numpy planes; `order` requests them concurrently in that order."""
    order = list(range(clip.num_frames)) if order is None else list(order)
    futures = {n: clip.get_frame_async(n) for n in order}
    return {n: planes(fut.result()) for n, fut in futures.items()}
