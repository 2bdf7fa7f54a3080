"""Which tracked faces to restore: all, the largest, the most central, or chosen ids."""

from __future__ import annotations

import dataclasses

import numpy as np

from ..errors import InputError
from .trackdata import Track, Tracks

POLICIES = ("all", "largest", "center")


def _centre_distance(track: Track, tracks: Tracks) -> float:
    centre = np.array([tracks.width / 2, tracks.height / 2])
    boxes = np.stack([f.box for f in track.faces])
    mids = (boxes[:, :2] + boxes[:, 2:]) / 2
    return float(np.linalg.norm(mids - centre, axis=1).mean())


def parse_faces(faces: str) -> str | frozenset[int]:
    """A policy name, or the set of track ids of "1,3"; checked before any decoding so a typo
    costs nothing."""
    spec = faces.strip().lower()
    if spec in POLICIES:
        return spec
    try:
        ids = frozenset(int(part) for part in spec.split(",") if part.strip())
    except ValueError:
        raise InputError(
            f"faces={faces!r} is not one of {', '.join(POLICIES)} or a list of track ids like '1,3'"
        ) from None
    if not ids:
        raise InputError(f"faces={faces!r} names no track ids")
    return ids


def select_tracks(tracks: Tracks, faces: str = "all", min_face: float = 0.0) -> Tracks:
    """A copy of `tracks` keeping only the chosen faces.

    faces: "all", "largest" (largest median size), "center" (closest to the frame centre on
        average) or comma-separated track ids such as "1,3".
    min_face: tracks whose median face size (longer box side, px) is below this are dropped first;
        judged per track, not per frame, so a face never pops in and out of restoration.
    """
    if min_face < 0:
        raise InputError(f"min_face must be >= 0 px, got {min_face}")
    spec = parse_faces(faces)
    kept = [t for t in tracks.tracks if t.median_size >= min_face]
    if spec == "all":
        chosen = kept
    elif spec == "largest":
        chosen = [max(kept, key=lambda t: (t.median_size, -t.id))] if kept else []
    elif spec == "center":
        chosen = [min(kept, key=lambda t: (_centre_distance(t, tracks), t.id))] if kept else []
    else:
        known = {t.id for t in tracks.tracks}
        unknown = sorted(spec - known)
        if unknown:
            raise InputError(
                f"faces={faces!r}: no track with id {', '.join(map(str, unknown))}; "
                f"this clip has track ids {sorted(known) or 'none (no faces found)'}"
            )
        chosen = [t for t in kept if t.id in spec]
    return dataclasses.replace(tracks, tracks=chosen)


def left_out_reasons(tracks: Tracks, faces: str = "all", min_face: float = 0.0) -> dict[int, str]:
    """Why `select_tracks` drops each track it drops, by track id: the QC report names the reason."""
    chosen = {t.id for t in select_tracks(tracks, faces, min_face)}
    return {t.id: (f"smaller than the minimum face size (median {t.median_size:.0f} px < {min_face:g} px)"
                   if t.median_size < min_face else f"not chosen by faces={faces}")
            for t in tracks if t.id not in chosen}
