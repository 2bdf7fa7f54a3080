"""Restorer: device and precision choice, model lookup errors, serialised model calls."""

import numpy as np
import pytest
import torch

from dvface_plugin.errors import DVFaceError, WeightsError
from dvface_plugin.model.config import DVFaceConfig
from dvface_plugin.model.dvface import DVFace
from dvface_plugin.model import folders
from dvface_plugin.engine import restore_track
from dvface_plugin.runtime.backends import open_restorer
from dvface_plugin.runtime.torch_restorer import Restorer, load_model, resolve_device, resolve_precision


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return DVFace(DVFaceConfig.preset("tiny"))


def test_auto_device_and_precision_follow_the_hardware():
    device = resolve_device("auto")
    assert device.type == ("cuda" if torch.cuda.is_available() else device.type)
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"
    with pytest.raises(DVFaceError, match="fp16 is not supported on cpu"):
        resolve_precision("fp16", torch.device("cpu"))
    with pytest.raises(DVFaceError, match="unknown precision"):
        resolve_precision("int4", torch.device("cpu"))
    with pytest.raises(DVFaceError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without CUDA")
def test_cuda_without_gpu_names_the_fix():
    with pytest.raises(DVFaceError, match="no CUDA GPU; use --device cpu"):
        resolve_device("cuda:0")


def test_identity_separates_precisions_and_restore_keeps_shape(model):
    fp32 = Restorer(model, device="cpu", precision="fp32")
    clip = np.random.default_rng(0).integers(0, 256, (5, 32, 48, 3), dtype=np.uint8)
    out = restore_track(fp32, clip)
    assert out.shape == clip.shape and out.dtype == np.uint8
    torch.manual_seed(0)
    bf16 = Restorer(DVFace(DVFaceConfig.preset("tiny")), device="cpu", precision="bf16")
    assert bf16.identity != fp32.identity
    assert restore_track(bf16, clip).shape == clip.shape
    with pytest.raises(DVFaceError, match="backend 'tensorrt' is not available"):
        open_restorer(None, backend="tensorrt")


def test_model_lookup_errors_name_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(folders, "MODELS_DIR", tmp_path / "models")  # an install without models/
    with pytest.raises(WeightsError, match=str(tmp_path / "models" / "dvface-tiny")) as info:
        load_model(None)
    assert "full checkout" in str(info.value) and "--model FOLDER" in str(info.value)
    with pytest.raises(WeightsError, match="model folder .*missing.* not found"):
        load_model(str(tmp_path / "missing"))
    (tmp_path / "file.bin").write_bytes(b"x")
    with pytest.raises(WeightsError, match="got a file"):
        load_model(tmp_path / "file.bin")


def test_model_folder_round_trip_keeps_the_identity(tmp_path, model):
    model.save_pretrained(tmp_path / "m")
    loaded = Restorer.load(tmp_path / "m", device="cpu", precision="fp32")
    assert loaded.identity == Restorer(model, device="cpu", precision="fp32").identity
