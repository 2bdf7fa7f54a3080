"""What a user sees on whole frames: `dvface restore` on real clips, every face as large as it is.

The tables of docs/benchmarks.md "Whole frames" come from here. The aligned benchmark clips are
512 px crops; in a whole frame a face is often a fifth of that, and only the detail that survives
pasting it back at its own size shows. For each clip of ../shared/data/realworld/whole (or
--clips), the first --frames frames are restored with `--report` and `--json`, and the QC page's
measures (the same aligned crops of the input and the output, at 256 px) are gathered per face
track: detail (restored over input, 1 = as sharp), flicker (mean brightness change of the face's
cells between frames, input and restored) and identity distance to the input. A summary groups
the tracks by median face size. To look at, `<out>/<clip>/native.png` shows every restored face
of the middle frame at its own size in the frame, zoomed 3x without smoothing: input | restored.
Never trains; images are written only into --out (ignored by git: real media and images made
from it are never committed).

    python benchmarks/wholeframe_eval.py [--model dvface-tiny] [--out runs/wholeframe] [--frames 24]
        [--clips a.mp4 b.mp4] [--markdown] [-- EXTRA RESTORE OPTIONS]

Options after `--` go to `dvface restore` as they are (e.g. `-- --stabilise 0 --backend ort`).
About 30 minutes on two CPU cores for the ten clips at 24 frames with the tiny model.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

WHOLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "realworld" / "whole"
SIZES = ((0, 128, "under 128 px"), (128, 256, "128-256 px"), (256, 1 << 30, "256 px and over"))


def restore(clip: Path, out: Path, model: str, frames: int, extra: list[str]) -> tuple[dict, dict, float]:
    """Restore the clip's first `frames` frames with its QC page; returns (summary, report, seconds)."""
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "dvface_plugin.cli", "restore", str(clip), "-o", str(out / "restored.mkv"),
         "--model", model, "--frames", f"0-{frames - 1}", "--report", str(out / "qc"), "--json", "--quiet",
         "--overwrite", *extra],
        check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    return json.loads(done.stdout), json.loads((out / "qc" / "report.json").read_text()), seconds


def native_sheet(clip: Path, restored: Path, frame: int, path: Path, zoom: int = 3) -> None:
    """Input | restored of every changed region of `frame` (the faces: outside them the output is
    the source's own samples), at the size they are in the frame, zoomed without smoothing."""
    import cv2
    from scipy import ndimage

    from dvface_plugin.media import open_media

    with open_media(clip) as a, open_media(restored) as b:
        before, after = a.read(frame), b.read(frame)
    changed = ndimage.binary_dilation(np.any(before != after, axis=2), iterations=4)
    regions = sorted(ndimage.find_objects(ndimage.label(changed)[0]),
                     key=lambda r: -(r[0].stop - r[0].start) * (r[1].stop - r[1].start))
    tiles = [np.concatenate([cv2.resize(im[r], None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)
                             for im in (before, after)], 1) for r in regions]
    if not tiles:
        return
    width = max(t.shape[1] for t in tiles)
    sheet = np.concatenate([np.pad(t, ((0, 4), (0, width - t.shape[1]), (0, 0))) for t in tiles])
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))


def track_rows(clip: str, summary: dict, report: dict) -> list[dict]:
    """One row per restored face track: its size and the QC page's measures, averaged over frames."""
    sizes = {t["id"]: t["median_size"] for t in summary["tracks"]}
    rows = []
    for t in report["tracks"]:
        if not t["restored"]:
            continue
        rows.append({
            "clip": clip, "track": t["id"], "face_px": sizes[t["id"]], "frames": len(t["detail"]),
            "detail": float(np.nanmean(t["detail"])),
            "flicker_input": float(np.mean(t["flicker_input"])) if t["flicker_input"] else float("nan"),
            "flicker_restored": float(np.mean(t["flicker_restored"])) if t["flicker_restored"] else float("nan"),
            "identity": float(np.mean([d for _, d in t["identity"]])) if t["identity"] else float("nan"),
        })
    return rows


def table(rows: list[dict], markdown: bool) -> str:
    head = ["clip", "track", "face px", "frames", "detail", "flicker in", "flicker out", "identity"]
    lines = [[r["clip"], str(r["track"]), f"{r['face_px']:.0f}", str(r["frames"]), f"{r['detail']:.2f}",
              f"{r['flicker_input']:.3f}", f"{r['flicker_restored']:.3f}", f"{r['identity']:.3f}"] for r in rows]
    return _format(head, lines, markdown)


def by_size(rows: list[dict], markdown: bool) -> str:
    """Tracks grouped by median face size: frame-weighted means, and how many lost detail."""
    head = ["face size", "tracks", "detail (frame-weighted)", "tracks under 1.0", "tracks at 1.5 or more",
            "flicker out / in", "identity"]
    lines = []
    for lo, hi, name in SIZES:
        group = [r for r in rows if lo <= r["face_px"] < hi]
        if not group:
            continue
        w = np.array([r["frames"] for r in group], float)
        mean = lambda key: float(np.average([r[key] for r in group], weights=w))  # noqa: E731
        lines.append([name, str(len(group)), f"{mean('detail'):.2f}", str(sum(r["detail"] < 1 for r in group)),
                      str(sum(r["detail"] >= 1.5 for r in group)),
                      f"{mean('flicker_restored') / mean('flicker_input'):.2f}",
                      f"{float(np.nanmean([r['identity'] for r in group])):.3f}"])
    return _format(head, lines, markdown)


def _format(head: list[str], lines: list[list[str]], markdown: bool) -> str:
    if markdown:
        return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
                         + ["| " + " | ".join(line) + " |" for line in lines])
    widths = [max(len(x) for x in col) for col in zip(head, *lines)]
    return "\n".join("  ".join(x.ljust(w) for x, w in zip(line, widths)) for line in [head, *lines])


def main() -> None:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="dvface-tiny")
    parser.add_argument("--out", type=Path, default=Path("runs/wholeframe"))
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--clips", nargs="*", type=Path, default=None)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    clips = args.clips or sorted(WHOLE.glob("*.mp4"))
    if not clips:
        sys.exit(f"no clips: give --clips, or put the real-world set at {WHOLE}")
    rows = []
    for clip in clips:
        summary, report, seconds = restore(clip, args.out / clip.stem, args.model, args.frames, extra)
        native_sheet(clip, args.out / clip.stem / "restored.mkv", args.frames // 2, args.out / clip.stem / "native.png")
        found = track_rows(clip.stem, summary, report)
        print(f"{clip.name}: {summary['frames']} frames, {len(found)} faces restored in {seconds:.0f} s "
              f"({report['shot']['backend']}, {report['shot']['precision']})", file=sys.stderr, flush=True)
        rows += found
    print(table(rows, args.markdown))
    print()
    print(by_size(rows, args.markdown))
    (args.out / "rows.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
