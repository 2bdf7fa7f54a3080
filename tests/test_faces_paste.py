"""Paste-back: untouched pixels stay bit-identical, no seam, plate colour kept."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from dvface_plugin.errors import InputError
from dvface_plugin.faces.align import alignment_matrix, ffhq_template, warp_to_crop
from dvface_plugin.faces.imageops import to_float
from dvface_plugin.faces.paste import apply_strength, face_mask, match_colour, paste_faces

H, W = 360, 640


def matrix_for(cx: float, cy: float, face_px: float) -> np.ndarray:
    """Alignment of a face whose 512 crop covers `face_px` frame pixels, centred at (cx, cy)."""
    s = face_px / 512
    return alignment_matrix(ffhq_template() * s + [cx - 256 * s, cy - 256 * s])


def plate(dtype, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.random((H, W, 3), dtype=np.float32), (0, 0), 1.5)
    img = np.clip((img - 0.5) * 3 + 0.5, 0, 1)
    if dtype == np.float32:
        return img
    return np.round(img * np.iinfo(dtype).max).astype(dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_pixels_outside_the_matte_are_bit_identical(dtype):
    frame = plate(dtype)
    before = frame.copy()
    restored = np.random.default_rng(5).random((512, 512, 3), dtype=np.float32)
    faces = [(restored, matrix_for(200, 180, 220)), (restored, matrix_for(630, 20, 160))]  # second at a corner
    out, matte = paste_faces(frame, faces)
    np.testing.assert_array_equal(frame, before)  # input untouched
    assert out.dtype == dtype and matte.shape == (H, W)
    outside = matte == 0
    assert 0.3 < outside.mean() < 0.95
    np.testing.assert_array_equal(out[outside], frame[outside])
    assert not np.array_equal(out[~outside], frame[~outside])


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_face_core_shows_the_restored_crop(dtype):
    """The core shows the restored face (to the crop's resolution: finer detail stays the plate's,
    `test_a_small_faces_change_is_pasted_and_its_plate_detail_kept`)."""
    frame = plate(dtype)
    m = matrix_for(320, 180, 300)
    restored = cv2.GaussianBlur(np.random.default_rng(7).random((512, 512, 3), dtype=np.float32), (0, 0), 4)
    out, matte = paste_faces(frame, [(restored, m)], colour_match=False)
    expected = cv2.warpAffine(restored, m, (W, H), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    core = matte > 0.999
    assert core.sum() > 5000
    low = lambda img: cv2.GaussianBlur(img, (0, 0), 3)  # noqa: E731
    assert np.abs(low(to_float(out))[core] - low(expected)[core]).max() < 0.01


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_strength_scales_the_matte_and_0_gives_the_plate_back(dtype):
    frame = plate(dtype)
    restored = np.random.default_rng(9).random((512, 512, 3), dtype=np.float32)
    faces = [(restored, matrix_for(320, 180, 300))]
    full, full_matte = paste_faces(frame, faces)
    half, half_matte = paste_faces(frame, faces, strength=0.5)
    off, off_matte = paste_faces(frame, faces, strength=0.0)
    np.testing.assert_array_equal(off, frame)
    assert not off_matte.any()
    np.testing.assert_allclose(half_matte, full_matte / 2, atol=1 / 65535)  # below one 16-bit step: 0
    core = full_matte > 0.999
    change = np.abs(to_float(half)[core] - to_float(frame)[core]).mean()
    assert change == pytest.approx(np.abs(to_float(full)[core] - to_float(frame)[core]).mean() / 2, rel=0.02)
    with pytest.raises(InputError, match=r"strength must be in \[0, 1\]"):
        paste_faces(frame, faces, strength=1.2)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_apply_strength_mixes_an_aligned_crop_with_its_original(dtype):
    original, restored = plate(dtype, seed=1), plate(dtype, seed=2)
    assert apply_strength(original, restored, 0.0) is original and apply_strength(original, restored, 1.0) is restored
    mixed = apply_strength(original, restored, 0.25)
    assert mixed.dtype == dtype
    expected = to_float(original) + 0.25 * (to_float(restored) - to_float(original))
    assert np.abs(to_float(mixed) - expected).max() <= 0.5 / (255 if dtype == np.uint8 else 65535) + 1e-7


def test_matte_has_no_visible_edge():
    face_px = 256.0
    _, matte = paste_faces(plate(np.uint8), [(np.zeros((512, 512, 3), np.float32), matrix_for(320, 180, face_px))])
    gy, gx = np.gradient(matte.astype(np.float64))
    feather_px = 0.45 * 0.42 * face_px  # width of the fade in frame pixels
    assert np.hypot(gx, gy).max() < 2.0 / feather_px  # smootherstep peaks at 1.875 / width
    assert matte.max() == pytest.approx(1.0)
    mask = face_mask(512)
    assert mask[0].max() == 0 and mask[-1].max() == 0 and mask[:, 0].max() == 0 and mask[:, -1].max() == 0


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("face_px", [60, 200, 900])
def test_identical_face_pastes_invisibly(dtype, face_px):
    """A restorer that changes nothing changes nothing, whether the face was enlarged into the crop
    or shrunk: no resampling blur is pasted over the plate."""
    frame = plate(dtype)
    m = matrix_for(320, 180, face_px)
    out, matte = paste_faces(frame, [(warp_to_crop(frame, m), m)])
    assert matte.max() > 0.999
    np.testing.assert_array_equal(out, frame)


def test_a_small_faces_change_is_pasted_and_its_plate_detail_kept():
    """An 80 px face is enlarged 6x into the crop; a restoration that brightens it shows, and the
    plate's fine detail under it keeps its strength (a resampled copy kept about 0.6 of it)."""
    from dvface_plugin.metrics import detail

    frame = plate(np.float32, seed=4)
    m = matrix_for(320, 180, 80)
    source = warp_to_crop(frame, m)
    out, matte = paste_faces(frame, [(source + 0.05, m)], colour_match=False)
    core = matte > 0.999
    np.testing.assert_allclose((out - frame)[core], 0.05, atol=2e-3)
    crop = lambda img: warp_to_crop(img, alignment_matrix(ffhq_template(256) * 80 / 256 + [280, 140], 256), 256)  # noqa: E731
    assert detail(crop(out)) == pytest.approx(detail(crop(frame)), rel=0.02)


