"""Frames/s of `vsdvface.restore` through `vspipe` on a 720p clip, against the engine alone.

Run in the VapourSynth venv (Python >= 3.12, see vapoursynth_filter/run_tests.sh):

    python benchmarks/vs_bench.py --model MODEL [--frames 48] [--threads 2] [--streams 1 auto]
        [--backends cpu openvino] [--json out.json]

Three figures on the same clip and faces, each starting from an empty window cache:
- engine: the faces' aligned crops (cut beforehand) through `FaceTrackSession`, model runs only;
- compositor: the filter's per-frame logic (crop, engine, paste) in a plain Python loop;
- vspipe: a script restoring the clip as YUV420P8 (converted to RGBS and back) and as RGB24,
  rendered by `vspipe` to y4m / raw RGB (its own fps line), plus the time the analysis pass takes when the
  script is evaluated (the first run analyses; later ones find the tracks cache), for each
  `num_streams` of --streams and backend of --backends.
The filter's overhead is vspipe's time per frame minus the engine's.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

WIDTH, HEIGHT = 1280, 720

SCRIPT = """
import os, time, sys
import numpy as np, vapoursynth as vs
sys.path.insert(0, {bench_dir!r})
from vs_bench import make_frames
import vsdvface
core = vs.core
core.num_threads = {threads}
frames = make_frames({frames})
blank = core.std.BlankClip(format=vs.RGB24, width={width}, height={height}, length=len(frames), fpsnum=25, fpsden=1)
def put(n, f):
    out = f.copy()
    for p in range(3):
        np.asarray(out[p])[...] = frames[n][..., p]
    return out
clip = core.std.ModifyFrame(blank, blank, put)
{convert}
t = time.perf_counter()
clip = vsdvface.restore(clip, model={model!r}, num_streams={streams}, backend={backend!r})
sys.stderr.write(f"ANALYSIS {{time.perf_counter() - t:.3f}}\\n")
clip.set_output()
"""


def make_frames(n: int) -> list[np.ndarray]:
    """Two astronaut faces (one large, one small) drifting over a 720p plate."""
    import cv2
    from skimage.data import astronaut

    photo = astronaut()
    big = cv2.resize(photo, (360, 360), interpolation=cv2.INTER_AREA)
    small = cv2.resize(photo, (200, 200), interpolation=cv2.INTER_AREA)
    plate = np.random.default_rng(0).integers(50, 110, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    frames = []
    for i in range(n):
        frame = plate.copy()
        frame[150 + i % 4 : 510 + i % 4, 200 + 2 * i : 560 + 2 * i] = big
        frame[300:500, 900 - i : 1100 - i] = small
        frames.append(frame)
    return frames


def engine_and_compositor(model: str, n: int) -> dict:
    import vsdvface.filter as filt
    from dvface_plugin.faces import CROP_SIZE, analyze, select_tracks, warp_to_crop
    from vsdvface.analysis import detector
    from vsdvface.compositor import ArrayFrames, ClipCompositor
    from dvface_plugin.engine import FaceTrackSession, WindowCache

    frames = make_frames(n)
    t = time.perf_counter()
    tracks = select_tracks(analyze(iter(frames), 25.0, detector=detector(), crop_size=CROP_SIZE))
    analysis_s = time.perf_counter() - t
    restorer = filt._restorer(model, "auto", 0, 1, False)
    cfg = restorer.config
    size = cfg.crop_size
    scale = size / tracks.crop_size

    crops = {
        t.id: np.stack([warp_to_crop(frames[f.frame], np.asarray(f.affine) * scale, size) for f in t.faces])
        for t in tracks
    }
    t0 = time.perf_counter()
    for track in tracks:
        c = crops[track.id]
        session = FaceTrackSession(
            restorer, c.__getitem__, len(c), window=cfg.window, overlap=cfg.overlap, crop_size=size,
            cache=WindowCache(0),
        )
        session.frames(0, len(c))
    engine_s = time.perf_counter() - t0

    comp = ClipCompositor(tracks, restorer, WindowCache(1 << 30), strength=1.0, window=cfg.window, overlap=cfg.overlap)
    t0 = time.perf_counter()
    for i in range(n):
        lo, hi = comp.span(i)
        patch = comp.render(i, ArrayFrames({k: frames[k] for k in range(lo, hi)}))
        if patch is not None:
            out = frames[i].copy()
            x0, y0, x1, y1 = patch.box
            out[y0:y1, x0:x1] = patch.pixels
    comp_s = time.perf_counter() - t0
    return {
        "tracks": len(tracks),
        "faces": sum(len(t.faces) for t in tracks),
        "analysis_s": round(analysis_s, 3),
        "engine_fps": round(n / engine_s, 2),
        "compositor_fps": round(n / comp_s, 2),
    }


CONVERT = {"YUV420P8": "clip = core.resize.Bicubic(clip, format=vs.YUV420P8, matrix=1)", "RGB24": ""}


def vspipe(model: str, n: int, threads: int, fmt: str, streams: int | None = None, backend: str = "auto") -> dict:
    vspipe_bin = Path(sys.executable).with_name("vspipe")
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "bench.vpy"
        script.write_text(
            SCRIPT.format(
                bench_dir=str(Path(__file__).resolve().parent), frames=n, width=WIDTH, height=HEIGHT,
                model=model, threads=threads, convert=CONVERT[fmt], streams=streams, backend=backend,
            )
        )
        t = time.perf_counter()
        container = ["-c", "y4m"] if fmt.startswith("YUV") else []  # y4m has no RGB: raw planes then
        res = subprocess.run([str(vspipe_bin), *container, str(script), os.devnull], capture_output=True, text=True)
        wall = time.perf_counter() - t
    if res.returncode:
        raise SystemExit(res.stderr[-2000:])
    fps = float(re.search(r"Output \d+ frames in [\d.]+ seconds \(([\d.]+) fps\)", res.stderr).group(1))
    analysis = float(re.search(r"ANALYSIS ([\d.]+)", res.stderr).group(1))
    return {"input": fmt, "vspipe_fps": fps, "vspipe_analysis_s": analysis, "vspipe_wall_s": round(wall, 2),
            "threads": threads, "num_streams": streams, "backend": backend}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="ONNX export folder or model folder with onnx/")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    parser.add_argument("--formats", nargs="+", choices=sorted(CONVERT), default=["YUV420P8", "RGB24"])
    parser.add_argument("--streams", type=lambda v: None if v == "auto" else int(v), nargs="+", default=[None],
                        help="the filter's num_streams values (auto: its default)")
    parser.add_argument("--backends", nargs="+", default=["auto"], help="the filter's backend values (default auto)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    args.model = str(Path(args.model).resolve())  # vspipe evaluates the script from its own folder
    result = {"size": f"{WIDTH}x{HEIGHT}", "frames": args.frames, **engine_and_compositor(args.model, args.frames)}
    result["vspipe"] = [vspipe(args.model, args.frames, t, f, n, b) for f in args.formats for t in args.threads
                        for n in args.streams if n is None or n <= t for b in args.backends]
    per_frame_engine = 1.0 / result["engine_fps"]
    for run in result["vspipe"]:
        run["overhead_ms_per_frame"] = round((1.0 / run["vspipe_fps"] - per_frame_engine) * 1000, 1)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
