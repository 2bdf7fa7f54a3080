"""Flow-guided temporal stabilisation: averages away frame-to-frame noise, follows motion, keeps
what really changes, and runs where the model config asks for it (both backends' `decode`)."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from dvface_plugin.config import DVFaceConfig
from dvface_plugin.engine.backends import PriorState, TrackRestorer
from dvface_plugin.engine.stabilise import stabilise

SIZE = 96
LEVEL = 1 / 127.5  # one 8-bit level in model units ([-1, 1])


def texture(seed: int = 0, size: int = 160) -> np.ndarray:
    """A smooth random RGB texture in model units, larger than a frame so it can be shifted."""
    rng = np.random.default_rng(seed)
    img = rng.random((size, size, 3)).astype(np.float32)
    img = cv2.GaussianBlur(img, (0, 0), 2.5)
    img = (img - img.mean()) / img.std() * 0.25
    return np.clip(img, -0.9, 0.9)


def moving_clip(shift_per_frame: float, n: int = 9) -> np.ndarray:
    """`n` frames of the texture panning right by `shift_per_frame` pixels a frame (sub-pixel)."""
    tex = texture()
    frames = []
    for t in range(n):
        m = np.float32([[1, 0, -shift_per_frame * t], [0, 1, 0]])
        moved = cv2.warpAffine(tex, m, tex.shape[1::-1], flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        frames.append(moved[20 : 20 + SIZE, 20 : 20 + SIZE])
    return np.stack(frames)


def noisy(clean: np.ndarray, levels: float, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (clean + rng.normal(0, levels * LEVEL, clean.shape)).astype(np.float32)


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    inner = (slice(8, -8), slice(8, -8))  # away from the borders, where a pan brings in new pixels
    return float(np.sqrt(np.mean((a[inner] - b[inner]) ** 2)))


def test_radius_zero_returns_an_unchanged_copy() -> None:
    clip = noisy(moving_clip(0.0, 3), 4)
    out = stabilise(clip, 0)
    assert np.array_equal(out, clip) and out is not clip


def test_negative_radius_is_refused() -> None:
    with pytest.raises(ValueError, match="radius"):
        stabilise(moving_clip(0.0, 3), -1)


def test_noise_on_a_still_face_is_averaged_away() -> None:
    clean = moving_clip(0.0)
    clip = noisy(clean, 4)
    out = stabilise(clip, 2)
    t = 4  # five frames contribute: ideally the noise falls by sqrt(5) = 2.2
    assert rmse(out[t], clean[t]) < rmse(clip[t], clean[t]) / 1.8


def test_moving_content_is_aligned_before_averaging() -> None:
    """A sub-pixel pan: averaging without the flow would smear the texture, with it the noise goes."""
    clean = moving_clip(1.7)
    clip = noisy(clean, 4)
    out = stabilise(clip, 2)
    t = 4
    unaligned = clip[t - 2 : t + 3].mean(axis=0)
    assert rmse(out[t], clean[t]) < rmse(clip[t], clean[t]) / 1.5
    assert rmse(out[t], clean[t]) < rmse(unaligned, clean[t]) / 2


def test_what_changes_in_one_frame_is_kept_and_not_ghosted() -> None:
    """A blink or a mouth opening: a bright patch in frame 4 only stays in frame 4 and nowhere else."""
    clip = moving_clip(0.0)
    patch = (slice(40, 56), slice(40, 56))
    clip[4][patch] += 0.6
    out = stabilise(clip, 2)
    assert np.mean(out[4][patch] - clip[4][patch]) > -0.03  # keeps at least 95 % of its 0.6
    for t in (2, 3, 5, 6):  # no ghost of it (1 % of the patch), and no pixel off by 7 levels
        ghost = out[t][patch] - clip[t][patch]
        assert ghost.mean() < 0.006 and np.abs(ghost).max() < 7 * LEVEL


def test_config_validates_and_old_configs_load_without_it() -> None:
    config = DVFaceConfig.preset("tiny")
    assert config.stabilise == 0
    data = config.to_dict()
    del data["stabilise"]  # a config.json written before the field existed
    assert DVFaceConfig.from_dict(data).stabilise == 0
    with pytest.raises(ValueError, match="stabilise"):
        dataclasses.replace(config, stabilise=-1)


class NoisyRestorer(TrackRestorer):
    """A backend whose 'model' adds fresh noise to every frame: what stabilisation is for."""

    def __init__(self, radius: int) -> None:
        super().__init__()
        self.config = dataclasses.replace(DVFaceConfig.preset("tiny"), stabilise=radius, crop_size=SIZE)
        self.identity, self.device, self.precision = f"noisy-{radius}", "cpu", "fp32"

    def _encode(self, crops: np.ndarray) -> PriorState:
        return PriorState(crops, np.zeros(1))

    def _decode(self, state: PriorState, prior_scale: float) -> np.ndarray:
        return noisy(state.latent, 4, seed=2)


def test_decode_stabilises_when_the_model_config_asks() -> None:
    clean = moving_clip(1.0)
    plain, steady = NoisyRestorer(0), NoisyRestorer(2)
    raw = plain.decode(plain.encode(clean))
    out = steady.decode(steady.encode(clean))
    assert np.array_equal(out, stabilise(raw, 2))
    assert rmse(out[4], clean[4]) < rmse(raw[4], clean[4]) / 1.5
