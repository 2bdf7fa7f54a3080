"""Peak RSS of `dvface restore --aligned` against clip length (memory must not grow with it).

Writes synthetic aligned clips (lossless FFV1) and a tiny-preset model (random weights, crops of
--crop pixels for speed) to a temporary folder, restores each clip in its own process and reads
that process's peak RSS from wait4. Usage:

    python benchmarks/restore_rss.py --frames 100 5000 [--crop 32] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import torch

from dvface_plugin.commands.bench import synthetic_crop
from dvface_plugin.media import MediaWriter
from dvface_plugin.model.config import DVFaceConfig
from dvface_plugin.model.dvface import DVFace


def peak_rss_mb(cmd: list[str]) -> tuple[float, float]:
    """(peak RSS in MiB, wall seconds) of one child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed with exit code {proc.returncode}")
    per_mib = 1 << 20 if sys.platform == "darwin" else 1 << 10  # ru_maxrss: bytes on macOS, KiB on Linux
    return usage.ru_maxrss / per_mib, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[100, 5000])
    parser.add_argument("--crop", type=int, default=32)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        torch.manual_seed(0)
        cfg = DVFaceConfig.preset("tiny")
        cfg.crop_size = args.crop
        DVFace(cfg).save_pretrained(tmp / "model")
        get_crop = synthetic_crop(0, args.crop)
        for n in args.frames:
            clip = tmp / f"clip{n}.mkv"
            with MediaWriter(clip, fps=Fraction(25), width=args.crop, height=args.crop, bit_depth=8) as w:
                for i in range(n):
                    w.write(get_crop(i))
            cmd = [sys.executable, "-m", "dvface_plugin.cli", "restore", "--aligned", str(clip),
                   "-o", str(tmp / f"out{n}.mkv"), "--model", str(tmp / "model"), "--quiet"]
            rss, wall = peak_rss_mb(cmd)
            results.append({"frames": n, "peak_rss_mb": round(rss, 1), "wall_s": round(wall, 1)})
            if not args.json:
                print(f"{n:>7} frames: peak RSS {rss:8.1f} MiB, {wall:7.1f} s")
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
