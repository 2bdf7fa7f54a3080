"""Flow-guided temporal stabilisation: averages away frame-to-frame shimmer and flicker, follows
motion, keeps what really changes and the fine detail, and runs where the model config asks for it
(both backends' `decode`). Its whole-frame form, the input prefilter, averages the fine per-pixel
noise away too and runs before `encode` where the model config asks for it.

The noise these tests average away is blotchy (low-frequency), what the stabiliser is for: per-pixel
noise is, to it and to the detail measure, fine detail that the flow does not align, so it is kept
(`test_fine_per_pixel_variation_is_kept`)."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from dvface_plugin.metrics import detail, flicker
from dvface_plugin.model.config import DVFaceConfig
from dvface_plugin.errors import InputError
from dvface_plugin.runtime.base import GRAIN_RADIUS, PriorState, TrackRestorer, check_grain
from dvface_plugin.runtime.pixels import to_model
from dvface_plugin.runtime.stabilise import DEFLICKER_LEVELS, prefilter, stabilise, steady_brightness

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
    """`clean` plus fresh blotchy noise in every frame (codec shimmer: blobs of about 8 pixels),
    `levels` 8-bit levels rms."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0, 1, clean.shape).astype(np.float32)
    noise = np.stack([cv2.GaussianBlur(frame, (0, 0), 8.0) for frame in noise.reshape(-1, *clean.shape[-3:])])
    noise = noise.reshape(clean.shape) / noise.std() * (levels * LEVEL)
    return (clean + noise).astype(np.float32)


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


def u8(frames: np.ndarray) -> np.ndarray:
    return np.clip(np.rint((frames + 1.0) * 127.5), 0, 255).astype(np.uint8)


def detail_ratio(out: np.ndarray, clip: np.ndarray) -> float:
    """Mean detail measure (Laplacian variance of the centre half's luma) of `out` over `clip`'s."""
    return float(np.mean([detail(f) for f in u8(out)]) / np.mean([detail(f) for f in u8(clip)]))


def fine_detail(seed: int, levels: float = 10.0, size: int = 160) -> np.ndarray:
    """Pores and hair: detail about a pixel across, `levels` 8-bit levels rms."""
    rng = np.random.default_rng(seed)
    layer = cv2.GaussianBlur(rng.normal(0, 1, (size, size, 3)).astype(np.float32), (0, 0), 0.7)
    return layer / layer.std() * (levels * LEVEL)