def test_colour_match_removes_a_grade_shift_and_keeps_detail():
    frame = plate(np.float32, seed=3) * 0.5 + 0.25
    m = matrix_for(320, 180, 240)
    lq = warp_to_crop(frame, m)
    detail = (np.random.default_rng(9).random((512, 512, 3), dtype=np.float32) - 0.5) * 0.1
    restored = (lq - 0.5) * [1.3, 0.8, 1.0] + 0.5 + [0.12, -0.05, 0.08] + detail
    shifted, matte = paste_faces(frame, [(restored.astype(np.float32), m)], colour_match=False)
    matched, _ = paste_faces(frame, [(restored.astype(np.float32), m)], colour_match=True)
    core = matte > 0.5

    def colour_error(img):
        low = cv2.GaussianBlur(img, (0, 0), 6) - cv2.GaussianBlur(frame, (0, 0), 6)
        return np.abs(low[core]).mean()

    assert colour_error(matched) < 0.2 * colour_error(shifted)
    highpass = lambda img: img - cv2.GaussianBlur(img, (0, 0), 1.0)
    kept = np.corrcoef(highpass(matched)[core].ravel(), highpass(shifted)[core].ravel())[0, 1]
    assert kept > 0.95  # the restorer's detail survives the match


def test_match_colour_is_weighted_by_the_mask():
    ref = np.full((64, 64, 3), 0.5, np.float32)
    restored = ref.copy()
    restored[:, :32] += 0.3  # a region outside the weight
    weight = np.zeros((64, 64), np.float32)
    weight[:, 40:] = 1
    np.testing.assert_allclose(match_colour(restored, ref, weight)[:, 48:], 0.5, atol=1e-3)


def test_face_outside_the_frame_changes_nothing_and_bad_crops_are_errors():
    frame = plate(np.uint16)
    out, matte = paste_faces(frame, [(np.zeros((512, 512, 3), np.float32), matrix_for(-600, 100, 200))])
    np.testing.assert_array_equal(out, frame)
    assert matte.max() == 0
    with pytest.raises(InputError, match="square"):
        paste_faces(frame, [(np.zeros((512, 400, 3), np.float32), matrix_for(100, 100, 100))])
    with pytest.raises(InputError, match="uint8, uint16 or float32"):
        paste_faces(frame.astype(np.int32), [])
