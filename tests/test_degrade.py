"""Seeded degradation pipeline: reproducibility, direction of every op, per-frame stability."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from dvface_plugin import degrade as D
from dvface_plugin.errors import InputError


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    """8 frames of a 96x96 textured face image drifting right by 1 px per frame."""
    img = cv2.resize(data.astronaut()[:256, 128:384], (96, 96), interpolation=cv2.INTER_AREA)
    return np.stack([np.roll(img, t, axis=1) for t in range(8)])


def hf_energy(clip: np.ndarray) -> float:
    """Mean squared Laplacian of the luma: high-frequency content."""
    x = D.to_float(clip).mean(axis=-1)
    return float(np.mean([cv2.Laplacian(f, cv2.CV_32F) ** 2 for f in x]))


@pytest.mark.parametrize("preset", sorted(D.PRESETS))
def test_presets_are_seeded(clip: np.ndarray, preset: str) -> None:
    a = D.degrade_clip(clip, preset, seed=7)
    b = D.degrade_clip(clip, preset, seed=7)
    c = D.degrade_clip(clip, preset, seed=8)
    assert a.shape == clip.shape and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a, clip)


def test_float_clip_stays_float_in_range(clip: np.ndarray) -> None:
    x = clip.astype(np.float32) / 255.0
    out = D.degrade_clip(x, "heavy", seed=1)
    assert out.dtype == np.float32 and out.shape == x.shape
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert np.array_equal(out, D.degrade_clip(x, "heavy", seed=1))


@pytest.mark.parametrize("blur", [
    lambda c: D.gaussian_blur(c, 2.0),
    lambda c: D.gaussian_blur(c, 3.0, 0.5, theta=0.7),
    lambda c: D.motion_blur(c, 9.0, 0.3),
])
def test_blur_lowers_high_frequencies(clip: np.ndarray, blur) -> None:
    out = blur(clip)
    assert out.shape == clip.shape and out.dtype == clip.dtype
    assert hf_energy(out) < 0.5 * hf_energy(clip)


def test_stronger_blur_removes_more(clip: np.ndarray) -> None:
    assert hf_energy(D.gaussian_blur(clip, 3.0)) < hf_energy(D.gaussian_blur(clip, 1.0))


def test_gaussian_noise_raises_variance_by_sigma_squared() -> None:
    flat = np.full((4, 64, 64, 3), 0.5, np.float32)
    out = D.gaussian_noise(flat, 10.0, np.random.default_rng(0))
    assert out.var() == pytest.approx((10.0 / 255.0) ** 2, rel=0.05)
    gray = D.gaussian_noise(flat, 10.0, np.random.default_rng(0), gray=True)
    assert np.array_equal(gray[..., 0], gray[..., 1])


def test_poisson_noise_scales_with_signal_over_peak() -> None:
    flat = np.full((4, 64, 64, 3), 0.5, np.float32)
    low = D.poisson_noise(flat, 50.0, np.random.default_rng(0))
    high = D.poisson_noise(flat, 500.0, np.random.default_rng(0))
    assert low.var() == pytest.approx(0.5 / 50.0, rel=0.1)
    assert low.var() > 5 * high.var()


def test_downscale_loses_detail_and_keeps_shape(clip: np.ndarray) -> None:
    x2, x8 = D.downscale(clip, 2.0), D.downscale(clip, 8.0)
    assert x2.shape == clip.shape and x8.shape == clip.shape and x8.dtype == clip.dtype
    err2 = np.abs(x2.astype(float) - clip).mean()
    err8 = np.abs(x8.astype(float) - clip).mean()
    assert 0 < err2 < err8
    assert hf_energy(x8) < hf_energy(x2) < hf_energy(clip)


@pytest.mark.parametrize("op", [
    lambda c, q: D.jpeg(c, q),
    lambda c, q: D.h264(c, crf=51 - q / 2),
    lambda c, q: D.mpeg2(c, bitrate_kbps=2 * q),
])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_compression_adds_error_and_keeps_shape(clip: np.ndarray, op, dtype) -> None:
    x = clip[:, :90, :70] if dtype == np.uint8 else clip[:, :90, :70].astype(np.float32) / 255
    bad, good = op(x, 10), op(x, 90)
    for out in (bad, good):
        assert out.shape == x.shape and out.dtype == x.dtype
    ref = D.to_float(x)
    err_bad = np.abs(D.to_float(bad) - ref).mean()
    err_good = np.abs(D.to_float(good) - ref).mean()
    assert 0 < err_good < err_bad


def test_h264_same_bytes_every_run(clip: np.ndarray) -> None:
    runs = [D.h264(clip, 30) for _ in range(4)]
    assert all(np.array_equal(runs[0], r) for r in runs[1:])


def test_frame_jitter_is_small_and_smooth() -> None:
    j = D.frame_jitter(np.random.default_rng(3), 200, 0.05)
    assert j.min() >= 0.95 and j.max() <= 1.05
    assert j.std() > 0.005
    assert np.abs(np.diff(j)).mean() < 0.3 * np.abs(j - 1).mean() + 1e-9


def test_plan_varies_little_per_frame() -> None:
    cfg = D.DegradationConfig.preset("medium")
    plan = D.sample_plan(cfg, 50, np.random.default_rng(11))
    for arr in (plan.blur_sigma_x, plan.noise_level):
        rel = arr / arr.mean()
        assert rel.min() >= 1 - 2.1 * cfg.jitter and rel.max() <= 1 + 2.1 * cfg.jitter


def test_static_clip_degrades_consistently(clip: np.ndarray) -> None:
    static = np.repeat(clip[:1], 8, axis=0)
    cfg = D.DegradationConfig(blur_kinds=("iso",), noise_prob=0.0, codec_prob=0.0)
    out = D.degrade_clip(static, cfg, seed=5).astype(float)
    per_frame = np.abs(out - static).mean(axis=(1, 2, 3))
    assert per_frame.min() > 0
    assert per_frame.std() < 0.1 * per_frame.mean()


def test_toggling_a_stage_keeps_other_parameters() -> None:
    on = D.DegradationConfig(codec_prob=1.0)
    off = D.DegradationConfig(codec_prob=0.0)
    a = D.sample_plan(on, 10, np.random.default_rng(4))
    b = D.sample_plan(off, 10, np.random.default_rng(4))
    assert a.codec is not None and b.codec is None
    assert np.array_equal(a.blur_sigma_x, b.blur_sigma_x) and a.scale == b.scale


def test_config_json_roundtrip(tmp_path) -> None:
    path = tmp_path / "deg.json"
    cfg = D.DegradationConfig.preset("vfhq-like")
    cfg.save(path)
    assert D.DegradationConfig.load(path) == cfg
    override = D.DegradationConfig.from_dict({"preset": "heavy", "scale": [3, 3]})
    assert override.scale == (3, 3) and override.noise_sigma == D.PRESETS["heavy"].noise_sigma


@pytest.mark.parametrize("bad", [
    {"scale": [0.5, 2]}, {"blur_sigma": [3, 1]}, {"codecs": ["vp9"]}, {"jpeg_prob": 2.0},
    {"h264_crf": [10, 60]}, {"unknown_key": 1}, {"preset": "nope"},
])
def test_invalid_configs_are_rejected(bad) -> None:
    with pytest.raises(InputError):
        D.DegradationConfig.from_dict(bad)


def test_rejects_non_clip_arrays() -> None:
    with pytest.raises(InputError):
        D.degrade_clip(np.zeros((8, 8, 3), np.uint8), "light", 0)
