"""ONNX export and the torch-free onnxruntime backend: parity with torch, manifest checks, errors.

One export of the tiny preset at 5x64x64 (about 45 s on 2 cores) serves the whole file.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from skimage import data

import dvface_plugin.runtime.onnx_export as onnx_export
from dvface_plugin.cli import main as cli_main
from dvface_plugin.engine import FaceTrackSession
from dvface_plugin.errors import DVFaceError, InputError, WeightsError
from dvface_plugin.model.config import DVFaceConfig, RefinerConfig
from dvface_plugin.model.dvface import WEIGHTS_NAME, DVFace
from dvface_plugin.model.folders import DEFAULT_MODEL, MODELS_DIR
from dvface_plugin.runtime import onnx_model
from dvface_plugin.runtime.backends import open_restorer
from dvface_plugin.runtime.base import PriorState
from dvface_plugin.runtime.onnx_format import (
    ENCODE_GRAPH,
    MANIFEST_NAME,
    RESTORE_GRAPH,
    SHARED_DATA,
    file_sha256,
    short_graphs,
)
from dvface_plugin.runtime.onnx_model import (
    CPU,
    CUDA,
    TENSORRT,
    OrtModel,
    check_runtime_install,
    ensure_onnx,
    resolve_providers,
    trt_cache_folder,
)
from dvface_plugin.runtime.openvino_model import OPENVINO, OvModel, openvino_precision
from dvface_plugin.runtime.ort_restorer import OrtRestorer
from dvface_plugin.runtime.pixels import to_model
from dvface_plugin.runtime.torch_restorer import Restorer

FRAMES, SIZE = 5, 64
TOL = 1e-3


def make_model() -> DVFace:
    """Tiny preset with a detail refiner, seed 0, ASTF and refiner moved off their zero init so both act."""
    torch.manual_seed(0)
    config = DVFaceConfig.preset("tiny")
    config.refiner = RefinerConfig(channels=16)
    model = DVFace(config).eval()
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in model.fusion.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.5)
        model.refiner.tail.weight.normal_(std=0.05, generator=g)
    return model


def clip(frames: int = FRAMES, h: int = SIZE, w: int = SIZE, seed: int = 1, batch: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (batch, 3, frames, h, w)).astype(np.float32)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(model, model folder, export folder): the model saved, then exported through the CLI."""
    model = make_model()
    folder = tmp_path_factory.mktemp("model")
    model.save_pretrained(folder)
    out = folder / "onnx"
    assert cli_main(["export", "onnx", "--model", str(folder), "-o", str(out), "--frames", "5", "--size", "64"]) == 0
    return model, folder, out


@pytest.fixture(scope="module")
def ort_model(exported) -> OrtModel:
    return OrtModel(exported[2], providers=[CPU])


def torch_restore(model: DVFace, x: np.ndarray, scale: float) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(x), prior_scale=scale).numpy()


