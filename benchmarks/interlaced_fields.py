"""What the model sees of interlaced video: field pictures against the frames they were shot as.

A progressive clip's frames 2k and 2k + 1 are woven into frame k of an interlaced clip (top field
first, 4:2:0 with a chroma row per field, as interlaced video stores it), so each field picture
has a true picture: the progressive frame of its moment. Three ways of making the field picture
are compared on the faces of at least 64 pixels CenterFace finds in those true frames (the median
ratio of luma detail, the variance of its Laplacian, to the true face's, and the mean PSNR-Y):
- `whole frame`: the woven frame as one picture (what restoring without fields would see: its
  combing counts as detail);
- `line doubling`: the field's own rows, the other rows averaged from their neighbours;
- `bwdif`: `wholeframe.fields.FieldSource`, what `dvface restore` hands the model.

    python benchmarks/interlaced_fields.py [--clip ../shared/data/realworld/whole/hamilton_640x360.mp4] [--frames 60]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import av
import cv2
import numpy as np

from dvface_plugin.faces.detector import CenterFaceDetector
from dvface_plugin.media import MediaWriter, open_media
from dvface_plugin.wholeframe.fields import FieldSource

DEFAULT_CLIP = Path(__file__).resolve().parents[1].parent / "shared/data/realworld/whole/hamilton_640x360.mp4"


def weave(frames: list[np.ndarray], folder: Path) -> Path:
    """An interlaced FFV1 4:2:0 clip of `frames` in pairs, top field first."""
    height, width = frames[0].shape[:2]
    blank = folder / "blank.mkv"  # a 4:2:0 source for the writer to copy its format from
    with av.open(str(blank), "w") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for _ in range(len(frames) // 2):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.zeros_like(frames[0]), format="rgb24")))
        container.mux(stream.encode())
    woven = folder / "woven.mkv"
    with open_media(blank) as source, MediaWriter(woven, fps=25, width=width, height=height, planes_from=source,
                                                  woven_fields=True, metadata={"field_order": 2}) as writer:
        for k in range(len(frames) // 2):
            frame = frames[2 * k].copy()
            frame[1::2] = frames[2 * k + 1][1::2]
            writer.write(frame, np.ones((height, width), np.float32))
    return woven


def line_doubled(frame: np.ndarray, parity: int) -> np.ndarray:
    out = frame.astype(np.float32)
    own = out[parity::2]
    above = np.concatenate([own[:1], own]) if parity else own
    below = own[1:] if parity == 0 else own
    rows = out[1 - parity::2]
    n = len(rows)
    rows[:] = (above[:n] + np.concatenate([below, own[-1:]])[:n]) / 2
    return np.rint(out).astype(np.uint8)


def luma(rgb: np.ndarray) -> np.ndarray:
    return (rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    parser.add_argument("--frames", type=int, default=60, help="progressive frames to weave (even)")
    args = parser.parse_args()
    with open_media(args.clip) as src:
        truth = list(src.frames(0, args.frames - args.frames % 2))
    detector = CenterFaceDetector()
    scores: dict[str, dict[str, list[float]]] = {name: {"detail": [], "psnr": []}
                                                 for name in ("whole frame", "line doubling", "bwdif")}
    with tempfile.TemporaryDirectory() as folder:
        path = weave(truth, Path(folder))
        with open_media(path) as woven:
            frames = list(woven.frames())
            pictures = list(FieldSource(woven, first=0).frames())
    for t, true in enumerate(truth):
        made = {"whole frame": frames[t // 2], "line doubling": line_doubled(frames[t // 2], t % 2),
                "bwdif": pictures[t]}
        for face in detector.detect_batch([true])[0]:
            x0, y0, x1, y1 = (int(v) for v in face.box[:4])
            if min(x1 - x0, y1 - y0) < 64:
                continue
            reference = luma(true[max(y0, 0):y1, max(x0, 0):x1])
            for name, picture in made.items():
                y = luma(picture[max(y0, 0):y1, max(x0, 0):x1])
                scores[name]["detail"].append(cv2.Laplacian(y, cv2.CV_64F).var() / cv2.Laplacian(reference, cv2.CV_64F).var())
                scores[name]["psnr"].append(10 * np.log10(255 ** 2 / max(np.mean((y - reference) ** 2), 1e-9)))
    print(json.dumps({"clip": args.clip.name, "faces": len(scores["bwdif"]["detail"]),
                      **{name: {"detail_of_true": round(float(np.median(s["detail"])), 3),
                                "psnr_y_db": round(float(np.mean(s["psnr"])), 2)} for name, s in scores.items()}},
                     indent=1))


if __name__ == "__main__":
    main()