def flickering_face(n: int = 9, jitter: float = 0.0, fresh: float = 0.0, seed: int = 5) -> np.ndarray:
    """A still face texture with fine detail and, per frame, a brightness offset and a left-right
    gradient of a few levels (flicker). jitter: the fine detail moves by up to this many pixels
    each way from frame to frame while the rest stays (what no flow aligns); fresh: new fine detail
    of this many levels in every frame, as a sharper model's detail that flickers."""
    rng = np.random.default_rng(seed)
    face, fine = texture(), fine_detail(3)
    x = np.mgrid[0:SIZE, 0:SIZE][1].astype(np.float32) / SIZE
    frames = []
    for t in range(n):
        layer = fine
        if jitter:
            dx, dy = rng.uniform(-jitter, jitter, 2)
            m = np.float32([[1, 0, dx], [0, 1, dy]])
            layer = cv2.warpAffine(fine, m, fine.shape[1::-1], flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        frame = (face + layer)[20 : 20 + SIZE, 20 : 20 + SIZE]
        frame = frame + ((rng.normal(0, 4) + rng.normal(0, 3) * (x - 0.5)) * LEVEL)[..., None]
        if fresh:
            frame = frame + fine_detail(100 + t, fresh)[:SIZE, :SIZE]
        frames.append(frame)
    return np.stack(frames).astype(np.float32)


def test_flicker_goes_and_the_fine_detail_stays() -> None:
    """Averaging whole frames lost 3 % of the detail measure even here, on a still face."""
    clip = flickering_face()
    out = stabilise(clip, 2)
    assert flicker(u8(out)) < flicker(u8(clip)) / 5
    assert detail_ratio(out, clip) >= 0.99


def test_detail_the_flow_cannot_align_is_kept() -> None:
    """Fine detail moving by a fraction of a pixel against the face between frames: averaging
    whole frames smeared it (detail measure 0.79 of the input's); the low band still steadies."""
    clip = flickering_face(jitter=0.5)
    out = stabilise(clip, 2)
    assert detail_ratio(out, clip) >= 0.98
    assert flicker(u8(out)) < flicker(u8(clip)) / 2.5


def test_fine_per_pixel_variation_is_kept() -> None:
    """A sharper model whose fine detail changes in every frame: that detail is kept (whole-frame
    averaging: 0.64 of it), and it does not stop the flicker from going (whole frames: the
    photometric weights fell and the flicker only went down 2.5 times)."""
    clip = flickering_face(fresh=12.0)
    out = stabilise(clip, 2)
    assert detail_ratio(out, clip) >= 0.98
    assert flicker(u8(out)) < flicker(u8(clip)) / 6


def shifted(offsets_levels: np.ndarray) -> np.ndarray:
    """The still texture with each frame's brightness raised by its offset in 8-bit levels."""
    face = texture()[20 : 20 + SIZE, 20 : 20 + SIZE]
    return np.stack([face + off * LEVEL for off in offsets_levels]).astype(np.float32)


def brightness(frames: np.ndarray) -> np.ndarray:
    return frames.mean(axis=(1, 2, 3)) / LEVEL


def test_sub_level_brightness_pumping_is_steadied_and_detail_untouched() -> None:
    """The pumping the flow average and the model leave (a fraction of a level, frame to frame)."""
    pump = np.random.default_rng(7).uniform(-0.4, 0.4, 17)
    clip = shifted(pump)
    out = steady_brightness(clip, 2)
    before, after = np.abs(np.diff(brightness(clip))).mean(), np.abs(np.diff(brightness(out))).mean()
    assert after < before / 2
    np.testing.assert_allclose(out - out.mean(axis=(1, 2, 3), keepdims=True),
                               clip - clip.mean(axis=(1, 2, 3), keepdims=True), atol=1e-5)  # one offset a frame


def test_fades_pass_and_a_lighting_change_moves_at_most_the_cap() -> None:
    """A fade (linear, to the window's edges) is not touched; a sudden 20-level change is moved by
    at most `DEFLICKER_LEVELS` in any frame, so real lighting stays."""
    fade = shifted(np.linspace(0, 24, 17))
    np.testing.assert_allclose(steady_brightness(fade, 2), fade, atol=1e-3 * LEVEL)
    step = shifted(np.where(np.arange(17) < 8, 0.0, 20.0))
    moved = np.abs(brightness(steady_brightness(step, 2)) - brightness(step))
    assert moved.max() <= DEFLICKER_LEVELS + 1e-3 and moved.max() > 0.4
    assert np.array_equal(steady_brightness(step[:2], 2), step[:2]) and np.array_equal(steady_brightness(step, 0), step)


def test_config_validates_and_old_configs_load_without_it() -> None:
    config = DVFaceConfig.preset("tiny")
    assert config.stabilise == 0
    data = config.to_dict()
    del data["stabilise"]  # a config.json written before the field existed
    assert DVFaceConfig.from_dict(data).stabilise == 0
    with pytest.raises(ValueError, match="stabilise"):
        dataclasses.replace(config, stabilise=-1)


def test_prefilter_averages_the_fine_noise_that_stabilise_keeps() -> None:
    """On a moving face with fresh per-pixel noise in every frame, the whole-frame prefilter takes
    most of the noise away where the low-band stabiliser leaves it, and keeps the moving face."""
    clean = moving_clip(0.6)
    rng = np.random.default_rng(3)
    clip = (clean + rng.normal(0, 6 * LEVEL, clean.shape)).astype(np.float32)
    out = prefilter(clip, 2)
    assert out.shape == clip.shape and out.dtype == np.float32
    assert rmse(out[4], clean[4]) < rmse(clip[4], clean[4]) / 1.6
    assert rmse(stabilise(clip, 2)[4], clean[4]) > rmse(clip[4], clean[4]) * 0.9
    assert np.array_equal(prefilter(clip, 0), clip)


def test_prefilter_config_validates_and_old_configs_load_without_it() -> None:
    config = DVFaceConfig.preset("tiny")
    data = config.to_dict()
    del data["prefilter"]  # a config.json written before the field existed
    assert DVFaceConfig.from_dict(data).prefilter == 0
    with pytest.raises(ValueError, match="prefilter"):
        dataclasses.replace(config, prefilter=-1)


class NoisyRestorer(TrackRestorer):
    """A backend whose 'model' adds fresh noise to every frame: what stabilisation is for. It keeps
    the pixels `encode` gave it, to check what reaches a model."""

    def __init__(self, radius: int, prefilter: int = 0) -> None:
        super().__init__([None])
        config = DVFaceConfig.preset("tiny")
        self.config = dataclasses.replace(config, stabilise=radius, prefilter=prefilter, crop_size=SIZE)
        self.identity, self.device, self.precision = f"noisy-{radius}-{prefilter}", "cpu", "fp32"

    def _encode(self, model: None, pixels: np.ndarray) -> PriorState:
        return PriorState(pixels, np.zeros(1))

    def _decode(self, model: None, state: PriorState, prior_scale: float) -> np.ndarray:
        return noisy(state.latent, 4, seed=2)


def host(frames: np.ndarray) -> np.ndarray:
    """Model units -> float32 host crops (RGB in [0, 1])."""
    return ((frames + 1) / 2).astype(np.float32)


def test_encode_prefilters_when_the_model_config_asks() -> None:
    crops = host(noisy(moving_clip(1.0), 6))
    assert np.array_equal(NoisyRestorer(0).encode(crops).latent, to_model(crops))
    assert np.array_equal(NoisyRestorer(0, prefilter=2).encode(crops).latent, prefilter(to_model(crops), 2))


def test_decode_stabilises_when_the_model_config_asks() -> None:
    clean = moving_clip(1.0)
    plain, steady = NoisyRestorer(0), NoisyRestorer(2)
    raw = plain.decode(plain.encode(host(clean)))
    out = steady.decode(steady.encode(host(clean)))
    assert np.array_equal(out, stabilise(raw, 2))
    assert rmse(out[4], clean[4]) < rmse(raw[4], clean[4]) / 1.5


class EchoRestorer(NoisyRestorer):
    """A 'model' that gives back what reached it: its output is the (prefiltered) input."""

    def _decode(self, model: None, state: PriorState, prior_scale: float) -> np.ndarray:
        return state.latent.copy()


def grainy(clean: np.ndarray, levels: float, seed: int = 4) -> np.ndarray:
    """`clean` plus fresh per-pixel grain in every frame, `levels` 8-bit levels rms."""
    return (clean + np.random.default_rng(seed).normal(0, levels * LEVEL, clean.shape)).astype(np.float32)


def test_grain_puts_back_what_the_prefilter_took_out() -> None:
    """Behind the prefilter a restorer sees each frame's flow-guided average; with grain 1 the
    difference comes back on its output, so an echoing model returns the grainy input itself (to
    float16), with 0.5 half of it, and the grain is added after the stabilisation (not averaged)."""
    pixels = grainy(moving_clip(1.0), 6)
    crops = host(pixels)
    model = EchoRestorer(0, prefilter=2)
    plain = model.decode(model.encode(crops))
    assert np.array_equal(plain, prefilter(to_model(crops), 2)) and model.encode(crops).grain is None
    full, half = model.with_grain(1.0), model.with_grain(0.5)
    state = full.encode(crops)
    assert state.grain.dtype == np.float16 and state.nbytes == plain.nbytes + state.grain.nbytes + 8
    out = full.decode(state)
    assert np.abs(out - to_model(crops)).max() < 2e-3 and rmse(plain[4], to_model(crops)[4]) > 3 * LEVEL
    assert np.abs(half.decode(half.encode(crops)) - (plain + out) / 2).max() < 1e-3
    steady = EchoRestorer(2, prefilter=2).with_grain(1.0)
    residual = to_model(crops) - prefilter(to_model(crops), 2)
    assert np.allclose(steady.decode(steady.encode(crops)), stabilise(plain, 2) + residual, atol=2e-3)


def test_grain_on_a_model_without_prefilter_is_measured_by_the_same_average() -> None:
    """A model without an input prefilter still sees the raw frames; the grain put back is the
    difference from the average of `GRAIN_RADIUS` frames each side."""
    crops = host(grainy(moving_clip(1.0), 6))
    state = EchoRestorer(0).with_grain(1.0).encode(crops)
    assert np.array_equal(state.latent, to_model(crops))
    residual = to_model(crops) - prefilter(to_model(crops), GRAIN_RADIUS)
    assert np.array_equal(state.grain, residual.astype(np.float16))


def test_grain_copies_share_the_model_key_the_cache_and_refuse_bad_amounts() -> None:
    model = EchoRestorer(0, prefilter=2)
    grain = model.with_grain(0.25)
    assert model.with_grain(0) is model and grain.with_grain(0.25) is grain and model.grain == 0.0
    assert grain.models == model.models and grain.identity != model.identity != model.with_grain(0.5).identity
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(InputError, match=r"grain must be in \[0, 1\]"):
            model.with_grain(bad)
    with pytest.raises(InputError, match=r"--grain must be in \[0, 1\]"):
        check_grain(2, "--grain")