def copy_export(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def edit_manifest(folder: Path, **changes) -> None:
    path = folder / MANIFEST_NAME
    manifest = json.loads(path.read_text())
    manifest.update(changes)
    path.write_text(json.dumps(manifest))


# --- export and manifest ------------------------------------------------------------------------


def test_manifest_describes_the_export(exported):
    import onnx

    model, folder, out = exported
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["weights_sha256"] == file_sha256(folder / WEIGHTS_NAME)
    assert manifest["weights_digest"] == DVFace.from_pretrained(folder).weights_digest() == model.weights_digest()
    assert manifest["precision"] == "fp32" and manifest["config_name"] == "tiny"
    assert manifest["shape"] == {"batch": 1, "frames": FRAMES, "height": SIZE, "width": SIZE}
    for key, graph in manifest["graphs"].items():
        proto = onnx.load(str(out / graph["file"]), load_external_data=False)
        assert [i.name for i in proto.graph.input] == [i["name"] for i in graph["inputs"]]
        assert [o.name for o in proto.graph.output] == [o["name"] for o in graph["outputs"]]
        assert {o.version for o in proto.opset_import if o.domain == ""} == {manifest["opset"]}
    assert manifest["graphs"]["encode_priors"]["inputs"][0]["shape"] == [1, 3, FRAMES, SIZE, SIZE]
    assert manifest["graphs"]["restore"]["outputs"][0]["shape"] == [1, 3, FRAMES, SIZE, SIZE]
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")], "temporary export folder left behind"


def test_both_graphs_share_one_data_file_holding_each_tensor_once(exported):
    import onnx
    from onnx import numpy_helper

    _, _, out = exported
    graphs = [ENCODE_GRAPH, RESTORE_GRAPH, *short_graphs(1)]  # a 5-frame export has a 1-frame pair too
    assert sorted(p.name for p in out.iterdir()) == sorted([*graphs, MANIFEST_NAME, SHARED_DATA])
    referenced, distinct = 0, {}
    for graph in graphs:
        for tensor in onnx.load(str(out / graph)).graph.initializer:
            data = numpy_helper.to_array(tensor).tobytes()
            referenced += len(data)
            distinct[data] = len(data)
    shared = (out / SHARED_DATA).stat().st_size
    assert shared < referenced  # the decoder both graphs hold is stored once
    assert shared <= sum(distinct.values()) + 64 * len(distinct)  # nothing stored twice, alignment aside


def test_graphs_carry_no_exporter_traces(exported):
    """The exporter's per-node stack traces were 80 % of each graph file; no runtime reads them."""
    import onnx

    for name in (ENCODE_GRAPH, RESTORE_GRAPH, *short_graphs(1)):
        proto = onnx.load(str(exported[2] / name), load_external_data=False)
        assert not any(node.metadata_props or node.doc_string for node in proto.graph.node)


def test_export_refuses_bad_shapes_and_foreign_folders(exported, tmp_path, capsys):
    _, folder, _ = exported
    out = tmp_path / "out"
    assert cli_main(["export", "onnx", "--model", str(folder), "-o", str(out), "--frames", "6"]) == 2
    assert "4k+1" in capsys.readouterr().err and not out.exists()
    assert cli_main(["export", "onnx", "--model", str(folder), "-o", str(out), "--size", "48"]) == 2
    assert "multiple of 32" in capsys.readouterr().err and not out.exists()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    args = ["export", "onnx", "--model", str(folder), "-o", str(foreign), "--frames", "5", "--size", "64"]
    assert cli_main(args) == 2
    assert "not an ONNX export folder" in capsys.readouterr().err
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]


# --- parity with torch -------------------------------------------------------------------------


def test_latent_and_prior_features_match_torch(exported, ort_model):
    model = exported[0]
    x = clip()
    latent = ort_model.encode(x)
    priors = ort_model.encode_priors(latent)
    with torch.inference_mode():
        ref_latent = model.encode(torch.from_numpy(x))
        ref = model.encode_priors(ref_latent)
    assert np.abs(latent.z - ref_latent.z.numpy()).max() < TOL
    assert np.abs(priors.f_s - ref.f_s.numpy()).max() < TOL
    assert np.abs(priors.f_t - ref.f_t.numpy()).max() < TOL
    assert priors.grid == ref.grid


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_restore_matches_torch(exported, ort_model, scale):
    x = clip(seed=2)
    out = ort_model(x, prior_scale=scale)
    assert out.shape == x.shape and out.dtype == np.float32
    assert np.abs(out - torch_restore(exported[0], x, scale)).max() < TOL


def test_prior_scale_reaches_the_graph(ort_model):
    x = clip(seed=3)
    latent = ort_model.encode(x)
    priors = ort_model.encode_priors(latent)
    full = ort_model.restore_latent(latent, priors, 1.0)
    half = ort_model.restore_latent(latent, priors, 0.5)
    assert np.abs(full - half).max() > 10 * TOL
    with pytest.raises(InputError, match="prior_scale"):
        ort_model.restore_latent(latent, priors, 1.5)


class OrtEngineAdapter:
    """The two calls a `FaceTrackSession` makes of its restorer, on `OrtModel` (what an engine "ort" backend wraps)."""

    def __init__(self, model: OrtModel) -> None:
        self.model = model
        self.config = model.config
        self.identity = f"ort|{model.weights_digest()}"

    def encode(self, crops: np.ndarray) -> PriorState:
        latent = self.model.encode(to_model(crops).transpose(3, 0, 1, 2)[None])
        return PriorState(latent, self.model.encode_priors(latent))

    def decode(self, state: PriorState, prior_scale: float) -> np.ndarray:
        return self.model.restore_latent(state.latent, state.priors, prior_scale)[0].transpose(1, 2, 3, 0)


