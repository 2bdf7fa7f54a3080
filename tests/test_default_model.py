"""The bundled default model, models/dvface-tiny: found without --model, loadable, and it restores.

The benchmark check runs only where ../shared/data is present (research data, never in the repo).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dvface_plugin.engine import restore_track
from dvface_plugin.media import open_media
from dvface_plugin.metrics import detail, psnr_y
from dvface_plugin.model.dvface import WEIGHTS_NAME
from dvface_plugin.model.folders import DEFAULT_MODEL, MODELS_DIR, resolve_model_folder
from dvface_plugin.runtime.backends import open_restorer
from dvface_plugin.runtime.onnx_model import find_onnx
from dvface_plugin.runtime.torch_restorer import load_model
from dvface_plugin.training.data import to_grey

FOLDER = MODELS_DIR / DEFAULT_MODEL
PAIRED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "benchmark" / "paired"


def test_bundled_model_is_the_default_and_loads():
    assert resolve_model_folder(None) == FOLDER
    assert (FOLDER / WEIGHTS_NAME).stat().st_size <= 50 * 2**20
    assert (FOLDER / "README.md").is_file()  # the model card
    model = load_model(None)
    assert model.config.name == "tiny" and model.config.crop_size == 512 and model.config.detail_skip
    assert model.backbone.transformer.proj_out.weight.abs().sum() > 0  # trained, not the zero-init start


def test_bundled_model_ships_the_export_of_its_own_weights():
    """Retrained weights without a fresh `dvface export onnx` would send CPU users back to torch."""
    assert find_onnx(FOLDER) == FOLDER / "onnx"


@pytest.fixture(scope="module")
def restorer():
    return open_restorer(None, backend="torch", device="cpu")


def _first(path: Path, n: int) -> np.ndarray:
    with open_media(path) as media:
        return np.stack([f for _, f in zip(range(n), media.frames())])


@pytest.mark.skipif(not PAIRED.is_dir(), reason="needs ../shared/data/benchmark (research data)")
def test_default_model_brings_a_benchmark_clip_closer_to_its_ground_truth(restorer):
    lq, gt = _first(PAIRED / "HDTF_1" / "LQ.mp4", 17), _first(PAIRED / "HDTF_1" / "GT.mp4", 17)
    out = restore_track(restorer, lq)
    gain = np.mean([psnr_y(o, g) - psnr_y(x, g) for o, x, g in zip(out, lq, gt)])
    assert gain > 0.2, gain



@pytest.mark.skipif(not PAIRED.is_dir(), reason="needs ../shared/data/benchmark (research data)")
def test_default_model_makes_a_benchmark_face_visibly_sharper_not_softer(restorer):
    """The model's own output (no stabilisation): more fine detail than its input, still under GT's."""
    lq, gt = _first(PAIRED / "HDTF_2" / "LQ.mp4", 17), _first(PAIRED / "HDTF_2" / "GT.mp4", 17)
    out = restore_track(restorer.with_stabilise(0), lq)
    ratio = np.mean([detail(f) for f in out]) / np.mean([detail(f) for f in lq])
    assert 1.3 < ratio and np.mean([detail(f) for f in out]) < 1.5 * np.mean([detail(f) for f in gt]), ratio


@pytest.mark.skipif(not PAIRED.is_dir(), reason="needs ../shared/data/benchmark (research data)")
def test_default_model_sharpens_a_black_and_white_face_and_leaves_it_black_and_white(restorer):
    """Grey clips in its training: on VFHQ-Test_1 made grey the model before (P) gained 1.6x here,
    the bundled one 2.8x; and the output stays grey (runtime/monochrome.py), every pixel R = G = B."""
    lq = to_grey(_first(PAIRED / "VFHQ-Test_1" / "LQ.mp4", 17))
    out = restore_track(restorer.with_stabilise(0), lq)
    ratio = np.mean([detail(f) for f in out]) / np.mean([detail(f) for f in lq])
    assert ratio > 2.0, ratio
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])
