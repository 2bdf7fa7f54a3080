"""The training pack a GPU run carries: prepared face clips, small enough to travel.

A prepared training folder (`dvface prepare ../shared/data/train/... -o runs/data/tiny512`) is
gigabytes of 512 px .npy clips. The pack keeps each clip's first `--frames` frames at `--size`
px as one JPEG strip (frames stacked vertically) and each photo as one JPEG: about 12 MiB for
the whole training set at 192 px and 24 frames. `unpack` turns it back into the .npy clips and photos that
`dvface train` reads. Packs hold research-only media: write them to an ignored folder
(`.gpu/`, see README.md beside this file) and never commit them.

    python benchmarks/gpu/pack.py runs/data/tiny512 .gpu/pack --size 192 --frames 24
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

STRIP = ".strip.jpg"  # a clip: frames stacked vertically
PHOTO = ".jpg"
QUALITY = 92


def pack_item(item: np.ndarray, out: Path, stem: str, size: int) -> Path:
    """Write one (T, H, W, 3) uint8 RGB item, resized to `size` px: a strip if T > 1, else a photo."""
    frames = [cv2.resize(np.asarray(f), (size, size), interpolation=cv2.INTER_AREA) for f in item]
    path = out / (stem + (STRIP if len(frames) > 1 else PHOTO))
    bgr = cv2.cvtColor(np.concatenate(frames, axis=0), cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), bgr, [cv2.IMWRITE_JPEG_QUALITY, QUALITY]):
        raise OSError(f"cannot write {path}")
    return path


def pack(source: Path, out: Path, size: int, frames: int) -> int:
    """Pack every .npy clip and photo of a prepared folder; returns the bytes written."""
    out.mkdir(parents=True, exist_ok=True)
    total = 0
    for path in sorted(source.iterdir()):
        if path.suffix == ".npy":
            item = np.load(path, mmap_mode="r")[:frames]
        elif path.suffix.lower() in (".png", ".jpg", ".jpeg"):
            item = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)[None]
        else:
            continue
        total += pack_item(item, out, path.stem, size).stat().st_size
    return total


def unpack(source: Path, out: Path) -> int:
    """Turn a pack back into .npy clips and .png photos in `out`; returns the number of items."""
    out.mkdir(parents=True, exist_ok=True)
    count = 0
    for path in sorted(source.iterdir()):
        if not path.name.endswith(PHOTO):
            continue
        image = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        if path.name.endswith(STRIP):
            side = image.shape[1]
            np.save(out / (path.name[: -len(STRIP)] + ".npy"), image.reshape(-1, side, side, 3))
        else:
            cv2.imwrite(str(out / (path.stem + ".png")), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        count += 1
    return count


def synthetic_pack(out: Path, clips: int = 6, photos: int = 2, size: int = 96, frames: int = 9, seed: int = 0) -> Path:
    """A pack of smooth moving colour fields: what the CPU rehearsal trains on without real media."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    for i in range(clips + photos):
        length = frames if i < clips else 1
        phase = rng.uniform(0, 6, 3)
        t = np.arange(length, dtype=np.float32)[:, None, None, None]
        field = np.sin(7 * xx[..., None] + phase + 0.3 * t) * np.cos(5 * yy[..., None] - 0.2 * t)
        item = np.clip(127.5 + 100 * field + rng.normal(0, 8, field.shape), 0, 255).astype(np.uint8)
        pack_item(item, out, f"synthetic_{i}", size)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="a prepared training folder (never benchmark/)")
    parser.add_argument("out", type=Path, help="pack folder (keep it ignored: .gpu/pack)")
    parser.add_argument("--size", type=int, default=192, help="side in px (default 192: 512 px crops at 0.375)")
    parser.add_argument("--frames", type=int, default=24, help="frames kept per clip (default 24)")
    args = parser.parse_args(argv)
    if not args.source.is_dir():
        print(f"pack: {args.source} is not a folder; prepare one with `dvface prepare` first", file=sys.stderr)
        return 2
    if "benchmark" in args.source.resolve().parts:
        print(f"pack: {args.source} is benchmark media, which must never be trained on", file=sys.stderr)
        return 2
    size = pack(args.source, args.out, args.size, args.frames)
    print(f"pack: {args.out} holds {size / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