def test_engine_session_on_onnxruntime_matches_torch(exported, ort_model):
    """Every frame of a 40-frame clip through the engine's window grid (10 windows of 5, overlap 1)."""
    video = (clip(40, seed=6)[0].transpose(1, 2, 3, 0) + 1) / 2  # (T, H, W, 3) float crops in [0, 1]
    opts = dict(window=FRAMES, overlap=1, crop_size=SIZE, prior_scale=0.5)
    with FaceTrackSession(OrtEngineAdapter(ort_model), video.__getitem__, 40, **opts) as s:
        ort_frames = s.frames(0, 40)
        assert s.stats().windows_computed == len(s.grid.windows) == 10
    with FaceTrackSession(Restorer(exported[0], device="cpu", precision="fp32"), video.__getitem__, 40, **opts) as s:
        torch_frames = s.frames(0, 40)
    assert np.abs(ort_frames - torch_frames).max() < TOL


def test_small_clips_are_padded_to_the_export_and_cropped_back(exported, ort_model):
    model = exported[0]
    x = clip(3, 50, 60, seed=5, batch=2)
    out = ort_model(x, 1.0)
    assert out.shape == x.shape
    # what the fixed-shape graph computes: the clip replicate-padded to the exported shape
    padded = F.pad(torch.from_numpy(x), (0, SIZE - 60, 0, SIZE - 50, 0, FRAMES - 3), mode="replicate").numpy()
    assert np.abs(out - torch_restore(model, padded, 1.0)[:, :, :3, :50, :60]).max() < TOL
    assert np.abs(out[1:] - ort_model(x[1:], 1.0)).max() < TOL  # batch items are independent


def test_a_clip_as_short_as_a_short_pair_runs_on_it_and_equals_torch(exported):
    """A one-frame clip (a photo, a track's last frame) costs one frame, not a padded window."""
    model, _, out = exported
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert list(manifest["short_windows"]) == ["1"]
    assert manifest["short_windows"]["1"]["encode_priors"]["inputs"][0]["shape"] == [1, 3, 1, SIZE, SIZE]
    fresh = OrtModel(out, providers=[CPU])
    x = clip(1, 50, 60, seed=9)
    padded = F.pad(torch.from_numpy(x), (0, SIZE - 60, 0, SIZE - 50, 0, 0), mode="replicate").numpy()
    assert np.abs(fresh(x, 0.5) - torch_restore(model, padded, 0.5)[..., :50, :60]).max() < TOL  # no frame padding
    assert set(fresh._pairs) == {1}  # opened when first needed, the full window's pair untouched


# --- the same export on OpenVINO ----------------------------------------------------------------


def test_openvino_runs_the_export_as_onnxruntime_does(exported, ort_model, tmp_path):
    """fp32 equals onnxruntime to float tolerance, short pair and padding included."""
    pytest.importorskip("openvino")
    fp32 = OvModel(exported[2], precision="fp32", cache_dir=tmp_path)
    assert (fp32.precision, fp32.providers, fp32.runtime) == ("fp32", [OPENVINO], "openvino")
    for x in (clip(seed=2), clip(1, 50, 60, seed=9), clip(3, 50, 60, seed=5, batch=2)):
        assert np.abs(fp32(x, 0.5) - ort_model(x, 0.5)).max() < TOL
    assert set(fp32._pairs) == {1}


def test_openvino_bf16_restores_the_bundled_model_within_a_level_or_two(tmp_path):
    """The CPU default where the CPU has AMX. One 512 px frame (the export's 1-frame pair) of a face
    photo, against onnxruntime's fp32. bf16 and fp32 blobs share the cache root without mixing:
    OpenVINO's own blob names leave the precision out, and a bf16 model that loaded an fp32 blob crashed."""
    pytest.importorskip("openvino")
    if openvino_precision("auto") != "bf16":
        pytest.skip("this CPU has no AMX: OpenVINO runs fp32 here")
    folder = MODELS_DIR / DEFAULT_MODEL / "onnx"
    face = cv2.resize(data.astronaut()[:256, 128:384], (512, 512), interpolation=cv2.INTER_CUBIC)
    x = to_model(face[None]).transpose(3, 0, 1, 2)[None]
    reference = OrtModel(folder, providers=[CPU])(x)
    for precision in ("fp32", "bf16", "fp32"):
        out = OvModel(folder, precision=precision, cache_dir=tmp_path)(x)
        levels = np.abs(out - reference) * 127.5
        if precision == "fp32":
            assert levels.max() < 0.01
        else:
            assert 0 < levels.mean() < 0.5 and levels.max() < 8
    assert len(list(tmp_path.iterdir())) == 2  # one cache folder per precision


