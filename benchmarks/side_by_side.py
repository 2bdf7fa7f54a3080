"""Side-by-side comparison sheets of the benchmark clips, one PNG per clip and frame, to look at.

Each sheet is a row of labelled full-size panels, input | ours (each --ours) | every published
method | GT (paired clips only), and below each panel its eye and mouth regions zoomed 2x.
The boxes are the FFHQ template's (dvface_plugin/faces/align.py) eye and mouth positions, placed
on the face the detector finds in GT (or the input): the benchmark "crops" are not all tight
FFHQ crops (HDTF faces fill a third of the frame), so the plain template would miss the eyes.
Published outputs can be a frame or two off: every panel's offset against GT (the input where
there is no GT) is searched as `dvface eval` does, so all panels show one instant.

Clips come from --data (default ../shared/data beside the repository):
  paired         benchmark/paired/<clip>/{LQ,GT,<method>...}.mp4
  dvface-page    realworld/aligned/dvface-page/<clip>/{LQ,<method>...}.mp4
  misc           realworld/aligned/misc/<clip>.mp4             (input only)
  youtube-faces  realworld/aligned/youtube-faces/<clip>.mp4    (input only)

Ours: --ours DIR (labelled "ours") or --ours NAME=DIR, repeatable, each a folder laid out as
benchmarks/default_model_eval.py writes it: DIR/<set>/<clip>/dvface-tiny.mkv (DIR/<clip>/...
also works; --ours-stem changes the file name). Nothing is restored here: a missing output is
reported on stderr and its panel left out.

The sheets go under --out (default runs/side_by_side, git-ignored) as <set>/<clip>_f<frame>.png.
They are made from research-use media: never commit them. About 3 s a paired clip on two CPU
cores (the bundled CenterFace detector needs onnxruntime; --template-boxes skips it). Usage:

    python benchmarks/side_by_side.py [--sets paired ...] [--clips HDTF_1 ...]
        [--ours runs/eval | --ours old=runs/eval --ours new=runs/evalB] [--frames 10 40]
        [--out runs/side_by_side] [--offset-search 2] [--template-boxes]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from dvface_plugin.errors import DVFaceError, InputError
from dvface_plugin.evaluate import VIDEO_SUFFIXES, search_offset
from dvface_plugin.faces.align import alignment_matrix, ffhq_template, invert_affine, transform_points
from dvface_plugin.faces.detector import CenterFaceDetector, FaceDetector
from dvface_plugin.faces.imageops import to_uint8
from dvface_plugin.media import MediaSource, open_media

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SETS = {"paired": "benchmark/paired", "dvface-page": "realworld/aligned/dvface-page",
        "misc": "realworld/aligned/misc", "youtube-faces": "realworld/aligned/youtube-faces"}
PUBLISHED = ("DVFace", "PGTFormer", "SVFR", "DicFace")  # panel order; other names follow sorted
INPUT, GT = "LQ", "GT"
OURS_STEM = "dvface-tiny"  # the file benchmarks/default_model_eval.py restores each clip to
LABEL_HEIGHT = 40
ZOOM = 2
GAP = 6  # dark rows above each zoom, so the eye and mouth zooms do not read as one picture


@dataclass(frozen=True)
class Clip:
    set: str
    name: str
    input: Path
    gt: Path | None = None
    published: tuple[tuple[str, Path], ...] = ()


def warn(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _videos(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir())
            if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES}


def find_clips(data: Path, sets: list[str], names: list[str] | None = None) -> list[Clip]:
    """The clips of the chosen sets (optionally only those named), in set then name order."""
    clips = []
    for set_name in sets:
        root = data / SETS[set_name]
        if not root.is_dir():
            warn(f"{root} not found: set {set_name} skipped")
            continue
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            videos = _videos(folder)
            if INPUT not in videos:
                warn(f"{folder} has no {INPUT} video: skipped")
                continue
            methods = sorted(set(videos) - {INPUT, GT},
                             key=lambda m: (PUBLISHED.index(m) if m in PUBLISHED else len(PUBLISHED), m))
            clips.append(Clip(set_name, folder.name, videos[INPUT], videos.get(GT),
                              tuple((m, videos[m]) for m in methods)))
        clips += [Clip(set_name, stem, path) for stem, path in _videos(root).items()]
    return [c for c in clips if not names or c.name in names]


def parse_ours(values: list[str]) -> dict[str, Path]:
    """{label: run folder} from --ours DIR / NAME=DIR values."""
    ours: dict[str, Path] = {}
    for value in values:
        name, sep, folder = value.partition("=")
        name, folder = (name, folder) if sep else ("ours", value)
        if not name or not folder or name in ours:
            raise InputError(f"--ours {value!r}: give DIR once, or NAME=DIR with distinct names")
        if not Path(folder).is_dir():
            raise InputError(f"--ours {value!r}: {folder} is not a folder")
        ours[name] = Path(folder)
    return ours


def ours_output(root: Path, clip: Clip, stem: str) -> Path | None:
    for folder in (root / clip.set / clip.name, root / clip.name):
        for suffix in sorted(VIDEO_SUFFIXES):
            if (folder / f"{stem}{suffix}").is_file():
                return folder / f"{stem}{suffix}"
    return None


def zoom_boxes(size: int, landmarks: np.ndarray | None = None) -> dict[str, tuple[int, int, int, int]]:
    """(x, y, w, h) of the eye and mouth regions of a size x size frame.

    Centred on the FFHQ template's eye midpoint and mouth-corner midpoint: where they sit in an
    aligned crop or, given the face's five landmarks, where the alignment that fits the face to
    the template puts them in this frame. The boxes are 2 template eye distances wide (a 2x zoom
    is exactly one panel wide) and 0.75 high, and are kept inside the frame."""
    t = ffhq_template(size)
    eye_dist = t[1, 0] - t[0, 0]
    w, h = round(2 * eye_dist), round(0.75 * eye_dist)
    centres = np.array([t[:2].mean(0), t[3:].mean(0)])
    if landmarks is not None:
        centres = transform_points(invert_affine(alignment_matrix(landmarks, size)), centres)
    x = np.clip(np.rint(centres[:, 0] - w / 2), 0, size - w).astype(int)
    y = np.clip(np.rint(centres[:, 1] - h / 2), 0, size - h).astype(int)
    return {"eyes": (int(x[0]), int(y[0]), w, h), "mouth": (int(x[1]), int(y[1]), w, h)}


def sheet_size(panels: int, size: int = 512) -> tuple[int, int]:
    """(width, height) of a sheet of `panels` size x size panels."""
    zooms = sum(GAP + ZOOM * h for *_, h in zoom_boxes(size).values())
    return panels * size, LABEL_HEIGHT + size + zooms


def face_landmarks(detector: FaceDetector | None, frame: np.ndarray) -> np.ndarray | None:
    """The five landmarks of the largest face in the frame, None when there is none."""
    faces = detector.detect(frame) if detector is not None else []
    return max(faces, key=lambda f: f.size).landmarks if faces else None


def column(label: str, frame: np.ndarray, boxes: dict[str, tuple[int, int, int, int]]) -> np.ndarray:
    """The label strip, the frame itself, then its eye and mouth boxes zoomed."""
    size = frame.shape[1]
    strip = np.full((LABEL_HEIGHT, size, 3), 32, np.uint8)
    font, scale, thick = cv2.FONT_HERSHEY_SIMPLEX, 0.9, 2
    while cv2.getTextSize(label, font, scale, thick)[0][0] > size - 16 and scale > 0.4:
        scale -= 0.1
    (_, text_h), _ = cv2.getTextSize(label, font, scale, thick)
    cv2.putText(strip, label, (8, (LABEL_HEIGHT + text_h) // 2), font, scale, (255, 255, 255),
                thick, cv2.LINE_AA)
    gap = np.full((GAP, size, 3), 32, np.uint8)
    zooms = [part for x, y, w, h in boxes.values()
             for part in (gap, cv2.resize(frame[y:y + h, x:x + w], None, fx=ZOOM, fy=ZOOM,
                                          interpolation=cv2.INTER_NEAREST))]  # nearest: pixels as they are
    return np.vstack([strip, frame, *zooms])


def _offset(path: Path, reference: Path, max_shift: int, clip: Clip) -> int:
    if path == reference:
        return 0
    try:
        return search_offset(path, reference, max_shift)
    except InputError as exc:
        warn(f"{clip.set}/{clip.name}: offset of {path.name} not searched ({exc}); using 0")
        return 0


def _frame(source: MediaSource, index: int, size: int) -> np.ndarray:
    frame = to_uint8(source.read(index))
    if frame.shape[:2] != (size, size):
        frame = cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)
    return frame


def render_clip(clip: Clip, ours: dict[str, Path], frames: list[int], out: Path, max_shift: int = 2,
                stem: str = OURS_STEM, detector: FaceDetector | None = None) -> list[Path]:
    """Write the clip's sheets; returns their paths."""
    panels = [("input", clip.input)]
    for name, root in ours.items():
        path = ours_output(root, clip, stem)
        if path is None:
            warn(f"{clip.set}/{clip.name}: no {name} output under {root} "
                 f"({clip.set}/{clip.name}/{stem}.* or {clip.name}/{stem}.*); panel left out")
        else:
            panels.append((name, path))
    panels += list(clip.published)
    if clip.gt is not None:
        panels.append(("GT", clip.gt))
    reference = clip.gt or clip.input
    offsets = [_offset(path, reference, max_shift, clip) for _, path in panels]
    sources = [open_media(path) for _, path in panels]
    written: list[Path] = []
    try:
        ref = sources[[p for _, p in panels].index(reference)]
        size, count = ref.width, ref.frame_count
        if ref.height != size:
            raise InputError(f"{reference} is {size}x{ref.height}; sheets need square face crops")
        for (_, path), source in zip(panels, sources):
            if (source.width, source.height) != (size, size):
                warn(f"{clip.set}/{clip.name}: {path.name} is {source.width}x{source.height}; "
                     f"shown resized to {size}x{size}")
        shown: set[int] = set()
        for t in frames:
            if t >= count:
                warn(f"{clip.set}/{clip.name} has {count} frames: frame {t} shown as {count - 1}")
                t = count - 1
            if t in shown:
                continue
            shown.add(t)
            shots = []
            for (label, path), source, offset in zip(panels, sources, offsets):
                j = min(max(t + offset, 0), source.frame_count - 1)
                if j != t + offset:
                    warn(f"{clip.set}/{clip.name}: {path.name} has {source.frame_count} frames: "
                         f"frame {t + offset} shown as {j}")
                shots.append((f"{label}  frame {j}", _frame(source, j, size), path == reference))
            landmarks = face_landmarks(detector, next(f for _, f, is_ref in shots if is_ref))
            if landmarks is None and detector is not None:
                warn(f"{clip.set}/{clip.name}: no face found in {reference.name} at frame {t}; "
                     f"zooms placed as in an aligned crop")
            boxes = zoom_boxes(size, landmarks)
            cols = [column(label, frame, boxes) for label, frame, _ in shots]
            target = out / clip.set / f"{clip.name}_f{t:03d}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            if not cv2.imwrite(str(target), cv2.cvtColor(np.hstack(cols), cv2.COLOR_RGB2BGR)):
                raise InputError(f"could not write {target}")
            written.append(target)
    finally:
        for source in sources:
            source.close()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    parser.add_argument("--sets", nargs="+", choices=list(SETS), default=list(SETS))
    parser.add_argument("--clips", nargs="+", metavar="NAME", help="only these clips")
    parser.add_argument("--ours", action="append", default=[], metavar="[NAME=]DIR",
                        help="a folder of our restored clips; repeatable")
    parser.add_argument("--ours-stem", default=OURS_STEM,
                        help=f"file name of our output in each clip folder (default {OURS_STEM})")
    parser.add_argument("--frames", type=int, nargs="+", default=[10, 40],
                        help="frames of GT (or the input) to show; past the end: the last frame")
    parser.add_argument("--out", type=Path, default=Path("runs/side_by_side"),
                        help="folder of the sheets (default runs/side_by_side, git-ignored)")
    parser.add_argument("--offset-search", type=int, default=2, metavar="N",
                        help="search offsets in [-N, N] frames against GT or input (0 disables)")
    parser.add_argument("--template-boxes", action="store_true",
                        help="place the zooms as in an aligned crop, without face detection")
    args = parser.parse_args(argv)
    try:
        if args.offset_search < 0 or min(args.frames) < 0:
            raise InputError("--offset-search and --frames must be 0 or more")
        ours = parse_ours(args.ours)
        clips = find_clips(args.data, args.sets, args.clips)
        if not clips:
            raise InputError(f"no clips found under {args.data} for sets {', '.join(args.sets)}")
        try:
            detector = None if args.template_boxes else CenterFaceDetector(threads=1)
        except DVFaceError as exc:
            raise InputError(f"{exc}; or pass --template-boxes") from exc
        for clip in clips:
            for path in render_clip(clip, ours, args.frames, args.out, args.offset_search,
                                    args.ours_stem, detector):
                print(path, flush=True)
    except DVFaceError as exc:
        warn(f"error: {exc}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
