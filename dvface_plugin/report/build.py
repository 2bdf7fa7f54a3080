"""A QC report of one restored shot (`dvface report`): what a supervisor signs off by looking.

One forward pass over the input and the restored clip together cuts every face track's aligned
crop from both, measures it per frame (detail against the input's, flicker, identity distance
every 8th frame where dlib's descriptor is installed), keeps thumbnails across each track and one
full frame pair, and writes `report.json` plus a static `index.html` (`page`) into a
folder. Tracks come from the same cached analysis `dvface restore` uses, so ids match
`dvface track`. A track whose crops are identical in both clips was not restored.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..faces import Track, warp_to_crop
from ..media import MediaWriter, open_media
from ..media.pixels import rgb_to_dtype
from ..metrics import brightness_cells, descriptor_distance, detail
from .page import write_page

QC_CROP = 256  # px of the aligned crops measured and shown: the detail measure needs no more
THUMBS = 5  # thumbnails across each track
IDENTITY_EVERY = 8  # frames between identity measurements, as `dvface eval`
FULL_WIDTH = 960  # px: the full-frame pair is scaled down to this width


@dataclass
class TrackReport:
    id: int
    first_frame: int
    last_frame: int
    restored: bool
    detail: list[float] = field(default_factory=list)  # per frame: restored crop's over the input's
    flicker_input: list[float] = field(default_factory=list)  # per frame: |median cell change| from the last
    flicker_restored: list[float] = field(default_factory=list)
    identity: list[tuple[int, float]] = field(default_factory=list)  # (frame, distance), where measurable
    thumbs: list[dict] = field(default_factory=list)  # {"frame", "input", "restored"} image names
    full: dict | None = None  # the middle frame, full size: {"frame", "input", "restored"}


def build_report(input_path: str | Path, restored_path: str | Path, out_dir: str | Path, *,
                 crop_size: int = 512, cache_dir: Path | None = None, tracks_file: Path | None = None,
                 check_digest: bool = True, run: dict | None = None) -> dict:
    """Measure the shot, write `out_dir/report.json`, `index.html` and images; return the report.

    `tracks_file`: the (hand-edited) tracks the restore was given, instead of the cached analysis.
    `run`: how the restore ran (model, backend, device, settings, seconds), when the caller knows."""
    from ..face_identity import IdentityUnavailable, load_face_identity
    from ..wholeframe.stages import StageTimer
    from ..wholeframe.tracksource import obtain_tracks

    started = time.perf_counter()
    out = Path(out_dir)
    with open_media(input_path) as src, open_media(restored_path) as res:
        if (src.frame_count, src.width, src.height) != (res.frame_count, res.width, res.height):
            raise InputError(
                f"{restored_path} ({res.frame_count} frames of {res.width}x{res.height}) is not a restoration of "
                f"{input_path} ({src.frame_count} frames of {src.width}x{src.height}); give the clip it was made from")
        out.mkdir(parents=True, exist_ok=True)
        tracks = obtain_tracks(src, StageTimer(), crop_size, tracks_file=tracks_file, check_digest=check_digest,
                               cache_dir=cache_dir).tracks
        try:
            identity = load_face_identity()
        except IdentityUnavailable:
            identity = None
        reports = {t.id: TrackReport(t.id, t.first_frame, t.last_frame, restored=False) for t in tracks}
        scale = QC_CROP / tracks.crop_size
        picks = {t.id: _spread(t.first_frame, t.last_frame) for t in tracks}
        previous: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for n, (a, b) in enumerate(zip(src.frames(), res.frames(), strict=True)):
            for track in tracks:
                if not track.first_frame <= n <= track.last_frame:
                    continue
                report = reports[track.id]
                matrix = np.asarray(track.faces[n - track.first_frame].affine, np.float64) * scale
                crop_a, crop_b = (_u8(warp_to_crop(f, matrix, QC_CROP)) for f in (a, b))
                report.restored |= not np.array_equal(crop_a, crop_b)
                cells = (brightness_cells(crop_a), brightness_cells(crop_b))
                _measure(report, n, crop_a, crop_b, cells, previous.get(track.id), identity)
                previous[track.id] = cells
                if n in picks[track.id]:
                    report.thumbs.append(_save_pair(out, f"track{track.id}_f{n}", n, crop_a, crop_b))
                if n == (track.first_frame + track.last_frame) // 2:
                    report.full = _save_pair(out, f"track{track.id}_full", n, _fit(a), _fit(b))
        summary = {
            "input": str(input_path), "restored": str(restored_path),
            "frames": src.frame_count, "fps": str(src.fps), "width": src.width, "height": src.height,
            "pix_fmt": src.pix_fmt, "bit_depth": src.source_bits,
            "restored_pix_fmt": res.pix_fmt, "restored_bit_depth": res.source_bits,
            "identity_measured": identity is not None,
            **(run or {}),
        }
        frames_without = _frames_without_faces(src.frame_count, tracks, reports)
    report = {"shot": summary, "tracks": [asdict(r) for r in reports.values()],
              "frames_without_restored_face": frames_without,
              "seconds": round(time.perf_counter() - started, 2)}
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    write_page(out / "index.html", report)
    return report


def _measure(report: TrackReport, n: int, crop_a: np.ndarray, crop_b: np.ndarray,
             cells: tuple[np.ndarray, np.ndarray], previous: tuple[np.ndarray, np.ndarray] | None, identity) -> None:
    """One frame of a track: detail ratio, flicker against the previous frame's cells, identity."""
    reference = detail(crop_a)
    report.detail.append(round(detail(crop_b) / reference, 4) if reference > 0 else float("nan"))
    if previous is not None:
        for now, before, series in zip(cells, previous, (report.flicker_input, report.flicker_restored)):
            series.append(round(abs(float(np.median(now - before))), 4))
    if identity is not None and (n - report.first_frame) % IDENTITY_EVERY == 0:
        boxes = [identity.face_box(c) for c in (crop_a, crop_b)]
        if all(boxes):
            distance = descriptor_distance(identity.descriptor(crop_a, boxes[0]), identity.descriptor(crop_b, boxes[1]))
            report.identity.append((n, round(distance, 4)))