def test_openvino_refuses_what_it_cannot_run(exported, monkeypatch):
    pytest.importorskip("openvino")
    with pytest.raises(DVFaceError, match="not available on the openvino backend; use fp32, bf16 or int8"):
        OvModel(exported[2], precision="fp16")
    with pytest.raises(DVFaceError, match="runs on the CPU"):
        open_restorer(exported[1], backend="openvino", device="cuda")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a))
    with pytest.raises(DVFaceError, match="pip install openvino"):
        open_restorer(exported[1], backend="openvino")


def test_clips_larger_than_the_export_are_refused(ort_model):
    for shape in ((FRAMES + 1, SIZE, SIZE), (FRAMES, SIZE + 8, SIZE)):
        with pytest.raises(InputError, match="larger than this ONNX export"):
            ort_model.encode(clip(*shape))
    with pytest.raises(InputError, match=r"\[-1, 1\]"):
        ort_model.encode(clip() * 3)


def test_weights_digest_is_the_torch_models(exported, ort_model):
    assert ort_model.weights_digest() == exported[0].weights_digest()


# --- load-time checks --------------------------------------------------------------------------


def test_checksum_mismatch_names_both_files(exported, tmp_path):
    _, folder, out = exported
    stale = tmp_path / "model"
    stale.mkdir()
    copy_export(out, stale / "onnx")
    (stale / WEIGHTS_NAME).write_bytes((folder / WEIGHTS_NAME).read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(WeightsError) as err:
        OrtModel(stale / "onnx", providers=[CPU])
    expected = json.loads((out / MANIFEST_NAME).read_text())["weights_sha256"]
    assert expected[:16] in str(err.value) and file_sha256(stale / WEIGHTS_NAME)[:16] in str(err.value)
    assert str(stale / WEIGHTS_NAME) in str(err.value)


def test_folder_without_graphs_or_manifest_or_with_a_damaged_graph_is_refused(exported, tmp_path):
    out = exported[2]
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copy(out / MANIFEST_NAME, partial / MANIFEST_NAME)
    with pytest.raises(WeightsError, match="restore.onnx|encode_priors.onnx"):
        OrtModel(partial, providers=[CPU])
    with pytest.raises(WeightsError, match="manifest.json not found"):
        OrtModel(tmp_path, providers=[CPU])
    damaged = copy_export(out, tmp_path / "damaged")
    (damaged / "restore.onnx").write_bytes((out / "restore.onnx").read_bytes()[:1000])
    with pytest.raises(DVFaceError, match="cannot load .*restore.onnx.*export it again"):
        OrtModel(damaged, providers=[CPU])


def test_unsupported_opset_is_refused(exported, tmp_path):
    import onnxruntime

    if onnx_model.max_supported_opset(onnxruntime) is None:
        pytest.skip("this onnxruntime build does not expose its operator schemas")
    folder = copy_export(exported[2], tmp_path / "future")
    edit_manifest(folder, opset=999)
    with pytest.raises(DVFaceError, match="opset 999.*upgrade onnxruntime"):
        OrtModel(folder, providers=[CPU])


def test_missing_provider_names_it_and_the_gpu_extra(exported):
    import onnxruntime

    if TENSORRT in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has TensorRT")
    with pytest.raises(DVFaceError, match=f"{TENSORRT}.*onnxruntime-gpu"):
        OrtModel(exported[2], providers=["tensorrt"])


def test_auto_providers_prefer_tensorrt_then_cuda_never_azure(ort_model):
    assert resolve_providers(None, ["AzureExecutionProvider", CPU]) == [CPU]
    assert resolve_providers(None, [CPU, CUDA, "AzureExecutionProvider", TENSORRT]) == [TENSORRT, CUDA, CPU]
    assert resolve_providers(["cuda", "cpu"], [TENSORRT, CUDA, CPU]) == [CUDA, CPU]
    assert ort_model.providers == [CPU]


def test_both_onnxruntime_builds_installed_is_refused(exported, monkeypatch):
    with pytest.raises(DVFaceError, match="onnxruntime, onnxruntime-gpu.*pip uninstall"):
        check_runtime_install(["onnxruntime", "onnxruntime-gpu"])
    with pytest.raises(DVFaceError, match=r"\[cpu\].*\[gpu\]"):
        check_runtime_install([])
    monkeypatch.setattr(onnx_model, "installed_runtimes", lambda: ["onnxruntime", "onnxruntime-gpu"])
    with pytest.raises(DVFaceError, match="several onnxruntime builds"):
        OrtModel(exported[2], providers=[CPU])


def test_tensorrt_cache_folder_changes_with_every_setting(exported):
    manifest = json.loads((exported[2] / MANIFEST_NAME).read_text())
    base = dict(
        base=Path("/c"), manifest=manifest, manifest_sha="a" * 64, device_id=0,
        gpu="NVIDIA H100 80GB HBM3, 9.0", ort_version="1.31.0",
    )
    variants = [
        {},
        {"manifest_sha": "b" * 64},
        {"manifest": {**manifest, "precision": "fp16"}},
        {"manifest": {**manifest, "shape": {**manifest["shape"], "frames": 9}}},
        {"device_id": 1},
        {"gpu": "NVIDIA RTX 4090, 8.9"},
        {"ort_version": "1.32.0"},
    ]
    names = [trt_cache_folder(**{**base, **v}).name for v in variants]
    assert len(set(names)) == len(names)
    assert "/" not in names[0] and " " not in names[0] and "H100" in names[0]


def test_tensorrt_options_point_at_the_keyed_cache(ort_model, tmp_path, monkeypatch):
    import onnxruntime

    monkeypatch.setattr(onnx_model, "gpu_name", lambda device_id: f"Test GPU {device_id}, 9.0")
    trt, cuda, cpu = ort_model._provider_options([TENSORRT, CUDA, CPU], onnxruntime, tmp_path)
    folder = Path(trt["trt_engine_cache_path"])
    assert folder.is_dir() and folder.parent.parent == tmp_path and "Test_GPU_0" in folder.name
    assert folder == ort_model.trt_cache and trt["trt_timing_cache_path"] == str(folder)
    assert (trt["trt_fp16_enable"], trt["trt_engine_cache_enable"], trt["device_id"]) == ("False", "True", "0")
    assert cuda == {"device_id": "0"} and cpu == {}


# --- torch-free use and first-use export -------------------------------------------------------


def test_backend_imports_and_runs_without_torch(exported):
    out = exported[2]
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['diffusers'] = None\n"
        "import numpy as np\n"
        "from dvface_plugin.runtime.onnx_model import OrtModel\n"
        f"m = OrtModel({str(out)!r}, providers=['CPUExecutionProvider'])\n"
        f"y = m(np.zeros((1, 3, 2, 40, 40), np.float32), 0.5)\n"
        "print(y.shape, 'torch' in sys.modules and sys.modules['torch'] is not None)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "(1, 3, 2, 40, 40) False"


def test_ensure_onnx_uses_a_shipped_export_without_exporting(exported, tmp_path, monkeypatch):
    folder, out = exported[1], exported[2]

    def no_export(*args, **kwargs):
        raise AssertionError("exported although a matching export ships with the model")

    monkeypatch.setattr(onnx_export, "export_model_folder", no_export)
    assert ensure_onnx(folder, tmp_path, frames=FRAMES, size=SIZE) == out


def test_ensure_onnx_exports_once_under_concurrent_first_use(exported, tmp_path, monkeypatch):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    for name in ("config.json", WEIGHTS_NAME):
        shutil.copy(exported[1] / name, model_dir / name)
    shipped = json.loads((exported[2] / MANIFEST_NAME).read_text())
    calls = []

    def fake_export(model_folder, target, *, frames, size, fp16, backbone):
        calls.append(target)
        time.sleep(0.3)  # long enough for the other threads to reach the lock
        target.mkdir(parents=True)
        for name in (ENCODE_GRAPH, RESTORE_GRAPH):
            (target / name).write_bytes(b"")
        manifest = {**shipped, "shape": {"batch": 1, "frames": frames, "height": size, "width": size}}
        (target / MANIFEST_NAME).write_text(json.dumps(manifest))

    monkeypatch.setattr(onnx_export, "export_model_folder", fake_export)
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(ensure_onnx(model_dir, tmp_path / "cache", frames=9, size=64)))
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(results) == 3 and len(set(results)) == 1
    assert results[0].parent == tmp_path / "cache" and file_sha256(model_dir / WEIGHTS_NAME)[:16] in results[0].name


