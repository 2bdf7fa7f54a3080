"""Black-and-white in, black-and-white out (runtime/monochrome.py through TrackRestorer)."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from dvface_plugin.engine import restore_track
from dvface_plugin.model.config import DVFaceConfig
from dvface_plugin.runtime.base import PriorState, TrackRestorer
from dvface_plugin.runtime.monochrome import LUMA, MONO_LEVELS, colour_of, colour_spread, monochrome_weight
from dvface_plugin.runtime.pixels import to_model

LEVEL = 2 / 255  # one 8-bit level in model units
SEPIA = np.float32([0.06, 0.0, -0.08])  # a toned film's cast, model units (about 8 and 10 levels)


def grey_window(n: int = 5, size: int = 64) -> np.ndarray:
    """A smooth grey texture, (n, size, size, 3) in model units, each frame a little different."""
    rng = np.random.default_rng(0)
    luma = np.stack([cv2.GaussianBlur(rng.random((size, size)).astype(np.float32), (0, 0), 2.0) for _ in range(n)])
    luma = (luma - luma.mean()) / luma.std() * 0.15
    return np.repeat(luma[..., None], 3, axis=-1)


def with_colour(window: np.ndarray, levels: float) -> np.ndarray:
    """`window` plus smooth random colour of `levels` 8-bit levels of spread in R - Y and B - Y."""
    rng = np.random.default_rng(1)
    field = np.stack([cv2.GaussianBlur(rng.normal(size=window.shape[1:]).astype(np.float32), (0, 0), 3.0)
                      for _ in window])
    field = colour_of(field)
    field /= colour_spread(field)[:, None, None, None]
    return window + field * (levels * LEVEL)


class TintingRestorer(TrackRestorer):
    """A 'model' that sharpens luma a little and paints its own colour: pink on the bright parts."""

    backend, identity, device, precision = "test", "tinting", "cpu", "fp32"

    def __init__(self) -> None:
        super().__init__([None])
        self.config = dataclasses.replace(DVFaceConfig.preset("tiny"), prefilter=0, stabilise=0, crop_size=64)

    def _encode(self, model: None, pixels: np.ndarray) -> PriorState:
        return PriorState(pixels.copy(), np.zeros(1))

    def _decode(self, model: None, state: PriorState, prior_scale: float) -> np.ndarray:
        x = state.latent
        blurred = np.stack([cv2.GaussianBlur(f, (0, 0), 1.0) for f in x])
        sharp = x + 0.5 * (x - blurred)
        pink = np.clip(sharp.mean(axis=-1, keepdims=True), 0, None) * np.float32([0.2, -0.08, 0.05])
        return np.clip(sharp + pink, -1.0, 1.0).astype(np.float32)


def host(window: np.ndarray) -> np.ndarray:
    return ((window + 1) / 2).astype(np.float32)


def test_a_grey_or_toned_input_keeps_its_own_colour_and_the_restored_luma():
    model = TintingRestorer()
    for tone in (np.float32(0), SEPIA):  # grey film, and a sepia one
        crops = host(grey_window() + tone)
        raw = model._decode(None, model._encode(None, to_model(crops)), 1.0)
        state = model.encode(crops)
        out = model.decode(state)
        assert np.all(state.mono == 1.0) and state.colour.dtype == np.float16
        assert np.abs(colour_of(raw)).max() > 8 * LEVEL  # the model alone paints colour
        assert np.abs(colour_of(out) - colour_of(to_model(crops))).max() < 0.01 * LEVEL
        assert np.abs(out @ LUMA - raw @ LUMA).max() < 1e-5  # its restoration is kept
    assert model.decode(model.encode(host(grey_window()))).std(axis=-1).max() < 1e-6  # grey stays grey


def test_colour_footage_keeps_the_models_colour_and_the_line_between_is_mixed():
    model = TintingRestorer()
    low, high = MONO_LEVELS
    colour = host(with_colour(grey_window(), high + 5))
    state = model.encode(colour)
    assert state.mono is None and state.colour is None
    assert np.array_equal(model.decode(state), model._decode(None, model._encode(None, to_model(colour)), 1.0))
    between = with_colour(grey_window(), (low + high) / 2)
    weight = monochrome_weight(colour_of(between))
    assert np.allclose(weight, 0.5, atol=0.02)
    spreads = [with_colour(grey_window(), s) for s in (0, low - 0.01, low + 0.5, high - 0.5, high + 0.01, high + 1)]
    weights = [float(monochrome_weight(colour_of(w)).mean()) for w in spreads]
    assert weights[:2] == [1.0, 1.0] and weights[-2:] == [0.0, 0.0] and weights[2] > weights[3] > 0


def test_monochrome_state_counts_in_the_cache_and_the_engine_keeps_a_grey_clip_grey():
    model = TintingRestorer()
    crops = host(grey_window(n=9))
    state = model.encode(crops)
    assert state.nbytes == state.latent.nbytes + state.priors.nbytes + state.mono.nbytes + state.colour.nbytes
    frames = np.rint(crops * 255).astype(np.uint8)
    out = restore_track(model, frames)
    assert out.dtype == np.uint8 and np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])
    assert not np.array_equal(out, frames)  # restored, not passed through
