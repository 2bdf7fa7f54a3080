"""The engine on the onnxruntime backend: parity with torch, order independence, and whole jobs
run in a process where torch and diffusers cannot be imported."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction

import cv2
import numpy as np
import pytest
import torch
from skimage import data
from tiny_models import save_tiny

from dvface_plugin.cli import main as cli_main
from dvface_plugin.engine import FaceTrackSession, WindowCache, restore_track
from dvface_plugin.media import MediaWriter, open_media
from dvface_plugin.model.config import DVFaceConfig
from dvface_plugin.model.dvface import DVFace
from dvface_plugin.runtime import backends
from dvface_plugin.runtime.backends import choose_backend, describe, open_restorer
from dvface_plugin.runtime.onnx_model import ensure_onnx
from dvface_plugin.runtime.ort_restorer import OrtRestorer

SIZE, WINDOW, OVERLAP = 64, 5, 1
NO_TORCH = "import sys; sys.modules['torch'] = None; sys.modules['diffusers'] = None; "


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny model whose config asks for 5-frame 64 px windows, with its ONNX export shipped in it."""
    folder = save_tiny(tmp_path_factory.mktemp("model"), SIZE, window=WINDOW, overlap=OVERLAP, perturb_astf=True)
    assert cli_main(["export", "onnx", "--model", str(folder), "-o", str(folder / "onnx")]) == 0
    return folder


def crops(n: int = 23, seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8)


def test_ort_engine_matches_torch_engine(model_dir):
    video = crops().astype(np.float32) / 255
    ort = open_restorer(model_dir, backend="ort", device="cpu")
    ref = open_restorer(model_dir, backend="torch", device="cpu", precision="fp32")
    assert ort.identity != ref.identity  # their caches must never mix
    with FaceTrackSession(ort, video.__getitem__, len(video), prior_scale=0.5) as s:
        a = s.frames(0, len(video))
    with FaceTrackSession(ref, video.__getitem__, len(video), prior_scale=0.5) as s:
        b = s.frames(0, len(video))
    assert np.abs(a - b).max() < 1e-3


def test_ort_engine_is_order_independent(model_dir):
    video = crops()
    restorer = open_restorer(model_dir, backend="ort", device="cpu")
    with FaceTrackSession(restorer, video.__getitem__, len(video)) as s:
        sequential = s.frames(0, len(video))
    order = np.random.default_rng(0).permutation(len(video))
    one_window = WindowCache(sequential[0].nbytes * WINDOW * 4 + 1)  # roughly one window of float output
    with FaceTrackSession(restorer, video.__getitem__, len(video), cache=one_window) as s, ThreadPoolExecutor(4) as pool:
        frames = dict(zip(order, pool.map(s.frame, order)))
    assert all(np.array_equal(frames[i], sequential[i]) for i in range(len(video)))


def without_openvino(monkeypatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a))


