"""Track association: stable ids through gaps and crossings, entering and leaving faces."""

from __future__ import annotations

import numpy as np

from dvface_plugin.faces.detector import Detection
from dvface_plugin.faces.tracking import track_faces

# A 60 px face's landmarks relative to its box corner.
SHAPE = np.array([[18.0, 22.0], [42.0, 22.0], [30.0, 35.0], [20.0, 46.0], [40.0, 46.0]])


def face(x: float, y: float, size: float = 60.0) -> Detection:
    s = size / 60.0
    box = np.array([x, y, x + size, y + size], dtype=np.float32)
    return Detection(box, 0.9, (SHAPE * s + [x, y]).astype(np.float32))


def track_of(tracks, frame: int, x_near: float) -> int:
    """Index of the track whose box at `frame` is nearest x_near."""
    best = None
    for i, t in enumerate(tracks):
        for p in t:
            if p.frame == frame and (best is None or abs(p.box[0] - x_near) < best[1]):
                best = (i, abs(p.box[0] - x_near))
    assert best is not None
    return best[0]


def test_two_crossing_faces_keep_their_ids():
    n = 30
    frames = []
    for f in range(n):
        a, b = 100 + 20 * f, 700 - 20 * f  # meet at frame 15
        dets = [face(a, 300), face(b, 310)]
        if 14 <= f <= 16:  # one face hides the other: a single detection
            dets = [face(a, 300)]
        frames.append(dets)
    tracks = track_faces(frames, max_gap=4)
    assert len(tracks) == 2
    right_mover = track_of(tracks, 0, 100)
    assert track_of(tracks, n - 1, 100 + 20 * (n - 1)) == right_mover
    left_mover = 1 - right_mover
    assert track_of(tracks, n - 1, 700 - 20 * (n - 1)) == left_mover
    for t in tracks:
        assert [p.frame for p in t] == list(range(n))
    hidden = [p for p in tracks[left_mover] if p.score is None]
    assert [p.frame for p in hidden] == [14, 15, 16]
    for p in hidden:  # interpolated along its own path, not snapped to the other face
        assert abs(p.box[0] - (700 - 20 * p.frame)) < 1e-6


def test_short_gap_is_interpolated_long_gap_splits():
    def clip(gap: range) -> list[list[Detection]]:
        return [[] if f in gap else [face(200 + 5 * f, 100 + 2 * f)] for f in range(20)]

    bridged = track_faces(clip(range(8, 11)), max_gap=3)
    assert len(bridged) == 1 and len(bridged[0]) == 20
    mid = bridged[0][9]
    assert mid.score is None
    np.testing.assert_allclose(mid.landmarks, face(245, 118).landmarks, atol=1e-4)

    split = track_faces(clip(range(8, 13)), max_gap=3)
    assert [(t[0].frame, t[-1].frame) for t in split] == [(0, 7), (13, 19)]


def test_faces_entering_and_leaving():
    frames = [[face(100, 100)] + ([face(600, 200)] if 5 <= f < 15 else []) for f in range(20)]
    tracks = track_faces(frames, max_gap=2)
    spans = sorted((t[0].frame, t[-1].frame) for t in tracks)
    assert spans == [(0, 19), (5, 14)]


def test_isolated_false_detections_are_dropped():
    frames = [[face(100, 100)] for _ in range(12)]
    frames[4] = frames[4] + [face(900, 500, 30)]
    frames[9] = frames[9] + [face(300, 600, 40)]
    tracks = track_faces(frames, max_gap=2, min_hits=3)
    assert len(tracks) == 1 and len(tracks[0]) == 12


def test_sudden_jump_is_a_new_face_not_the_same_track():
    frames = [[face(100, 100)] for _ in range(6)] + [[face(900, 400)] for _ in range(6)]
    tracks = track_faces(frames, max_gap=10)
    assert [(t[0].frame, t[-1].frame) for t in tracks] == [(0, 5), (6, 11)]


def test_short_clip_keeps_faces_and_empty_clip_has_none():
    assert len(track_faces([[face(10, 10)], [face(12, 10)]], min_hits=3)) == 1
    assert track_faces([[], [], []]) == []
