"""FFHQ alignment: landmarks land on the template, transforms invert, crops keep depth and detail."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from dvface_plugin.errors import InputError
from dvface_plugin.faces.align import (
    alignment_matrix,
    crop_scale,
    estimate_similarity,
    ffhq_template,
    invert_affine,
    transform_points,
    warp_to_crop,
)


def similarity(angle_deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    return np.array([[scale * np.cos(a), -scale * np.sin(a), tx], [scale * np.sin(a), scale * np.cos(a), ty]])


def test_template_follows_the_ffhq_layout():
    t = ffhq_template(512)
    assert np.linalg.norm(t[1] - t[0]) == pytest.approx(128.0)  # crop side = 4 eye distances
    assert t[0, 1] == t[1, 1] and t[3, 1] == t[4, 1]  # eyes and mouth level
    assert (t[0, 0] + t[1, 0]) / 2 == pytest.approx(256.0) and t[2, 0] == pytest.approx(256.0)
    assert t[0, 1] < t[2, 1] < t[3, 1] < 512
    np.testing.assert_allclose(ffhq_template(1024), 2 * t)


@pytest.mark.parametrize(("angle", "scale"), [(0.0, 0.3), (25.0, 0.12), (-70.0, 2.5), (180.0, 1.0)])
def test_landmarks_land_on_the_template(angle, scale):
    face_to_frame = similarity(angle, 1.0 / scale, 700.0, 300.0)
    landmarks = transform_points(face_to_frame, ffhq_template())
    m = alignment_matrix(landmarks)
    assert np.abs(transform_points(m, landmarks) - ffhq_template()).max() < 1e-6
    assert crop_scale(m) == pytest.approx(scale)


def test_least_squares_fit_of_noisy_landmarks_is_within_a_pixel():
    truth = similarity(10.0, 0.5, 400.0, 200.0)  # face at half the crop size in the frame
    landmarks = transform_points(truth, ffhq_template())
    errors = []
    for seed in range(50):
        noisy = landmarks + np.random.default_rng(seed).normal(0, 0.5, landmarks.shape)
        m = estimate_similarity(noisy, ffhq_template())
        sq = lambda mat: ((transform_points(mat, noisy) - ffhq_template()) ** 2).sum()
        assert sq(m) <= sq(invert_affine(truth))  # it is the least-squares optimum
        offsets = transform_points(m, landmarks) - ffhq_template()
        errors.append(np.sqrt((offsets**2).sum(1).mean()) / crop_scale(m))
    assert np.mean(errors) < 0.5  # frame px: below the 0.7 px per-point noise
    r = estimate_similarity(landmarks * [-1, 1], ffhq_template())
    assert np.linalg.det(r[:, :2]) > 0  # never a mirror image


def test_inverse_round_trips_points_and_pixels():
    m = alignment_matrix(transform_points(similarity(15.0, 0.25, 640.0, 360.0), ffhq_template()))
    pts = np.random.default_rng(0).uniform(0, 512, (20, 2))
    np.testing.assert_allclose(transform_points(m, transform_points(invert_affine(m), pts)), pts, atol=1e-9)

    frame = cv2.GaussianBlur(np.random.default_rng(1).random((720, 1280, 3), dtype=np.float32), (0, 0), 3)
    crop = warp_to_crop(frame, m)
    back = cv2.warpAffine(crop, invert_affine(m), (1280, 720), flags=cv2.INTER_LINEAR)
    centre = transform_points(invert_affine(m), [[256, 256]])[0].astype(int)
    y, x = centre[1], centre[0]
    patch = (slice(y - 40, y + 40), slice(x - 40, x + 40))
    assert np.abs(back[patch] - frame[patch]).max() < 0.02


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_crop_keeps_dtype_and_handles_faces_at_the_border(dtype):
    top = 1.0 if dtype == np.float32 else np.iinfo(dtype).max
    noise = cv2.GaussianBlur(np.random.default_rng(2).random((360, 640, 3), dtype=np.float32), (0, 0), 2)
    frame = (np.clip((noise - 0.5) * 4 + 0.5, 0, 1) * top).astype(dtype)
    m = alignment_matrix(transform_points(similarity(0.0, 0.5, -128.0, 100.0), ffhq_template()))
    crop = warp_to_crop(frame, m)
    assert crop.dtype == dtype and crop.shape == (512, 512, 3)
    # the left half of the crop lies outside the frame: it holds mirrored picture, not a flat border
    outside, inside = crop[:, :240].astype(np.float64), crop[:, 272:].astype(np.float64)
    assert outside.std() > 0.5 * inside.std() > 0


def test_shrinking_large_faces_does_not_alias():
    checker = ((np.indices((1500, 1500)).sum(0) % 2) * 255).astype(np.uint8)
    frame = np.repeat(checker[..., None], 3, axis=2)
    m = alignment_matrix(transform_points(similarity(7.0, 1 / 0.3, 750.0, 750.0), ffhq_template()))
    crop = warp_to_crop(frame, m).astype(np.float32)
    plain = cv2.warpAffine(frame, m, (512, 512), flags=cv2.INTER_LINEAR).astype(np.float32)
    assert abs(crop.mean() - 127.5) < 3
    assert crop.std() < 0.3 * plain.std()


def test_small_faces_are_enlarged_as_the_training_inputs_were():
    """A face 4x smaller than the crop comes out as `degrade` upscales the model's training inputs
    (bicubic), not softer (bilinear gave small faces less detail from the model)."""
    from dvface_plugin.degrade import resize

    rng = np.random.default_rng(3)
    frame = cv2.GaussianBlur(rng.random((64, 64, 3), dtype=np.float32), (0, 0), 0.8)
    m = np.array([[4.0, 0.0, 1.5], [0.0, 4.0, 1.5]])  # cv2.resize's pixel centres, 4x
    trained = resize(frame[None], 256, 256, "bicubic")[0]
    inner = (slice(12, -12), slice(12, -12))
    assert np.abs(np.clip(warp_to_crop(frame, m, 256), 0, 1) - trained)[inner].max() < 1e-4
    softer = warp_to_crop(frame, m, 256, enlarge=cv2.INTER_LINEAR)
    assert np.abs(softer - trained)[inner].max() > 0.01


def test_degenerate_landmarks_are_input_errors():
    with pytest.raises(InputError, match="one point"):
        alignment_matrix(np.ones((5, 2)))
    with pytest.raises(InputError, match="NaN"):
        alignment_matrix(np.full((5, 2), np.nan))
