import numpy as np
import pytest

from dvface_plugin.colour import (
    ColourSettings,
    from_display,
    premultiply,
    srgb_decode,
    srgb_encode,
    to_display,
    unpremultiply,
)
from dvface_plugin.errors import InputError

rng = np.random.default_rng(0)


def hdr_plate(h=24, w=32):
    rgb = rng.uniform(-0.05, 8.0, (h, w, 3)).astype(np.float32)
    alpha = rng.uniform(0.0, 1.0, (h, w)).astype(np.float32)
    alpha[:4] = 0.0
    rgb[0, 0] = [-0.0, np.nan, np.inf]  # odd values a plate may hold outside any face
    return rgb, alpha


def test_srgb_curve_is_the_standard_one_and_invertible_beyond_0_1():
    assert srgb_encode(np.float32([0.18]))[0] == pytest.approx(0.4613561, abs=1e-6)
    assert srgb_encode(np.float32([1.0]))[0] == pytest.approx(1.0, abs=1e-6)
    x = np.float32([-2.0, -0.001, 0.0, 0.002, 0.5, 1.0, 4.0, 50.0])
    y = srgb_encode(x)
    assert np.all(np.diff(y) > 0) and y[-2] > 1.0
    np.testing.assert_allclose(srgb_decode(y), x, rtol=2e-6, atol=1e-7)