def test_auto_runs_the_export_on_openvino_or_onnxruntime_where_torch_would_run_on_a_cpu(model_dir, tmp_path,
                                                                                        monkeypatch):
    monkeypatch.setenv("DVFACE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(backends, "cuda_device_present", lambda: False)
    pytest.importorskip("openvino")
    assert [choose_backend(model_dir, "auto", "auto"), choose_backend(model_dir, "cpu", "fp32"),
            choose_backend(model_dir, "cpu", "bf16")] == ["openvino"] * 3
    restorer = open_restorer(model_dir, threads=1)
    assert restorer.backend == "openvino" and restorer.streams == 1  # one copy on every core is its fastest
    compiled = restorer.models[0]._encode.compiled
    assert compiled.get_property("INFERENCE_NUM_THREADS") == 1
    assert compiled.get_property("ENABLE_CPU_PINNING") is False  # pinned, copies of one thread share a core
    assert describe(restorer).startswith("openvino on cpu (")
    without_openvino(monkeypatch)
    assert choose_backend(model_dir, "auto", "auto") == "ort"
    assert choose_backend(model_dir, "cpu", "fp32") == "ort"
    restorer = open_restorer(model_dir, threads=1)
    assert isinstance(restorer, OrtRestorer) and restorer.device == "CPUExecutionProvider"
    assert restorer.streams == 1 and restorer.models[0]._encode.get_session_options().intra_op_num_threads == 1
    # what the exports cannot do, torch does
    assert choose_backend(model_dir, "cpu", "bf16") == "torch"
    assert choose_backend(model_dir, "cuda", "auto") == "torch"
    assert choose_backend(model_dir, "cpu", "auto", window=WINDOW + 4) == "torch"  # the export's window is fixed
    monkeypatch.setattr(backends, "cuda_device_present", lambda: True)
    assert choose_backend(model_dir, "auto", "auto") == "torch"


def test_openvino_engine_is_order_independent_and_close_to_onnxruntime(model_dir, tmp_path, monkeypatch):
    pytest.importorskip("openvino")
    monkeypatch.setenv("DVFACE_CACHE_DIR", str(tmp_path / "cache"))
    video = crops()
    ov = open_restorer(model_dir, backend="openvino", precision="fp32")
    ort = open_restorer(model_dir, backend="ort", device="cpu")
    assert ov.identity != ort.identity  # their caches must never mix
    with FaceTrackSession(ov, video.__getitem__, len(video)) as s:
        sequential = s.frames(0, len(video))
    with FaceTrackSession(ort, video.__getitem__, len(video)) as s:
        assert np.abs(s.frames(0, len(video)).astype(int) - sequential).max() <= 1  # uint8 crops: rounding
    order = np.random.default_rng(1).permutation(len(video))
    with FaceTrackSession(ov, video.__getitem__, len(video), cache=WindowCache(0)) as s, ThreadPoolExecutor(4) as pool:
        frames = dict(zip(order, pool.map(s.frame, order)))
    assert all(np.array_equal(frames[i], sequential[i]) for i in range(len(video)))


def test_auto_runs_torch_when_the_export_is_missing_or_stale(model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("DVFACE_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "m"
    shutil.copytree(model_dir, folder)
    stale = DVFace.from_pretrained(folder)
    with torch.no_grad():
        next(stale.prior.parameters()).add_(0.01)  # retrained weights, the old export beside them
    stale.save_pretrained(folder)
    assert choose_backend(folder, "cpu", "auto") == "torch"
    shutil.rmtree(folder / "onnx")
    assert choose_backend(folder, "cpu", "auto") == "torch"
    ensure_onnx(folder)  # what a first `--backend ort` run leaves in the user cache
    assert choose_backend(folder, "cpu", "auto") == ("openvino" if importlib.util.find_spec("openvino") else "ort")


def run_without_torch(args: list[str]) -> subprocess.CompletedProcess:
    code = NO_TORCH + f"from dvface_plugin.cli import main; sys.exit(main({args!r}))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)


def test_auto_picks_an_export_on_a_cpu_without_importing_torch(model_dir):
    """torch is installed here, but asking it for a GPU costs seconds of import: auto must not."""
    code = ("import sys; from dvface_plugin.runtime.backends import choose_backend; "
            f"print(choose_backend({str(model_dir)!r}, 'auto', 'auto', {WINDOW}), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "CUDA_VISIBLE_DEVICES": ""}).stdout
    assert out.strip() == ("openvino False" if importlib.util.find_spec("openvino") else "ort False")


class FakeNVML:
    """libnvidia-ml's three calls that `cuda_device_present` makes."""

    def __init__(self, init: int = 0, count: int = 1) -> None:
        self.init, self.count, self.shut = init, count, False

    def nvmlInit_v2(self) -> int:
        return self.init

    def nvmlDeviceGetCount_v2(self, pointer) -> int:
        pointer._obj.value = self.count
        return 0

    def nvmlShutdown(self) -> int:
        self.shut = True
        return 0


@pytest.mark.parametrize(("nvml", "visible", "present"), [
    (FakeNVML(count=2), None, True),
    (FakeNVML(count=0), None, False),
    (FakeNVML(init=9), None, False),  # NVML_ERROR_DRIVER_NOT_LOADED
    (FakeNVML(count=2), "", False),
    (FakeNVML(count=2), "-1", False),
    (None, None, False),  # no NVIDIA driver installed
])
def test_cuda_probe_asks_the_driver_not_torch(monkeypatch, nvml, visible, present):
    def load(name):
        if nvml is None:
            raise OSError(f"{name}: cannot open shared object file")
        return nvml

    monkeypatch.setattr(backends.ctypes, "CDLL", load)
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert backends.cuda_device_present() is present
    if nvml is not None and nvml.init == 0 and visible is None:
        assert nvml.shut  # NVML is shut down again


def test_aligned_restore_runs_without_torch(model_dir, tmp_path):
    src, out = tmp_path / "in.mkv", tmp_path / "out.mkv"
    video = crops(9)
    with MediaWriter(src, Fraction(24000, 1001), width=SIZE, height=SIZE) as w:
        for frame in video:
            w.write(frame)
    result = run_without_torch(["restore", "--aligned", str(src), "-o", str(out), "--model", str(model_dir),
                                "--backend", "auto", "--precision", "fp32", "--quiet"])
    assert result.returncode == 0, result.stderr
    with open_media(out) as restored:
        assert restored.frame_count == 9 and restored.fps == Fraction(24000, 1001)
        got = np.stack(list(restored))
    torch_out = restore_track(open_restorer(model_dir, backend="torch", device="cpu", precision="fp32"), video)
    assert np.abs(got.astype(int) - torch_out).max() <= 1


def test_whole_frame_restore_runs_without_torch(model_dir, tmp_path):
    face = cv2.resize(data.astronaut()[20:240, 120:340], (96, 96), interpolation=cv2.INTER_AREA)
    src, out = tmp_path / "shot.mkv", tmp_path / "restored.mkv"
    frames = []
    with MediaWriter(src, Fraction(25), width=192, height=128) as w:
        for t in range(6):
            frame = np.full((128, 192, 3), 40, np.uint8)
            frame[16:112, 30 + 4 * t : 126 + 4 * t] = face
            frames.append(frame)
            w.write(frame)
    result = run_without_torch(["restore", str(src), "-o", str(out), "--model", str(model_dir), "--backend", "ort",
                                "--no-cache", "--quiet"])
    assert result.returncode == 0, result.stderr
    with open_media(out) as restored:
        got = np.stack(list(restored))
    assert got.shape == (6, 128, 192, 3)
    assert not np.array_equal(got, np.stack(frames))  # the face was restored ...
    assert np.array_equal(got[:, :, :20], np.stack(frames)[:, :, :20])  # ... and the plate left alone


def test_a_model_without_export_says_how_to_make_one(tmp_path):
    torch.manual_seed(0)
    DVFace(DVFaceConfig.preset("tiny")).save_pretrained(tmp_path / "m")
    code = NO_TORCH + (
        "from dvface_plugin.runtime.backends import open_restorer\n"
        f"open_restorer({str(tmp_path / 'm')!r}, backend='ort')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "dvface export onnx" in result.stderr and "no torch" in result.stderr


def test_the_cpu_is_split_into_two_single_threaded_streams_that_restore_the_same_frames(model_dir, monkeypatch):
    monkeypatch.setattr(backends, "cuda_device_present", lambda: False)
    video = crops(31)
    two = open_restorer(model_dir, backend="ort", device="cpu", threads=2)
    one = open_restorer(model_dir, backend="ort", device="cpu", threads=1)
    assert (two.streams, one.streams) == (2, 1) and two.models[0] is not two.models[1]
    threads = {m._encode.get_session_options().intra_op_num_threads for m in (*two.models, *one.models)}
    assert threads == {1}  # the two cores split, not each stream on both
    outputs = []
    for restorer in (two, one):
        with FaceTrackSession(restorer, video.__getitem__, len(video), cache=WindowCache(0), ahead=restorer.streams) as s:
            outputs.append(np.stack(list(s.iter_frames())))
    assert np.array_equal(*outputs)
    assert OrtRestorer.load(model_dir, device="cpu", threads=8, streams=4).streams == 4
    assert {m._encode.get_session_options().intra_op_num_threads
            for m in OrtRestorer.load(model_dir, device="cpu", threads=8, streams=4).models} == {2}