# --- bench ---------------------------------------------------------------------------------------


def test_bench_model_reports_consistent_rates(exported, capsys):
    _, folder, out = exported
    assert cli_main(["bench", "model", "--backend", "ort", "--onnx", str(out), "--repeat", "1", "--json"]) == 0
    ort = json.loads(capsys.readouterr().out)
    assert ort["providers"] == [CPU] and (ort["frames"], ort["size"]) == (FRAMES, SIZE)
    assert ort["fps"] == pytest.approx(FRAMES / (ort["encode_s"] + ort["restore_s"]))
    assert ort["fps_restore_only"] > ort["fps"] > 0
    args = ["bench", "model", "--backend", "torch", "--model", str(folder), "--device", "cpu"]
    assert cli_main([*args, "--frames", "5", "--size", "64", "--repeat", "1", "--json"]) == 0
    eager = json.loads(capsys.readouterr().out)
    assert (eager["frames"], eager["size"], eager["device"]) == (FRAMES, SIZE, "cpu")
    assert cli_main(["bench", "model", "--backend", "ort", "--onnx", str(out), "--frames", "9"]) == 2
    assert "differ from the export" in capsys.readouterr().err


def test_3d_convolutions_become_2d_ones_with_the_same_output(tmp_path):
    """Causal time padding, spatial stride and bias kept; a time-strided Conv is left as it was."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from dvface_plugin.runtime.onnx_conv2d import convs_as_2d

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name) for name, shape in (
        ("w", (6, 4, 3, 3, 3)), ("bias", (6,)), ("w1", (5, 6, 1, 1, 1)), ("ws", (3, 5, 3, 1, 1)))]
    nodes = [helper.make_node("Conv", ["x", "w", "bias"], ["a"], pads=[2, 1, 1, 0, 1, 1], strides=[1, 2, 2]),
             helper.make_node("Conv", ["a", "w1"], ["b"]),
             helper.make_node("Conv", ["b", "ws"], ["y"], strides=[2, 1, 1])]  # time stride 2: stays 3D
    graph = helper.make_graph(nodes, "convs", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4, 5, 12, 10])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = rng.standard_normal((2, 4, 5, 12, 10)).astype(np.float32)

    def run(m):
        return ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]

    before = run(model)
    assert convs_as_2d(model) == 2
    kernels = sorted(len(t.dims) for t in model.graph.initializer if t.name.endswith("_w") or t.name == "ws")
    assert kernels == [4, 4, 5] and "w" not in {t.name for t in model.graph.initializer}  # old kernels dropped
    np.testing.assert_allclose(run(model), before, rtol=1e-4, atol=1e-4)  # float summation order


def test_flops_are_counted_from_the_graph_shapes(tmp_path):
    """A Conv3d, a ConvTranspose, a batched MatMul and a Gemm whose FLOPs are known by hand."""
    from onnx import TensorProto, helper, numpy_helper

    from dvface_plugin.runtime.onnx_flops import graph_flops

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name) for name, shape in (
        ("w3", (8, 4, 3, 3, 3)), ("wt", (8, 2, 2, 2)), ("m", (2, 6, 5)), ("g", (5, 7)))]
    nodes = [helper.make_node("Conv", ["x", "w3"], ["c"], pads=[1] * 6),  # (1, 8, 5, 16, 16)
             helper.make_node("Reshape", ["c", "s"], ["c2"]),  # (1, 8, 80, 16)
             helper.make_node("ConvTranspose", ["c2", "wt"], ["t"], strides=[2, 2]),  # (1, 2, 160, 32)
             helper.make_node("MatMul", ["a", "m"], ["mm"]),  # (2, 3, 6) x (2, 6, 5)
             helper.make_node("Gemm", ["b", "g"], ["gm"], transA=1)]  # (5, 4)^T x (5, 7)
    inits.append(numpy_helper.from_array(np.array([1, 8, 80, 16], np.int64), "s"))
    graph = helper.make_graph(nodes, "flops", [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 5, 16, 16]),
        helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 3, 6]),
        helper.make_tensor_value_info("b", TensorProto.FLOAT, [5, 4])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("t", "mm", "gm")], inits)
    path = tmp_path / "flops.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    conv = 2 * (8 * 5 * 16 * 16) * (4 * 27)
    transposed = 2 * (8 * 80 * 16) * (2 * 4)
    assert graph_flops(path) == conv + transposed + 2 * (2 * 3 * 5) * 6 + 2 * (4 * 7) * 5


# --- int8 -----------------------------------------------------------------------------------------


def face_clip(shift: int, frames: int = FRAMES) -> np.ndarray:
    """(T, SIZE, SIZE, 3) uint8: a face crop drifting across the frame, as `dvface prepare` stores clips."""
    face = cv2.resize(data.astronaut()[20:220, 140:340], (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    return np.stack([np.roll(face, (shift + t, 2 * t), axis=(0, 1)) for t in range(frames)])


@pytest.fixture(scope="module")
def int8_export(exported, tmp_path_factory) -> Path:
    """The int8 copy of `exported`, calibrated on two prepared synthetic clips, where a model folder
    ships it (`onnx-int8/`)."""
    _, folder, _ = exported
    calibration = tmp_path_factory.mktemp("prepared")
    for i in range(2):
        np.save(calibration / f"clip{i}.npy", face_clip(i, FRAMES + 2))  # longer than a window
    out = folder / onnx_model.SHIPPED_INT8_DIR
    assert cli_main(["export", "onnx", "--int8", "--calibration", str(calibration), "--calibration-windows", "2",
                     "--model", str(folder), "-o", str(out), "--frames", "5", "--size", "64"]) == 0
    return out


def test_activation_ranges_are_the_tensors_own_in_any_number_of_passes(tmp_path, monkeypatch):
    """A Conv -> Relu -> MatMul graph whose intermediate values are computed here by hand."""
    from onnx import TensorProto, helper, numpy_helper

    from dvface_plugin.runtime import onnx_int8

    rng = np.random.default_rng(0)
    w, m = rng.standard_normal((4, 3, 3, 3)).astype(np.float32), rng.standard_normal((6, 5)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("MatMul", ["r", "m"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 6, 5])],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(m, "m")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "g.onnx"))
    feeds = [{"x": rng.standard_normal((1, 3, 6, 6)).astype(np.float32) * (i + 1)} for i in range(3)]
    c = [F.conv2d(torch.from_numpy(f["x"]), torch.from_numpy(w), padding=1).numpy() for f in feeds]
    expected = {"x": [f["x"] for f in feeds], "c": c, "r": [np.maximum(v, 0) for v in c],
                "y": [np.maximum(v, 0) @ m for v in c]}
    one_pass = onnx_int8.activation_ranges(tmp_path, "g.onnx", feeds, ops=("Conv", "MatMul"))
    monkeypatch.setattr(onnx_int8, "PASS_BYTES", 1)  # a tensor a pass
    for ranges in (one_pass, onnx_int8.activation_ranges(tmp_path, "g.onnx", feeds, ops=("Conv", "MatMul"))):
        assert set(ranges) == set(expected)  # the inputs and outputs of Conv and MatMul, no weights
        for name, values in expected.items():
            low, high = min(v.min() for v in values), max(v.max() for v in values)
            assert ranges[name] == pytest.approx((low, high), abs=1e-4), name
    assert set(onnx_int8.activation_ranges(tmp_path, "g.onnx", feeds)) == {"x", "c"}  # what the export quantises


def test_int8_export_quantises_every_graph_and_runs_on_both_runtimes(exported, int8_export, ort_model):
    _, folder, out = exported
    manifest = json.loads((int8_export / MANIFEST_NAME).read_text())
    assert manifest["precision"] == "int8" and manifest["quantized"]["calibration_windows"] == 2
    assert manifest["weights_sha256"] == json.loads((out / MANIFEST_NAME).read_text())["weights_sha256"]
    graphs = [ENCODE_GRAPH, RESTORE_GRAPH, *short_graphs(1)]
    assert sorted(p.name for p in int8_export.iterdir()) == sorted([*graphs, MANIFEST_NAME, SHARED_DATA])
    for graph in graphs:
        proto = onnx.load(str(int8_export / graph), load_external_data=False)
        ops = {n.op_type for n in proto.graph.node}
        assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops, graph
        assert any(t.data_type == onnx.TensorProto.INT8 for t in proto.graph.initializer), graph
        dequantised = {o for n in proto.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
        at_latent = [n for n in proto.graph.node if n.op_type == "Conv" and "quant_conv" in n.input[-1]]
        assert at_latent and not any(n.input[1] in dequantised for n in at_latent), graph  # they stay fp32
        assert any(n.input[1] in dequantised for n in proto.graph.node if n.op_type == "Conv"), graph
    assert ensure_onnx(folder, precision="int8", frames=FRAMES, size=SIZE) == int8_export
    x = np.ascontiguousarray(face_clip(5).transpose(3, 0, 1, 2)[None], dtype=np.float32) / 127.5 - 1.0
    fp32 = ort_model(x, prior_scale=0.5)
    for model in (OrtModel(int8_export, providers=[CPU]), OvModel(int8_export, precision="int8")):
        assert model.precision == "int8"
        y = model(x, prior_scale=0.5)
        # int8, not the fp32 graph; and still this model's output (the random test model, its fusion
        # pushed far from init, is far more sensitive than a trained one: docs/benchmarks.md has those)
        assert np.isfinite(y).all() and np.abs(y - fp32).mean() > 0
        assert np.corrcoef(y.ravel(), fp32.ravel())[0, 1] > 0.85, model.runtime
    for export, precision in ((int8_export, "fp32"), (out, "int8")):  # each export runs in its own precision
        with pytest.raises(DVFaceError, match="the int8 export in int8"):
            OvModel(export, precision=precision)
    assert OvModel(int8_export).precision == "int8"  # auto: an int8 export runs as int8
    restorer = OrtRestorer([OvModel(int8_export, precision="int8")])  # cached windows of fp32 never serve it
    assert restorer.precision == "int8" and "|int8|OpenVINO|" in restorer.identity


def test_int8_is_refused_without_its_export_or_calibration_data(exported, tmp_path, capsys):
    _, folder, _ = exported
    bare = tmp_path / "bare"
    shutil.copytree(folder, bare, ignore=shutil.ignore_patterns("onnx*"))
    with pytest.raises(WeightsError, match="dvface export onnx --int8 --calibration"):
        ensure_onnx(bare, precision="int8", frames=FRAMES, size=SIZE)
    with pytest.raises(WeightsError, match="no int8 export"):
        open_restorer(bare, backend="openvino", precision="int8", streams=1)
    args = ["export", "onnx", "--model", str(folder), "-o", str(tmp_path / "q"), "--frames", "5", "--size", "64"]
    empty = tmp_path / "empty"
    empty.mkdir()
    for extra, message in ((["--int8"], "--int8 needs --calibration"),
                           (["--int8", "--calibration", str(tmp_path / "nowhere")], "calibration folder"),
                           (["--int8", "--calibration", str(empty)], "holds no prepared clips"),
                           (["--calibration", str(empty)], "--calibration is for --int8")):
        assert cli_main([*args, *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
        assert not (tmp_path / "q").exists()
    with pytest.raises(SystemExit):
        cli_main([*args, "--int8", "--fp16", "--calibration", str(empty)])


def test_bench_reads_the_models_rate_against_the_cores_and_times_int8(exported, int8_export, capsys):
    _, folder, out = exported
    assert cli_main(["bench", "model", "--backend", "ort", "--model", str(folder), "--frames", "5", "--size", "64",
                     "--repeat", "1", "--threads", "1", "--compare-int8", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["gflop_per_crop"] > 0 and r["matmul_peak_gflops"] > 0
    assert r["fraction_of_peak"] == pytest.approx(r["gflop_per_crop"] * r["fps"] / r["matmul_peak_gflops"])
    assert r["int8_crops_per_s"] > 0 and r["int8_speedup"] == pytest.approx(r["int8_crops_per_s"] / r["fp32_crops_per_s"])
    assert r["int8_fraction_of_peak"] == pytest.approx(r["int8_gops_achieved"] / r["int8_matmul_peak_gops"])
    assert 0 < r["int8_mean_diff_levels"] <= r["int8_max_diff_levels"]  # int8 is not the fp32 graph
    assert cli_main(["bench", "model", "--backend", "torch", "--compare-int8"]) == 2
    assert cli_main(["bench", "model", "--backend", "ort", "--onnx", str(out), "--compare-int8"]) == 2
