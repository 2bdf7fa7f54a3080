"""Landmark smoothing: less jitter, little lag, same behaviour at any frame rate."""

from __future__ import annotations

import numpy as np
import pytest

from dvface_plugin.errors import InputError
from dvface_plugin.faces.smoothing import smooth_points

SHAPE = np.array([[-24.0, -12.0], [24.0, -12.0], [0.0, 4.0], [-20.0, 24.0], [20.0, 24.0]])


def path(centres: np.ndarray) -> np.ndarray:
    """(T, 5, 2) landmarks of a rigid face following (T, 2) centres."""
    return centres[:, None, :] + SHAPE[None]


def jitter(x: np.ndarray) -> float:
    """Mean absolute second difference over time: what shows as shake on screen."""
    return float(np.abs(np.diff(x, n=2, axis=0)).mean())


def test_noise_is_reduced_on_a_slow_moving_face():
    rng = np.random.default_rng(0)
    t = np.arange(120) / 25.0
    truth = path(np.stack([400 + 30 * np.sin(0.5 * t), 300 + 10 * t], axis=1))
    noisy = truth + rng.normal(0, 1.5, truth.shape)
    smooth = smooth_points(noisy, 25.0)
    assert jitter(smooth) < 0.2 * jitter(noisy)
    assert np.abs(smooth - truth).mean() < 0.5 * np.abs(noisy - truth).mean()


@pytest.mark.parametrize("speed", [5.0, 40.0])
def test_fast_linear_motion_has_no_lag(speed):
    frames = np.arange(50, dtype=np.float64)
    truth = path(np.stack([100 + speed * frames, 200 + 0.5 * speed * frames], axis=1))
    smooth = smooth_points(truth, 25.0)
    assert np.abs(smooth - truth).max() < 0.25  # px, first and last frames included


def test_start_of_motion_lags_less_than_a_frame_of_travel():
    frames = np.arange(60, dtype=np.float64)
    x = np.where(frames < 30, 300.0, 300.0 + 25.0 * (frames - 30))  # still, then 25 px/frame
    truth = path(np.stack([x, np.full_like(x, 200.0)], axis=1))
    noisy = truth + np.random.default_rng(1).normal(0, 1.0, truth.shape)
    smooth = smooth_points(noisy, 25.0)
    assert np.abs(smooth - truth).max() < 25.0 * 0.2
    assert jitter(smooth[:25]) < 0.3 * jitter(noisy[:25])


def gain(signal: np.ndarray, t: np.ndarray, hz: float) -> float:
    """Amplitude of the `hz` sinusoid in `signal` (least squares)."""
    basis = np.stack([np.sin(2 * np.pi * hz * t), np.cos(2 * np.pi * hz * t), np.ones_like(t)], axis=1)
    coef = np.linalg.lstsq(basis, signal, rcond=None)[0]
    return float(np.hypot(coef[0], coef[1]))


def sway_and_shake_gains(fps: float) -> tuple[float, float]:
    t = np.arange(int(8 * fps)) / fps
    x = 300 + 20 * np.sin(2 * np.pi * 0.3 * t) + 1.5 * np.sin(2 * np.pi * 4.0 * t)
    smooth = smooth_points(path(np.stack([x, np.full_like(t, 200.0)], axis=1)), fps)[:, :, 0].mean(1)
    return gain(smooth, t, 0.3) / 20.0, gain(smooth, t, 4.0) / 1.5


def test_slow_sway_survives_and_shake_is_damped():
    sway, shake = sway_and_shake_gains(25.0)
    assert sway > 0.9
    assert shake < 0.3


def test_cutoffs_are_in_hertz_not_frames():
    (sway_24, shake_24), (sway_60, shake_60) = sway_and_shake_gains(24.0), sway_and_shake_gains(60.0)
    assert abs(sway_24 - sway_60) < 0.02
    assert max(shake_24, shake_60) < 0.3


def test_short_tracks_and_bad_input():
    two = path(np.array([[0.0, 0.0], [5.0, 5.0]]))
    np.testing.assert_array_equal(smooth_points(two, 25.0), two)
    with pytest.raises(InputError, match="fps"):
        smooth_points(two, 0.0)
    with pytest.raises(InputError, match=r"\(T, K, 2\)"):
        smooth_points(np.zeros((5, 10)), 25.0)
