"""The temporal stabilisation's radius and photometric tolerance, swept offline on restored clips.

Each clip folder under --clips (as `default_model_eval.py` writes them: GT.mkv and LQ.mkv) is
restored once with `--stabilise 0`, then `runtime.stabilise.stabilise` runs on chunks of the
model's window (17 frames for the bundled one) for each RADIUS,SIGMA given: without the engine's
overlap and cross-fade, so figures sit within a few hundredths of a dB of a full `dvface restore`. Prints mean PSNR (Y)
against GT.mkv and the flicker measure per setting. Usage:

    python benchmarks/stabilise_sweep.py --clips runs/eval/synthetic-medium-seed0-49f [--model M]
        [--settings 0,16 2,16 2,8 2,24 3,16]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np

from dvface_plugin.media import open_media
from dvface_plugin.metrics import flicker, psnr_y
from dvface_plugin.model.config import DVFaceConfig
from dvface_plugin.model.folders import resolve_model_folder
from dvface_plugin.runtime.stabilise import stabilise


def load(path: Path) -> np.ndarray:
    with open_media(path) as media:
        return np.stack(list(media.frames()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=Path, required=True, help="folder of clip folders holding GT.mkv and LQ.mkv")
    parser.add_argument("--model", default="dvface-tiny")
    parser.add_argument("--settings", nargs="+", default=["0,16", "2,16", "2,8", "2,24", "3,16"], metavar="R,SIGMA")
    args = parser.parse_args()
    clips = sorted(p for p in args.clips.iterdir() if (p / "LQ.mkv").is_file() and (p / "GT.mkv").is_file())
    if not clips:
        raise SystemExit(f"no clip folders with GT.mkv and LQ.mkv under {args.clips}")
    window = DVFaceConfig.load(resolve_model_folder(args.model) / "config.json").window
    data = []
    for clip in clips:
        plain = clip / f"{Path(args.model).name}-stabilise0.mkv"
        if not plain.exists():
            subprocess.run([sys.executable, "-m", "dvface_plugin.cli", "restore", "--aligned", str(clip / "LQ.mkv"),
                            "-o", str(plain), "--model", args.model, "--stabilise", "0", "--quiet"], check=True)
        data.append((load(clip / "GT.mkv"), load(plain).astype(np.float32) / 127.5 - 1.0))
    print("| radius | sigma (levels) | PSNR | flicker | per clip |\n|---|---|---|---|---|")
    for setting in args.settings:
        radius, sigma = int(setting.split(",")[0]), float(setting.split(",")[1])
        scores, flickers = [], []
        for gt, restored in data:
            chunks = [stabilise(restored[i : i + window], radius, sigma) for i in range(0, len(restored), window)]
            out = np.clip(np.rint((np.concatenate(chunks) + 1.0) * 127.5), 0, 255).astype(np.uint8)
            scores.append(float(np.mean([psnr_y(a, b) for a, b in zip(out, gt)])))
            flickers.append(flicker(out))
        print(f"| {radius} | {sigma:g} | {np.mean(scores):.2f} | {np.mean(flickers):.3f} | "
              f"{' / '.join(f'{s:.2f}' for s in scores)} |", flush=True)


if __name__ == "__main__":
    main()