def _spread(first: int, last: int, count: int = THUMBS) -> set[int]:
    """`count` frames evenly across [first, last], ends included."""
    return {round(float(v)) for v in np.linspace(first, last, min(count, last - first + 1))}


def _u8(image: np.ndarray) -> np.ndarray:
    return rgb_to_dtype(image, np.dtype(np.uint8))


def _fit(frame: np.ndarray) -> np.ndarray:
    import cv2

    image = _u8(frame)
    h, w = image.shape[:2]
    if w <= FULL_WIDTH:
        return image
    return cv2.resize(image, (FULL_WIDTH, round(h * FULL_WIDTH / w)), interpolation=cv2.INTER_AREA)


def _save_pair(out: Path, stem: str, n: int, a: np.ndarray, b: np.ndarray) -> dict:
    names = {"input": f"{stem}_input.png", "restored": f"{stem}_restored.png"}
    for key, image in (("input", a), ("restored", b)):
        with MediaWriter(out / names[key], width=image.shape[1], height=image.shape[0]) as writer:
            writer.write(image)
    return {"frame": n, **names}


def _frames_without_faces(n_frames: int, tracks, reports: dict[int, TrackReport]) -> list[dict]:
    """Runs of frames where no face was restored, and why."""
    reasons: list[str] = []
    for n in range(n_frames):
        here: list[Track] = [t for t in tracks if t.first_frame <= n <= t.last_frame]
        if not here:
            reasons.append("no face detected")
        elif not any(reports[t.id].restored for t in here):
            ids = ", ".join(str(t.id) for t in here)
            reasons.append(f"track {ids} not restored (left out by --faces or --min-face)")
        else:
            reasons.append("")
    runs: list[dict] = []
    for n, why in enumerate(reasons):
        if not why:
            continue
        if runs and runs[-1]["why"] == why and runs[-1]["last"] == n - 1:
            runs[-1]["last"] = n
        else:
            runs.append({"first": n, "last": n, "why": why})
    return runs
