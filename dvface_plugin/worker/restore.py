"""The worker's "restore a frame range of an EXR sequence" job, with state kept between requests.

Host plates are scene-linear RGBA EXR, so this job reads them itself (alpha, data windows), turns
them into the model's display sRGB (`colour`), and writes float EXR with the face matte as an
extra channel. Between requests it keeps the loaded model, the face analysis of each input (keyed
by the input's decoded pixels and every setting that changes it) and one engine window cache shared
by every track session: repeating or overlapping a range re-reads files and re-pastes faces but
runs no model window twice. Analysis and the window grid always span the whole input sequence,
so a sub-range (a farm split) gives the same pixels as the whole range.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..colour import ColourSettings, encoding, from_display, to_display
from ..errors import DVFaceError, InputError
from ..media.sequences import FramePattern, parse_pattern
from .exrio import PARTIAL_TAG, ExrFrame, read_exr, remove_stale_partials, write_exr

Progress = Callable[[dict[str, Any]], None]
ANALYSES_KEPT = 8
DISPLAY_FRAMES_KEPT = 40


class Cancelled(DVFaceError):
    """The client cancelled the restore (or went away)."""


@dataclass(frozen=True)
class RestoreSettings:
    model: str = ""  # model folder or bundled name; "" = the bundled default
    device: str = "auto"
    precision: str = "auto"
    strength: float = 1.0  # how much of the restoration is pasted (scales the face matte)
    faces: str = "all"  # all | largest | center | "1,3"
    disabled: tuple[int, ...] = ()  # track ids switched off in the host's track list
    min_face: float = 0.0
    window: int | None = None  # engine window (frames); None: the model's
    overlap: int | None = None
    stabilise: int | None = None  # flow-guided temporal stabilisation radius (frames each side); None: the model's
    grain: float = 0.0  # how much of the plate's own grain goes back on the restored faces (0 to 1)
    colour_match: bool = True
    fps: float = 24.0
    colour: ColourSettings = field(default_factory=ColourSettings)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "RestoreSettings":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise InputError(f"unknown restore setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        values = dict(raw)
        try:
            if "colour" in values:
                values["colour"] = ColourSettings(**values["colour"])
            if "disabled" in values:
                values["disabled"] = tuple(int(v) for v in values["disabled"])
            for key, kind in (("strength", float), ("grain", float), ("min_face", float), ("fps", float)):
                if key in values:
                    values[key] = kind(values[key])
            for key in ("window", "overlap", "stabilise"):
                if values.get(key) is not None:
                    values[key] = int(values[key])
        except (TypeError, ValueError) as exc:
            raise InputError(f"bad restore settings: {exc}") from None
        if "strength" in values:
            from ..faces import check_strength

            check_strength(values["strength"])
        if "grain" in values:
            from ..runtime.base import check_grain

            check_grain(values["grain"])
        if values.get("stabilise") is not None and values["stabilise"] < 0:
            raise InputError(f"stabilise must be a whole number of frames >= 0 (0 = off) or null (the model's), "
                             f"got {values['stabilise']}")
        return cls(**values)


class _LRU(OrderedDict):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def put(self, key: Any, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)

    def lookup(self, key: Any) -> Any:
        value = self.get(key)
        if value is not None:
            self.move_to_end(key)
        return value


class _Plates:
    """Frames of one input sequence by clip index, as plates and as display images (LRU-held)."""

    def __init__(self, pattern: FramePattern, first: int, count: int, colour: ColourSettings) -> None:
        self.pattern, self.first, self.count, self.colour = pattern, first, count, colour
        self._display = _LRU(DISPLAY_FRAMES_KEPT)
        self._lock = threading.Lock()

    def plate(self, i: int) -> ExrFrame:
        return read_exr(self.pattern.path(self.first + i))

    def display(self, i: int, plate: ExrFrame | None = None) -> np.ndarray:
        with self._lock:
            cached = self._display.lookup(i)
        if cached is not None:
            return cached
        plate = plate or self.plate(i)
        image = to_display(plate.rgb, plate.alpha, self.colour)
        image.flags.writeable = False
        with self._lock:
            self._display.put(i, image)
        return image


class RangeRestorer:
    """Owns the model, detector and caches of one worker process; restores ranges on request."""

    def __init__(self, cache_bytes: int = 2 << 30) -> None:
        from ..engine import WindowCache

        self.cache = WindowCache(cache_bytes)
        self._restorer = None
        self._restorer_key: tuple | None = None
        self._detector = None
        self._analyses: _LRU = _LRU(ANALYSES_KEPT)
        self._lock = threading.Lock()

    def warm(self) -> None:
        """Import the model code and load the detector ahead of the first request (~5 s on a CPU)."""
        from ..model import dvface  # noqa: F401 - diffusers and torch imports are the slow part

        with self._lock:
            self._get_detector()

    # --- state ------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        s = self.cache.stats()
        return {
            "windows_computed": s.windows_computed,
            "priors_computed": s.priors_computed,
            "hits": s.hits,
            "misses": s.misses,
            "bytes_held": s.bytes_held,
            "budget_bytes": self.cache.budget_bytes,
            "entries": s.entries,
            "evictions": s.evictions,
            "analyses": len(self._analyses),
            "model": self._restorer_key[0] if self._restorer_key else None,
        }

    def clear(self) -> dict[str, Any]:
        with self._lock:
            self.cache.clear()
            self._analyses.clear()
        return self.stats()

    def _get_restorer(self, s: RestoreSettings):
        from ..runtime.backends import open_restorer

        key = (s.model, s.device, s.precision, s.window)
        if self._restorer_key != key:
            self._restorer = None  # free the old model before loading the next
            self._restorer = open_restorer(s.model or None, device=s.device, precision=s.precision, window=s.window)
            self._restorer_key = key
        return self._restorer

    def _get_detector(self):
        if self._detector is None:
            from ..faces import CenterFaceDetector

            self._detector = CenterFaceDetector()
        return self._detector

    # --- the job ----------------------------------------------------------------------------

    def restore(self, request: dict[str, Any], progress: Progress, cancelled: Callable[[], bool]) -> dict[str, Any]:
        with self._lock:  # one restore at a time: the model is serialised anyway
            return self._restore(request, progress, cancelled)

    def _restore(self, request: dict[str, Any], progress: Progress, cancelled: Callable[[], bool]) -> dict[str, Any]:
        started = time.perf_counter()
        settings = RestoreSettings.from_dict(request.get("settings", {}))
        in_pattern, out_pattern = _pattern(request["input"], "input"), _pattern(request["output"], "output")
        first, last = request["frames"]
        lo, hi = request.get("restore") or (first, last)
        if not first <= lo <= hi <= last:
            raise InputError(f"restore range {lo}-{hi} lies outside the input frames {first}-{last}")
        missing = [n for n in range(first, last + 1) if not in_pattern.path(n).is_file()]
        if missing:
            raise InputError(
                f"input frame(s) {_ranges(missing)} of {in_pattern.display} do not exist; render the input range first"
            )
        if not out_pattern.folder.is_dir():
            raise InputError(f"output folder {out_pattern.folder} does not exist; create it or pick another")
        remove_stale_partials(out_pattern.folder)
        report = Path(request["report"]) if request.get("report") else None
        if report is not None and not report.parent.is_dir():
            raise InputError(f"report folder's parent {report.parent} does not exist; create it or pick another")
        if report is not None and report.exists() and not (report / "report.json").is_file() and (
                not report.is_dir() or any(report.iterdir())):
            raise InputError(f"{report} exists and is not a dvface report (no report.json): it would be replaced; "
                             f"pick another report folder")

        def check() -> None:
            if cancelled():
                raise Cancelled("restore cancelled")

        restorer = self._get_restorer(settings)
        if settings.stabilise is not None:  # a copy sharing the loaded model; its radius keys the cache
            restorer = restorer.with_stabilise(settings.stabilise)
        restorer = restorer.with_grain(settings.grain)
        crop = restorer.config.crop_size
        plates = _Plates(in_pattern, first, last - first + 1, settings.colour)
        before = self.cache.stats()
        tracks, analysis_cached = self._analysis(plates, settings, crop, progress, check)

        from ..engine import FaceTrackSession
        from ..faces import select_tracks, warp_to_crop

        chosen = select_tracks(tracks, settings.faces, settings.min_face)
        chosen_tracks = [t for t in chosen.tracks if t.id not in settings.disabled]
        a, b = lo - first, hi - first  # clip indices
        sessions, iterators = [], {}
        for track in chosen_tracks:
            start, stop = max(a, track.first_frame), min(b, track.last_frame) + 1
            if start >= stop:
                continue

            def get_crop(n: int, track=track) -> np.ndarray:
                face = track.at(n)
                return np.clip(warp_to_crop(plates.display(n), face.affine, crop), 0.0, 1.0)

            session = FaceTrackSession(
                restorer,
                get_crop, len(track.faces), first_frame=track.first_frame, window=settings.window,
                overlap=settings.overlap, crop_size=crop, cache=self.cache,
                ahead=restorer.streams,  # every model copy busy; windows of frames the cache holds are skipped
            )
            sessions.append(session)
            iterators[track.id] = (track, session.iter_frames(start, stop))
        shot = None
        if report is not None:
            shot = _start_report(report, tracks, (a, b + 1), first, settings)
        try:
            written = self._composite(plates, out_pattern, a, b, first, iterators, settings, progress, check, shot)
            if shot is not None:
                _finish_report(shot, report, in_pattern, out_pattern, (lo, hi), plates, settings, restorer,
                               time.perf_counter() - started)
        except BaseException:
            if shot is not None:
                shutil.rmtree(shot.out, ignore_errors=True)
            raise
        finally:
            for session in sessions:
                session.close()
        after = self.cache.stats()
        return {
            "event": "done",
            "frames": [lo, hi],
            "written": written,
            "output": out_pattern.display,
            "report": None if report is None else str(report / "index.html"),
            "analysis_cached": analysis_cached,
            "computed": {
                "windows": after.windows_computed - before.windows_computed,
                "cache_hits": after.hits + after.frame_hits - before.hits - before.frame_hits,
                "priors": after.priors_computed - before.priors_computed,
            },
            "tracks": [
                {"id": t.id, "first": first + t.first_frame, "last": first + t.last_frame,
                 "size": round(t.median_size, 1), "enabled": t in chosen_tracks}
                for t in tracks.tracks
            ],
            "cache": self.stats(),
        }

    def _analysis(self, plates: _Plates, s: RestoreSettings, crop: int, progress: Progress, check: Callable[[], None]):
        from ..faces import TrackingSettings, analysis_settings, analyze

        detector = self._get_detector()
        tracking = TrackingSettings.for_clip(plates.count)
        aspect = plates.plate(0).pixel_aspect  # the plate's pixelAspectRatio: anamorphic plates align as displayed
        h = hashlib.sha256()
        h.update(json.dumps([analysis_settings(detector, tracking, crop_size=crop, pixel_aspect=aspect),
                             s.colour.as_dict(), s.fps],
                            sort_keys=True, default=str).encode())
        for i in range(plates.count):  # decoded pixels: hosts put render times in EXR headers
            check()
            plate = plates.plate(i)
            h.update(f"{plate.rgb.shape}|{plate.alpha is not None}".encode())
            h.update(plate.rgb.tobytes())
            if plate.alpha is not None:
                h.update(plate.alpha.tobytes())
        key = h.hexdigest()
        cached = self._analyses.lookup(key)
        if cached is not None:
            return cached, True

        def frames():
            for i in range(plates.count):
                check()
                yield plates.display(i)

        def report(done: int) -> None:
            check()
            progress({"event": "progress", "stage": "analyse", "frame": plates.first + done - 1,
                      "done": done, "total": plates.count})

        tracks = analyze(frames(), s.fps, detector=detector, tracking=tracking, crop_size=crop, progress=report,
                         pixel_aspect=aspect)
        self._analyses.put(key, tracks)
        return tracks, False

    def _composite(self, plates, out_pattern, a, b, first, iterators, s, progress, check, shot) -> int:
        from ..faces import paste_faces

        total = b - a + 1
        for k, n in enumerate(range(a, b + 1)):
            check()
            plate = plates.plate(n)
            faces = []
            for track, frames in iterators.values():
                if track.first_frame <= n <= track.last_frame and track.at(n) is not None:
                    faces.append((next(frames), track.at(n).affine))
            height, width = plate.rgb.shape[:2]
            display = plates.display(n, plate) if faces or shot is not None else None
            if faces:
                display_out, matte = paste_faces(display, faces, colour_match=s.colour_match, strength=s.strength)
                rgb = from_display(plate.rgb, plate.alpha, display, display_out, matte, s.colour)
            else:
                display_out, rgb, matte = display, plate.rgb, np.zeros((height, width), np.float32)
            if shot is not None:
                shot.add(n, display, display_out)
            write_exr(out_pattern.path(first + n), ExrFrame(rgb, plate.alpha, plate.pixel_aspect), matte)
            progress({"event": "progress", "stage": "restore", "frame": first + n, "done": k + 1, "total": total})
        return total


def _start_report(report: Path, tracks, span: tuple[int, int], first: int, s: RestoreSettings):
    """A QC report filled while compositing, in a hidden folder renamed into place when complete."""
    from ..faces import left_out_reasons
    from ..report import ShotReport

    remove_stale_partials(report.parent)
    left_out = left_out_reasons(tracks, s.faces, s.min_face)
    known = {t.id for t in tracks}
    left_out.update({i: "switched off in the host's track list" for i in s.disabled if i in known and i not in left_out})
    partial = report.parent / f".{report.name}{PARTIAL_TAG}{os.getpid()}-{secrets.token_hex(4)}"
    return ShotReport(partial, tracks, span, first_number=first, left_out=left_out)


def _finish_report(shot, report: Path, in_pattern: FramePattern, out_pattern: FramePattern,
                   frames: tuple[int, int], plates: "_Plates", s: RestoreSettings, restorer, seconds: float) -> None:
    from ..runtime.backends import describe

    plate = plates.plate(0)
    shot.finish({
        "input": in_pattern.display, "restored": out_pattern.display, "frames": frames[1] - frames[0] + 1,
        "frame_range": f"{frames[0]}-{frames[1]}", "fps": s.fps,
        "width": plate.rgb.shape[1], "height": plate.rgb.shape[0], "alpha": plate.alpha is not None,
        "images": f"the model's display sRGB, converted by the worker from {encoding(s.colour).description} "
                  f"(highlights {s.colour.highlights}); the plate keeps its own values",
        "model": s.model or "bundled default", "backend": describe(restorer), "strength": s.strength,
        "faces": s.faces, "min_face": s.min_face, "disabled_tracks": list(s.disabled),
        "stabilise": "model's" if s.stabilise is None else s.stabilise, "grain": s.grain,
        "restore_seconds": round(seconds, 2),
    })
    if report.exists():
        shutil.rmtree(report)
    os.replace(shot.out, report)


def _pattern(path: str, what: str) -> FramePattern:
    pattern = parse_pattern(path)
    if pattern is None or Path(path).suffix.lower() != ".exr":
        raise InputError(f"{what} {path!r} must be an EXR sequence pattern such as shot.####.exr or shot.%04d.exr")
    return pattern


def _ranges(numbers: list[int]) -> str:
    shown = ", ".join(map(str, numbers[:5]))
    return shown + (f" and {len(numbers) - 5} more" if len(numbers) > 5 else "")
