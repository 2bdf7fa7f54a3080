"""A QC report of one restored shot (`dvface report`): what a supervisor signs off by looking.

`ShotReport` is filled frame by frame with input/restored pairs: by `build_report`, one pass over
the input and the restored clip together, or by the restore's own loop (the compositing-host
worker, which hands over the frames in the model's display sRGB). For each face track it cuts the
aligned crop from both, measures it per frame (detail against the input's, flicker, identity
distance every 8th frame where dlib's descriptor is installed), keeps thumbnails across the track
and one full frame pair, and writes `report.json` plus a static `index.html` (`page`). Tracks come
from the same cached analysis `dvface restore` uses, so ids match `dvface track`. A track whose
crops are identical in both clips was not restored.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..colour import ColourSettings
from ..errors import InputError
from ..faces import Tracks, warp_to_crop
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
    first_frame: int  # frame numbers as the host names them, within the reported range
    last_frame: int
    restored: bool
    left_out: str = ""  # why the restore skipped this track, where the caller said
    lost: list[int] = field(default_factory=list)  # frames where the face was not detected (position interpolated)
    detail: list[float] = field(default_factory=list)  # per frame: restored crop's over the input's
    flicker_input: list[float] = field(default_factory=list)  # per frame: |median cell change| from the last
    flicker_restored: list[float] = field(default_factory=list)
    identity: list[tuple[int, float]] = field(default_factory=list)  # (frame, distance), where measurable
    thumbs: list[dict] = field(default_factory=list)  # {"frame", "input", "restored"} image names
    full: dict | None = None  # the middle frame, full size: {"frame", "input", "restored", "matte"}


class ShotReport:
    """A report of clip frames [start, stop) filled one input/restored frame pair at a time.

    `first_number`: the host's number of clip frame 0 (an image sequence's first file number), so
    the page names frames as the host does. `left_out`: why the restore skipped a track, by id,
    where the caller knows (else the page gives the possible reasons)."""

    def __init__(self, out_dir: str | Path, tracks: Tracks, span: tuple[int, int], *, first_number: int = 0,
                 left_out: dict[int, str] | None = None) -> None:
        from ..face_identity import IdentityUnavailable, load_face_identity

        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.start, self.stop = span
        self.number = first_number
        self.left_out = left_out or {}
        try:
            self.identity = load_face_identity()
        except IdentityUnavailable:
            self.identity = None
        self.tracks = [t for t in tracks if t.first_frame < self.stop and t.last_frame >= self.start]
        self.scale = QC_CROP / tracks.crop_size
        self.display = (tracks.pixel_aspect, tracks.rotation // 90)  # full frames shown as players show them
        self.reports: dict[int, TrackReport] = {}
        self.picks: dict[int, set[int]] = {}
        for t in self.tracks:
            lo, hi = max(t.first_frame, self.start), min(t.last_frame, self.stop - 1)
            lost = [f.frame + first_number for f in t.faces if f.score is None and lo <= f.frame <= hi]
            self.reports[t.id] = TrackReport(t.id, lo + first_number, hi + first_number, restored=False,
                                             left_out=self.left_out.get(t.id, ""), lost=lost)
            self.picks[t.id] = _spread(lo, hi)
        self.previous: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.started = time.perf_counter()

    def add(self, n: int, source: np.ndarray, restored: np.ndarray) -> None:
        """Clip frame `n` of the input and of its restoration (any RGB dtype the media module uses)."""
        if not self.start <= n < self.stop:
            return
        for track in self.tracks:
            face = track.at(n)
            if face is None:
                continue
            report, name = self.reports[track.id], n + self.number
            matrix = np.asarray(face.affine, np.float64) * self.scale
            # Bilinear, as the QC measures were always taken, so pages and tables stay comparable.
            crop_a, crop_b = (_u8(warp_to_crop(f, matrix, QC_CROP, enlarge=cv2.INTER_LINEAR))
                              for f in (source, restored))
            report.restored |= not np.array_equal(crop_a, crop_b)
            cells = (brightness_cells(crop_a), brightness_cells(crop_b))
            _measure(report, name, crop_a, crop_b, cells, self.previous.get(track.id), self.identity)
            self.previous[track.id] = cells
            if n in self.picks[track.id]:
                report.thumbs.append(_save_pair(self.out, f"track{track.id}_f{name}", name, crop_a, crop_b))
            if name == (report.first_frame + report.last_frame) // 2:
                report.full = _save_pair(self.out, f"track{track.id}_full", name,
                                         _fit(source, *self.display), _fit(restored, *self.display))
                report.full["matte"] = _save(self.out, f"track{track.id}_matte.png",
                                             _changed(source, restored, self.display))

    def finish(self, shot: dict) -> dict:
        """Write report.json and index.html; `shot` describes the source and the run."""
        report = {"shot": {**shot, "identity_measured": self.identity is not None},
                  "tracks": [asdict(r) for r in self.reports.values()],
                  "frames_without_restored_face": self._frames_without_faces(),
                  "seconds": round(time.perf_counter() - self.started, 2)}
        (self.out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
        write_page(self.out / "index.html", report)
        return report

    def _frames_without_faces(self) -> list[dict]:
        """Runs of frames where no face was restored, and why."""
        runs: list[dict] = []
        for n in range(self.start, self.stop):
            here = [t for t in self.tracks if t.at(n) is not None]
            if not here:
                why = "no face detected"
            elif any(self.reports[t.id].restored for t in here):
                continue
            else:
                why = "; ".join(f"track {t.id} " + (self.reports[t.id].left_out or "not restored (left out by the "
                                                    "faces choice or the minimum face size)") for t in here)
            name = n + self.number
            if runs and runs[-1]["why"] == why and runs[-1]["last"] == name - 1:
                runs[-1]["last"] = name
            else:
                runs.append({"first": name, "last": name, "why": why})
        return runs


def build_report(input_path: str | Path, restored_path: str | Path, out_dir: str | Path, *,
                 crop_size: int = 512, cache_dir: Path | None = None, tracks_file: Path | None = None,
                 check_digest: bool = True, frames: str | None = None, faces: str | None = None,
                 min_face: float = 0.0, colour: ColourSettings | None = None, run: dict | None = None,
                 allow_interlaced: bool = False) -> dict:
    """Measure the shot, write `out_dir/report.json`, `index.html` and images; return the report.

    `tracks_file`: the (hand-edited) tracks the restore was given, instead of the cached analysis.
    `frames`: the "A-B" range a `restore --frames` wrote (the restored clip holds only those).
    `faces`, `min_face`: the restore's choice of tracks, so skipped tracks are named with the reason.
    `colour`: the plates' colour space (`restore --colorspace`): both clips are seen in display sRGB.
    `run`: how the restore ran (model, backend, device, settings, seconds), when the caller knows.
    An interlaced input is measured field by field, as `dvface restore` restores it (unless
    `allow_interlaced`, as there): the page then counts fields, two a frame."""
    from ..faces import left_out_reasons
    from ..media import parse_frame_range
    from ..wholeframe.platecolour import viewed
    from ..wholeframe.stages import StageTimer
    from ..wholeframe.fields import FieldSource, restore_by_fields
    from ..wholeframe.tracksource import obtain_tracks

    with open_media(input_path) as src_plates, open_media(restored_path) as res_plates:
        field = restore_by_fields(src_plates.metadata, Path(input_path).name, allow_interlaced)
        src, res = src_plates, res_plates
        first_number = src.metadata.get("first_frame", 0)
        start, stop = (0, src.frame_count) if frames is None else parse_frame_range(frames, src.frame_count,
                                                                                   first_number)
        if (stop - start, src.width, src.height) != (res.frame_count, res.width, res.height):
            within = "" if frames is None else f" frames {frames} of"
            raise InputError(
                f"{restored_path} ({res.frame_count} frames of {res.width}x{res.height}) is not a restoration of"
                f"{within} {input_path} ({stop - start} frames of {src.width}x{src.height}); give the clip it was "
                f"made from" + ("" if frames is None else " and the --frames it was restored with"))
        per = 1  # pictures a frame: 2 when restored field by field (picture 2k is frame k's first field)
        if field is not None:
            per, src, res = 2, FieldSource(src, field), FieldSource(res, field)
        src, res = viewed(src, colour), viewed(res, colour)  # the fields as the model saw them
        tracks = obtain_tracks(src, StageTimer(), crop_size, tracks_file=tracks_file, check_digest=check_digest,
                               cache_dir=cache_dir).tracks
        left_out = None if faces is None and not min_face else left_out_reasons(tracks, faces or "all", min_face)
        shot = ShotReport(out_dir, tracks, (per * start, per * stop), first_number=per * first_number,
                          left_out=left_out)
        for n, (a, b) in enumerate(zip(src.frames(per * start, per * stop), res.frames(), strict=True), per * start):
            shot.add(n, a, b)
        return shot.finish({
            "input": str(input_path), "restored": str(restored_path), "unit": "frame" if field is None else "field",
            "frames": stop - start, "frame_range": f"{start + first_number}-{stop - 1 + first_number}",
            **({} if field is None else {"fields": per * (stop - start)}),
            "fps": str(src_plates.fps), "width": src.width, "height": src.height,
            "pix_fmt": src.pix_fmt, "bit_depth": src.source_bits,
            "restored_pix_fmt": res.pix_fmt, "restored_bit_depth": res.source_bits,
            **(run or {}),
        })


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


def _fit(frame: np.ndarray, pixel_aspect: float = 1.0, turns: int = 0) -> np.ndarray:
    """The frame as displayed (its pixel aspect, turned `turns` quarter turns counter-clockwise),
    at most FULL_WIDTH wide."""
    image = _u8(frame)
    h, w = image.shape[:2]
    wide = w * pixel_aspect
    scale = min(1.0, FULL_WIDTH / (h if turns % 2 else wide))
    size = (max(1, round(wide * scale)), max(1, round(h * scale)))
    if size != (w, h):
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(np.rot90(image, turns))


def _changed(source: np.ndarray, restored: np.ndarray, display: tuple[float, int]) -> np.ndarray:
    """White where the restore changed any sample of the frame (every face's matte), as the page shows frames."""
    mask = np.any(source != restored, axis=-1).astype(np.uint8) * np.uint8(255)
    return _fit(np.repeat(mask[..., None], 3, axis=-1), *display)


def _save(out: Path, name: str, image: np.ndarray) -> str:
    with MediaWriter(out / name, width=image.shape[1], height=image.shape[0]) as writer:
        writer.write(image)
    return name


def _save_pair(out: Path, stem: str, n: int, a: np.ndarray, b: np.ndarray) -> dict:
    return {"frame": n, "input": _save(out, f"{stem}_input.png", a), "restored": _save(out, f"{stem}_restored.png", b)}
