"""The analysis pass end to end with the real detector, the tracks file, and face selection."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from skimage import data

from dvface_plugin.errors import InputError
from dvface_plugin.faces.align import alignment_matrix, transform_points, warp_to_crop
from dvface_plugin.faces.analysis import analysis_settings, analyze, frames_digest
from dvface_plugin.faces.detector import CenterFaceDetector
from dvface_plugin.faces.selection import select_tracks
from dvface_plugin.faces.trackdata import Tracks

REGION = (30, 230, 130, 330)  # y0, y1, x0, x1: the astronaut's face
N = 12
GAP = (5, 6)  # frames where face A is missing


@pytest.fixture(scope="module")
def detector() -> CenterFaceDetector:
    return CenterFaceDetector()


def face_image(scale: float) -> np.ndarray:
    y0, y1, x0, x1 = REGION
    return cv2.resize(data.astronaut()[y0:y1, x0:x1], None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


def positions(f: int) -> tuple[tuple[int, int, float], tuple[int, int, float]]:
    """(x, y, scale) of face A (moving right, growing) and B (moving left) in frame f."""
    return (100 + 70 * f, 120 + 4 * f, 0.8 + 0.02 * f), (1000 - 70 * f, 300, 0.6)


def make_clip() -> list[np.ndarray]:
    frames = []
    for f in range(N):
        frame = np.full((720, 1280, 3), 100, np.uint8)
        for i, (x, y, s) in enumerate(positions(f)):
            if i == 0 and f in GAP:
                continue
            img = face_image(s)
            frame[y : y + img.shape[0], x : x + img.shape[1]] = img
        frames.append(frame)
    return frames


@pytest.fixture(scope="module")
def clip() -> list[np.ndarray]:
    return make_clip()


@pytest.fixture(scope="module")
def tracks(clip, detector) -> Tracks:
    return analyze(clip, 25.0, detector=detector)


def test_two_crossing_faces_get_stable_ids_through_a_gap(tracks, detector):
    assert [t.id for t in tracks] == [1, 2]
    ref = detector.detect(data.astronaut())[0].landmarks - [REGION[2], REGION[0]]
    for track, which in zip(tracks, (0, 1)):  # A starts left of B, so it is track 1
        assert (track.first_frame, track.last_frame) == (0, N - 1)
        for face in track.faces:
            x, y, s = positions(face.frame)[which]
            expected = ref * s + [x, y]
            assert np.abs(face.landmarks - expected).max() < 0.2 * np.linalg.norm(expected[1] - expected[0])
    a = tracks.tracks[0]
    assert [f.frame for f in a.faces if f.score is None] == list(GAP)
    assert all(f.score is not None for f in tracks.tracks[1].faces)


def test_affine_is_built_from_smoothed_landmarks(tracks):
    face = tracks.tracks[0].faces[3]
    np.testing.assert_allclose(face.affine, alignment_matrix(face.landmarks, tracks.crop_size))
    assert tracks.faces_at(GAP[0])[0][0] == 1 and len(tracks.faces_at(GAP[0])) == 2


def test_high_bit_depth_input_gives_the_same_tracks(clip, detector):
    short = clip[:4]
    ref = analyze(short, 25.0, detector=detector)
    for frames in ([f.astype(np.uint16) * 257 for f in short], [f.astype(np.float32) / 255 for f in short]):
        other = analyze(frames, 25.0, detector=detector)
        assert other.input_sha256 != ref.input_sha256
        assert len(other) == len(ref)
        for a, b in zip(ref, other):
            np.testing.assert_allclose([f.landmarks for f in a.faces], [f.landmarks for f in b.faces], atol=1e-3)


def test_no_face_gives_empty_tracks(detector, tmp_path):
    frames = [np.full((360, 640, 3), v, np.uint8) for v in (40, 90, 140)]
    done = []
    result = analyze(frames, 24.0, detector=detector, batch_size=2, progress=done.append)
    assert len(result) == 0 and result.frame_count == 3 and result.faces_at(1) == []
    assert done == [2, 3]
    result.save(tmp_path / "t.json")
    assert len(Tracks.load(tmp_path / "t.json")) == 0
    assert len(select_tracks(result, "largest")) == 0


def test_json_round_trip_and_cache_key(tracks, clip, detector, tmp_path):
    path = tmp_path / "tracks.json"
    tracks.save(path)
    loaded = Tracks.load(path)
    assert loaded.to_dict() == tracks.to_dict()
    assert [p.name for p in tmp_path.iterdir()] == ["tracks.json"]  # no temp file left
    assert loaded.input_sha256 == frames_digest(clip)
    assert loaded.is_for(frames_digest(clip), analysis_settings(detector))
    assert not loaded.is_for(frames_digest(clip), analysis_settings(CenterFaceDetector(threshold=0.6)))
    edited = [f.copy() for f in clip]
    edited[7][0, 0, 0] += 1
    assert not loaded.is_for(frames_digest(edited), analysis_settings(detector))


def test_anamorphic_frames_are_aligned_as_displayed(clip, detector, tmp_path):
    """Frames stored squeezed (64:45 pixels, as 16:9 PAL) give the model the crops the same faces
    give with square pixels; taking the stored pixels as square would hand it narrow faces."""
    aspect = 64 / 45
    frames = clip[:4]
    squeezed = [cv2.resize(f, (round(f.shape[1] / aspect), f.shape[0]), interpolation=cv2.INTER_AREA) for f in frames]
    square = analyze(frames, 25.0, detector=detector)
    anamorphic = analyze(squeezed, 25.0, detector=detector, pixel_aspect=aspect)
    naive = analyze(squeezed, 25.0, detector=detector)
    assert anamorphic.pixel_aspect == pytest.approx(aspect) and square.pixel_aspect == 1.0
    assert [len(t.faces) for t in square] == [len(t.faces) for t in anamorphic] == [len(t.faces) for t in naive]

    def crops(tracks, pictures):
        return np.stack([warp_to_crop(pictures[f.frame], f.affine, 128).astype(np.float64)
                         for t in tracks for f in t.faces])

    reference = crops(square, frames)
    for t_sq, t_an in zip(square, anamorphic):
        for a, b in zip(t_sq.faces, t_an.faces):  # the same points, once stretched back to display width
            eye = np.linalg.norm(a.landmarks[1] - a.landmarks[0])
            assert np.abs(b.landmarks * [aspect, 1] - a.landmarks).max() < 0.1 * eye
    err_anamorphic = np.abs(crops(anamorphic, squeezed) - reference).mean()
    err_naive = np.abs(crops(naive, squeezed) - reference).mean()
    assert err_anamorphic < 0.25 * err_naive, (err_anamorphic, err_naive)
    # the tracks file keeps the aspect, and its affines are checked against it on load
    anamorphic.save(tmp_path / "t.json")
    assert Tracks.load(tmp_path / "t.json").to_dict() == anamorphic.to_dict()
    assert not anamorphic.is_for(anamorphic.input_sha256, naive.settings)


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_frames_stored_on_their_side_are_analysed_upright(clip, detector, rotation):
    """A phone clip stored turned (its display rotation in the metadata) gives the model the crops
    the upright clip gives; on its own the detector finds sideways faces weakly and misplaces their
    landmarks (tilted, mis-scaled crops), or not at all."""
    frames = clip[:4]
    stored = [np.ascontiguousarray(np.rot90(f, -rotation // 90)) for f in frames]
    upright = analyze(frames, 25.0, detector=detector)
    turned = analyze(stored, 25.0, detector=detector, rotation=rotation)
    assert turned.settings["rotation"] == rotation % 360
    assert sorted(len(t.faces) for t in turned) == [len(t.faces) for t in upright] == [4, 4]

    def crop(picture, face):
        return cv2.resize(warp_to_crop(picture, face.affine), (128, 128), interpolation=cv2.INTER_AREA).astype(float)

    def error(a, found):  # track ids follow the stored layout: pair each track with its own face
        return min((np.abs(crop(stored[0], t.faces[0]) - crop(frames[0], a.faces[0])).mean() for t in found),
                   default=np.inf)

    sideways = analyze(stored, 25.0, detector=detector)
    for a in upright:
        assert error(a, turned) < 2 and error(a, sideways) > 10


def edit(tracks: Tracks, tmp_path, change) -> str:
    doc = json.loads(json.dumps(tracks.to_dict()))
    change(doc)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(doc))
    return str(path)


def face0(doc):
    return doc["tracks"][0]["faces"][0]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(version=2), "newer DVFace"),
        (lambda d: d.update(format="something"), "not a DVFace face tracks file"),
        (lambda d: d["tracks"][1].update(id=1), "used twice"),
        (lambda d: d["tracks"][0]["faces"].pop(3), r"tracks\[0\]\.faces\[3\]\.frame.*consecutive"),
        (lambda d: face0(d).update(box=[10, 10, 5, 50]), r"faces\[0\]\.box.*x1 > x0"),
        (lambda d: face0(d).update(score=1.5), r"score.*\[0, 1\]"),
        (lambda d: face0(d).update(frame=-1), r"frame.*integer >= 0"),
        (lambda d: face0(d)["landmarks"].pop(), r"landmarks.*shape \[5, 2\]"),
        (lambda d: face0(d)["landmarks"][0].__setitem__(0, float("nan")), "NaN"),
        (lambda d: face0(d)["landmarks"][0].__setitem__(0, 123.0), "affine.*does not match.*delete"),
        (lambda d: d["input"].update(sha256="abc"), "sha256"),
        (lambda d: d["tracks"][0]["faces"][-1].update(frame=N), "past the clip"),
    ],
)
def test_edited_files_fail_with_a_pointed_message(tracks, tmp_path, change, message):
    with pytest.raises(InputError, match=message):
        Tracks.load(edit(tracks, tmp_path, change))


def test_hand_moved_landmarks_with_affine_removed_are_recomputed(tracks, tmp_path):
    def move(d):
        f = face0(d)
        f["landmarks"] = (np.array(f["landmarks"]) + [5.0, -3.0]).tolist()
        f["affine"] = None

    original = tracks.tracks[0].faces[0]
    face = Tracks.load(edit(tracks, tmp_path, move)).tracks[0].faces[0]
    moved = original.landmarks + [5.0, -3.0]
    np.testing.assert_allclose(face.landmarks, moved)
    # the recomputed affine puts the moved points where the old one put the old points
    expected = transform_points(original.affine, original.landmarks)
    np.testing.assert_allclose(transform_points(face.affine, moved), expected, atol=1e-6)


def test_truncated_file_is_a_clear_error(tracks, tmp_path):
    path = tmp_path / "cut.json"
    path.write_text(json.dumps(tracks.to_dict())[:500])
    with pytest.raises(InputError, match="not valid JSON.*delete the file"):
        Tracks.load(path)
    with pytest.raises(InputError, match="cannot read"):
        Tracks.load(tmp_path / "missing.json")


def test_selection_policies(tracks):
    a, b = tracks.tracks  # A is larger; B is nearer the centre on average
    assert [t.id for t in select_tracks(tracks, "all")] == [1, 2]
    assert [t.id for t in select_tracks(tracks, "largest")] == [a.id]
    centre = [t.id for t in select_tracks(tracks, "center")]
    def dist(t):
        return np.mean([np.hypot((f.box[0] + f.box[2]) / 2 - 640, (f.box[1] + f.box[3]) / 2 - 360) for f in t.faces])

    assert centre == [min((a, b), key=dist).id]
    assert [t.id for t in select_tracks(tracks, " 2 ")] == [2]
    assert [t.id for t in select_tracks(tracks, "1,2", min_face=(a.median_size + b.median_size) / 2)] == [1]
    with pytest.raises(InputError, match="no track with id 7.*track ids \\[1, 2\\]"):
        select_tracks(tracks, "2,7")
    with pytest.raises(InputError, match="not one of all, largest, center"):
        select_tracks(tracks, "biggest")


def test_clip_errors(detector):
    with pytest.raises(InputError, match="no frames"):
        analyze([], 25.0, detector=detector)
    frames = [np.zeros((64, 64, 3), np.uint8), np.zeros((32, 64, 3), np.uint8)]
    with pytest.raises(InputError, match="frame 1 is"):
        analyze(frames, 25.0, detector=detector, batch_size=1)
    with pytest.raises(InputError, match="fps"):
        analyze(frames, 0, detector=detector)