def test_unpremultiply_leaves_zero_alpha_pixels_and_inverts():
    rgb, alpha = hdr_plate()
    rgb = np.nan_to_num(rgb, posinf=5.0)
    straight = unpremultiply(rgb, alpha)
    assert np.array_equal(straight[alpha == 0], rgb[alpha == 0])
    np.testing.assert_allclose(premultiply(straight, alpha), rgb, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("settings", [ColourSettings(), ColourSettings(highlights="soft"),
                                      ColourSettings(transfer="srgb", unpremultiply=False)])
def test_unrestored_pixels_come_back_bit_identical(settings):
    rgb, alpha = hdr_plate()
    display = to_display(rgb, alpha, settings)
    assert display.dtype == np.float32 and display.min() >= 0.0 and display.max() <= 1.0
    changed = display.copy()
    changed[10:20, 10:20] = 0.3  # what a restorer might write under a face
    matte = np.zeros(rgb.shape[:2], np.float32)
    matte[10:20, 10:20] = 1.0
    out = from_display(rgb, alpha, display, changed, matte, settings)
    outside = matte == 0
    assert out[outside].tobytes() == rgb[outside].tobytes()  # NaN, -0.0 and inf included
    assert not np.array_equal(out[~outside], rgb[~outside])


def test_highlights_under_a_face_keep_their_level_and_change_only_by_the_restoration():
    rgb = np.full((8, 8, 3), 5.0, np.float32)  # far above 1: the model sees 1.0
    rgb[:, :4] = 0.2
    settings = ColourSettings()
    display = to_display(rgb, None, settings)
    assert display[0, 7, 0] == 1.0
    same = from_display(rgb, None, display, display, np.ones((8, 8), np.float32), settings)
    np.testing.assert_allclose(same, rgb, rtol=1e-5)  # no clip to 1 on the way back
    darker = display - np.float32(0.05)
    out = from_display(rgb, None, display, darker, np.ones((8, 8), np.float32), settings)
    assert 3.0 < out[0, 7, 0] < 5.0  # restored change applied on top of the highlight
    assert out[0, 0, 0] < 0.2


def test_soft_highlights_compress_instead_of_clipping():
    x = np.float32([0.5, 0.9, 1.05, 1.2]).reshape(1, 4, 1).repeat(3, axis=2)
    soft = to_display(srgb_decode(x), None, ColourSettings(highlights="soft", knee=0.8))[0, :, 0]
    assert soft[0] == pytest.approx(0.5, abs=1e-6)
    assert np.all(np.diff(soft) > 0) and soft[-1] < 1.0  # distinct, ordered, below 1
    hard = to_display(srgb_decode(x), None, ColourSettings())[0, :, 0]
    assert hard[2] == hard[3] == 1.0


def test_bad_settings_name_the_choices():
    with pytest.raises(InputError, match="linear"):
        ColourSettings(transfer="rec709")
    with pytest.raises(InputError, match="knee"):
        ColourSettings(knee=1.5)
    with pytest.raises(InputError, match="alpha"):
        to_display(np.zeros((4, 4, 3), np.float32), np.zeros((3, 3), np.float32), ColourSettings())


ocio = pytest.importorskip("PyOpenColorIO", reason="OpenColorIO is a core dependency; install dvface-plugin")


def ocio_convert(rgb: np.ndarray, source: str, target: str) -> np.ndarray:
    """What a studio tool would do: the built-in ACES studio config's processor, applied directly."""
    config = ocio.Config.CreateFromFile("ocio://studio-config-latest")
    out = np.array(rgb, np.float32, order="C")
    config.getProcessor(source, target).getOptimizedCPUProcessor(ocio.OPTIMIZATION_LOSSLESS).applyRGB(out)
    return out


def test_an_acescg_plate_goes_to_the_model_through_ocio_and_only_the_change_comes_back():
    settings = ColourSettings(colorspace="ACEScg", ocio="ocio://studio-config-latest", unpremultiply=False)
    rgb, _ = hdr_plate()
    display = to_display(rgb, None, settings)
    expected = np.clip(np.nan_to_num(ocio_convert(rgb, "ACEScg", "sRGB Encoded Rec.709 (sRGB)"), nan=0.0,
                                      posinf=1.0, neginf=0.0), 0.0, 1.0)
    np.testing.assert_allclose(display, expected, atol=1e-6)
    restored = display.copy()
    restored[10:20, 10:20] = rng.uniform(0.2, 0.8, (10, 10, 3))  # a restorer's face, in display sRGB
    matte = np.zeros(rgb.shape[:2], np.float32)
    matte[10:20, 10:20] = 1.0
    # a face within the display gamut (nothing clipped for the model): there the result is OCIO's
    rgb[10:20, 10:20] = ocio_convert(rng.uniform(0.05, 0.95, (10, 10, 3)), "sRGB Encoded Rec.709 (sRGB)", "ACEScg")
    display = to_display(rgb, None, settings)
    restored[matte == 0] = display[matte == 0]
    out = from_display(rgb, None, display, restored, matte, settings)
    outside = matte == 0
    assert out[outside].tobytes() == rgb[outside].tobytes()  # NaN, inf and values above 1 included
    np.testing.assert_allclose(out[10:20, 10:20], ocio_convert(restored[10:20, 10:20], "sRGB Encoded Rec.709 (sRGB)",
                                                               "ACEScg"), rtol=1e-5, atol=1e-6)
    assert np.abs(out[10:20, 10:20] - rgb[10:20, 10:20]).max() > 0.05  # the face did change


def test_the_linear_shorthand_is_ocios_rec709_and_the_curves_only_stand_in_without_ocio(monkeypatch):
    from dvface_plugin import colour

    x = np.float32([[[0.0, 0.002, 0.18], [0.5, 1.0, 6.0]]])
    assert colour.encoding(ColourSettings()).description.startswith("Linear Rec.709 (sRGB) (OCIO")
    # OCIO's toe slope is the exact continuation of the power segment (12.9232 rather than 12.92)
    np.testing.assert_allclose(colour.encoding(ColourSettings()).encode(x), srgb_encode(x), rtol=1e-6, atol=1e-5)
    colour._encoding.cache_clear()
    monkeypatch.setitem(__import__("sys").modules, "PyOpenColorIO", None)  # as if not installed
    try:
        assert "OpenColorIO not installed" in colour.encoding(ColourSettings()).description
        with pytest.raises(InputError, match="needs OpenColorIO: pip install opencolorio"):
            ColourSettings(colorspace="ACEScg")
    finally:
        colour._encoding.cache_clear()


def test_unknown_colour_spaces_and_configs_are_refused_with_what_would_do():
    with pytest.raises(InputError, match=r"'ACES cg' is not in the OCIO config .*valid names: .*ACEScg, "):
        ColourSettings(colorspace="ACES cg")
    with pytest.raises(InputError, match="cannot load the OCIO config '/nowhere/config.ocio'"):
        ColourSettings(colorspace="ACEScg", ocio="/nowhere/config.ocio")
    with pytest.raises(InputError, match="without the plate's colour space"):
        ColourSettings(ocio="ocio://studio-config-latest")
    assert ColourSettings(colorspace="srgb_tx").colorspace == "srgb_tx"  # aliases resolve as OCIO resolves them
