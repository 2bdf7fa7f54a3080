"""`dvface prepare`: turn HQ videos and photos into the aligned crops the stages train on.

Videos go through the same analysis pass as restoration (detect, track, smooth, FFHQ alignment),
so training crops and inference crops share one template and one smoothing; each track of at
least `min_frames` consecutive frames becomes one `.npy` clip. Photos keep their largest face.
Crops are stored at `size` px (a 512 px template scaled), uint8.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError
from ..faces import CenterFaceDetector, alignment_matrix, analyze, warp_to_crop
from ..media import display_geometry, open_media

VIDEO_SUFFIXES = {".mp4", ".mov", ".mkv", ".avi", ".webm"}
PHOTO_SUFFIXES = {".png", ".jpg", ".jpeg"}


def refuse_benchmark(path: Path) -> None:
    """Benchmark clips must never be trained on: refuse any path inside a `benchmark` folder."""
    if "benchmark" in Path(path).resolve().parts:
        raise InputError(f"{path} lies in a benchmark folder; benchmark data is for evaluation only, never training")


def prepare_video(path: Path, out: Path, size: int, max_frames: int, min_frames: int, detector) -> list[dict]:
    with open_media(path) as src:
        frames = list(src.frames(0, min(src.frame_count, max_frames)))
        fps = float(src.fps) or 24.0
        display = display_geometry(src.metadata)
    frames = [f if f.dtype == np.uint8 else (f.astype(np.float32) / 257).round().astype(np.uint8) for f in frames]
    tracks = analyze(frames, fps, detector=detector, **display)
    written = []
    for track in tracks:
        runs, current = [], []
        for face in track.faces:  # split at gaps: a clip must be temporally contiguous
            if current and face.frame != current[-1].frame + 1:
                runs.append(current)
                current = []
            current.append(face)
        runs.append(current)
        for k, run in enumerate(r for r in runs if len(r) >= min_frames):
            crops = np.stack([warp_to_crop(frames[f.frame], alignment_matrix(f.landmarks, size, tracks.pixel_aspect), size)
                              for f in run])
            name = f"{path.stem}_t{track.id}_{k}.npy"
            np.save(out / name, crops)
            written.append({"file": name, "source": str(path), "frames": len(run), "track": track.id})
    return written


def prepare_photo(path: Path, out: Path, size: int, detector) -> list[dict]:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        return []
    rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    faces = detector.detect(rgb)
    if not faces:
        return []
    face = max(faces, key=lambda d: d.size)
    crop = warp_to_crop(rgb, alignment_matrix(face.landmarks, size), size)
    name = f"{path.parent.name}_{path.stem}.png"
    cv2.imwrite(str(out / name), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
    return [{"file": name, "source": str(path), "frames": 1}]


def prepare(inputs: list[Path], out: Path, size: int, max_frames: int, min_frames: int) -> list[dict]:
    for path in inputs:
        refuse_benchmark(path)
    out.mkdir(parents=True, exist_ok=True)
    detector = CenterFaceDetector()
    files = sorted(p for root in inputs for p in ([root] if root.is_file() else root.rglob("*")) if p.is_file())
    index = []
    for path in files:
        suffix = path.suffix.lower()
        if suffix in VIDEO_SUFFIXES:
            index += prepare_video(path, out, size, max_frames, min_frames, detector)
        elif suffix in PHOTO_SUFFIXES:
            index += prepare_photo(path, out, size, detector)
    if not index:
        raise InputError(f"no faces found in {', '.join(map(str, inputs))}")
    (out / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    return index
