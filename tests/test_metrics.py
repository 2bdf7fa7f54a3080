"""Metrics and `dvface eval` on synthetic clips."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from skimage import data
from skimage.metrics import structural_similarity

from dvface_plugin import evaluate as E
from dvface_plugin import metrics as M
from dvface_plugin.commands import eval as eval_command
from dvface_plugin.errors import InputError

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    return cv2.resize(data.astronaut()[:256, 128:384], (128, 128), interpolation=cv2.INTER_AREA)


def translating(face: np.ndarray, n: int = 6, step: int = 2) -> list[np.ndarray]:
    """A textured image sliding right by ``step`` px per frame (content wraps around)."""
    return [np.roll(face, t * step, axis=1) for t in range(n)]


def noisy(frame: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(frame + rng.normal(0, sigma, frame.shape), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- PSNR / SSIM


def test_psnr_of_identical_frames_is_inf(face: np.ndarray) -> None:
    assert math.isinf(M.psnr_y(face, face))
    assert math.isinf(M.mean_psnr([math.inf, math.inf]))
    assert M.mean_psnr([math.inf, 30.0]) == pytest.approx((M.PSNR_CAP + 30.0) / 2)


def test_psnr_matches_hand_computation() -> None:
    gt = np.zeros((2, 2, 3), np.float32)
    pred = np.zeros((2, 2, 3), np.float32)
    pred[0, 0] = (0.2, 0.1, 0.4)  # one pixel off: Y difference from the BT.601 weights
    dy = 65.481 * 0.2 + 128.553 * 0.1 + 24.966 * 0.4
    expected = 10 * math.log10(255**2 / (dy**2 / 4))
    assert M.psnr_y(pred, gt) == pytest.approx(expected, rel=1e-6)


def test_y_channel_uses_bt601_studio_range() -> None:
    assert M.rgb_to_y(np.zeros((1, 1, 3), np.uint8))[0, 0] == pytest.approx(16.0)
    assert M.rgb_to_y(np.full((1, 1, 3), 255, np.uint8))[0, 0] == pytest.approx(235.0)


def test_ssim_is_one_for_identical_and_falls_with_noise(face: np.ndarray) -> None:
    assert M.ssim_y(face, face) == pytest.approx(1.0)
    values = [M.ssim_y(noisy(face, s, 0), face) for s in (2, 8, 25)]
    assert 1.0 > values[0] > values[1] > values[2]


def test_ssim_agrees_with_skimage_gaussian_ssim(face: np.ndarray) -> None:
    a, b = M.rgb_to_y(noisy(face, 10, 1)), M.rgb_to_y(face)
    ref = structural_similarity(a, b, data_range=255, gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False)
    assert M.ssim_luma(a, b) == pytest.approx(ref, abs=1e-6)


def test_mismatched_sizes_are_an_input_error(face: np.ndarray) -> None:
    with pytest.raises(InputError):
        M.psnr_y(face, face[:64])


# --------------------------------------------------------------------------- temporal


def test_warping_error_near_zero_for_pure_translation(face: np.ndarray) -> None:
    clip = translating(face)
    steady = M.warping_error(clip, clip)
    flickering = [np.clip(f * (1.0 + 0.15 * (-1) ** t), 0, 255).astype(np.uint8)
                  for t, f in enumerate(clip)]
    flick = M.warping_error(flickering, clip)
    assert steady < 2e-4
    assert flick > 20 * steady
    assert M.warping_error(flickering) > 20 * M.warping_error(clip)  # no-reference mode


def test_consistency_mask_flags_disagreeing_flow() -> None:
    flow_bw = np.zeros((8, 8, 2), np.float32)
    flow_bw[..., 0] = -2.0
    agree = -flow_bw
    assert M.consistency_mask(flow_bw, agree)[:, 2:].all()
    assert not M.consistency_mask(flow_bw, agree)[:, :2].any()  # came from outside the frame
    assert not M.consistency_mask(flow_bw, flow_bw)[:, 2:].any()


def test_flicker_sees_brightness_pumping_not_texture_motion(face: np.ndarray) -> None:
    clip = translating(face, step=1)
    pumping = [np.clip(f.astype(int) + 12 * (t % 2), 0, 255).astype(np.uint8)
               for t, f in enumerate(clip)]
    assert M.flicker([face] * 4) == 0.0
    assert M.flicker(pumping) > 5 * M.flicker(clip)


@pytest.mark.parametrize("shift", [2, -2, 0])
def test_offset_search_recovers_known_shift(shift: int) -> None:
    rng = np.random.default_rng(0)
    frames = [cv2.GaussianBlur((rng.random((48, 48, 3)) * 255).astype(np.uint8), (5, 5), 1)
              for _ in range(16)]
    gt = frames[2:14]  # gt[t] = frames[t + 2]; pred[t + shift] must equal it
    pred = [noisy(f, 3, i) for i, f in enumerate(frames[2 - shift:14 - shift])]
    best, scores = M.find_offset(pred, gt, 2)
    assert best == shift
    assert scores[shift] == max(scores.values())


def test_offset_search_rejects_too_short_clips() -> None:
    frames = [np.zeros((16, 16, 3), np.uint8)] * 4
    with pytest.raises(InputError):
        M.find_offset(frames, frames, 2)


# --------------------------------------------------------------------------- ONNX models


def _onnx_model(path: Path, landmark: bool) -> Path:
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["p"]),
             helper.make_node("Flatten", ["p"], ["y" if not landmark else "f"])]
    outputs = 3
    if landmark:  # mean R and G as one (x, y) point in unit coordinates
        starts = helper.make_tensor("s", TensorProto.INT64, [1], [0])
        ends = helper.make_tensor("e", TensorProto.INT64, [1], [2])
        axes = helper.make_tensor("a", TensorProto.INT64, [1], [1])
        nodes.append(helper.make_node("Slice", ["f", "s", "e", "a"], ["y"]))
        init, outputs = [starts, ends, axes], 2
    else:
        init = []
    graph = helper.make_graph(
        nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, outputs])], init)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_onnx_landmarks(tmp_path: Path, face: np.ndarray) -> None:
    raw = M.OnnxFaceModel(M.OnnxSpec(_onnx_model(tmp_path / "raw.onnx", False)))
    marks = M.OnnxFaceModel(M.OnnxSpec(_onnx_model(tmp_path / "lm.onnx", True), 0.0, 255.0,
                                       "unit"))
    tinted = face.copy()
    tinted[..., 0] //= 3
    assert raw.size == (16, 16) and raw(face).shape == (3,)
    assert raw(face)[0] == pytest.approx(face[..., 0].mean() / 255, abs=0.01)  # x / 255
    pts = marks.landmarks(face)
    assert pts.shape == (1, 2) and 0 <= pts.min() and pts.max() <= 1
    assert M.keypoint_distance(pts, marks.landmarks(face)) == 0.0
    assert M.keypoint_distance(pts, marks.landmarks(tinted)) > 0.05


def test_missing_onnx_model_is_a_weights_error(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from dvface_plugin.errors import WeightsError

    with pytest.raises(WeightsError):
        M.OnnxFaceModel(M.OnnxSpec(tmp_path / "absent.onnx"))


# --------------------------------------------------------------------------- dvface eval


def write_video(path: Path, frames: list[np.ndarray]) -> Path:
    """Near-lossless H.264 (CRF 0, yuv444p) so codec error does not blur the test."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24, options={"crf": "0"})
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv444p"
        for frame in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def bench(tmp_path_factory, face: np.ndarray) -> Path:
    """<root>/<clip>/{GT,Good,Shifted,Flicker}.mp4 for two clips of 12 frames."""
    root = tmp_path_factory.mktemp("bench")
    small = cv2.resize(face, (64, 64), interpolation=cv2.INTER_AREA)
    for clip, step in (("clipA", 1), ("clipB", 2)):
        frames = translating(small, n=14, step=step)
        rng = np.random.default_rng(step)
        frames = [np.clip(f.astype(int) + rng.integers(-6, 7), 0, 255).astype(np.uint8)
                  for f in frames]  # per-frame brightness so frames differ for the offset
        gt = frames[1:13]
        write_video(root / clip / "GT.mp4", gt)
        write_video(root / clip / "Good.mp4", [noisy(f, 3, i) for i, f in enumerate(gt)])
        write_video(root / clip / "Shifted.mp4", frames[0:12])  # pred[t + 1] == gt[t]
        write_video(root / clip / "Flicker.mp4",
                    [np.clip(f.astype(int) + 25 * (i % 2), 0, 255).astype(np.uint8)
                     for i, f in enumerate(gt)])
    return root


def rows_by(rows: list[dict]) -> dict[tuple[str, str], dict]:
    return {(r["clip"], r["method"]): r for r in rows}


def test_eval_benchmark_layout(bench: Path) -> None:
    rows = rows_by(E.evaluate([bench], [bench], max_shift=2))
    assert {m for _, m in rows} == {"Good", "Shifted", "Flicker", "GT"}
    for clip in ("clipA", "clipB"):
        good, shifted, flick = (rows[clip, m] for m in ("Good", "Shifted", "Flicker"))
        assert shifted["offset"] == 1 and good["offset"] == 0
        assert shifted["psnr"] > 45 and shifted["frames"] == 11
        assert good["psnr"] > flick["psnr"]
        assert flick["flicker"] > 3 * good["flicker"]
        assert flick["ewarp"] > 3 * good["ewarp"]
        assert "identity" in good["omitted"] and "akd" in good["omitted"]
    assert rows["mean", "Good"]["psnr"] == pytest.approx(
        (rows["clipA", "Good"]["psnr"] + rows["clipB", "Good"]["psnr"]) / 2)


def test_eval_without_offset_search_keeps_misalignment(bench: Path) -> None:
    gt, pred = bench / "clipA" / "GT.mp4", bench / "clipA" / "Shifted.mp4"
    searched = E.evaluate([pred], [gt], max_shift=2)[0]
    fixed = E.evaluate([pred], [gt], max_shift=0)[0]
    assert (searched["clip"], searched["method"]) == ("clipA", "Shifted")
    assert fixed["offset"] == 0 and fixed["psnr"] < searched["psnr"] - 10


def test_eval_flat_folders_and_no_reference(bench: Path, tmp_path: Path) -> None:
    flat_pred, flat_gt = tmp_path / "mine", tmp_path / "gt"
    for clip in ("clipA", "clipB"):
        flat_pred.mkdir(exist_ok=True), flat_gt.mkdir(exist_ok=True)
        (flat_pred / f"{clip}.mp4").write_bytes((bench / clip / "Good.mp4").read_bytes())
        (flat_gt / f"{clip}.mp4").write_bytes((bench / clip / "GT.mp4").read_bytes())
    rows = rows_by(E.evaluate([flat_pred], [flat_gt]))
    assert rows["clipA", "mine"]["psnr"] > 35
    noref = E.evaluate([flat_pred], None)
    assert all(r["psnr"] is None and r["ewarp_flow"] == "self" and r["ewarp"] >= 0
               for r in noref if r["clip"] != "mean")
    with pytest.raises(InputError):
        E.evaluate([flat_pred], [bench / "clipA" / "GT.mp4", bench / "clipB" / "GT.mp4",
                                 tmp_path / "missing.mp4"])


def test_eval_cli_json_and_markdown(bench: Path, capsys) -> None:
    parser = argparse.ArgumentParser()
    eval_command.register(parser.add_subparsers())
    args = parser.parse_args(["eval", "--pred", str(bench / "clipB" / "Flicker.mp4"),
                              str(bench / "clipB" / "Good.mp4"),
                              "--gt", str(bench / "clipB" / "GT.mp4"), "--json"])
    assert args.func(args) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["method"] for r in rows] == ["Flicker", "Good", "GT"]
    args = parser.parse_args(["eval", "--pred", str(bench / "clipB" / "Good.mp4"), "--markdown"])
    assert args.func(args) == 0
    table = capsys.readouterr().out
    assert table.startswith("| clip | method |") and "PSNR" not in table


@pytest.mark.skipif(not (DATA / "benchmark" / "paired" / "HDTF_1").is_dir(),
                    reason="shared benchmark data not present")
def test_published_dvface_clip_scores_sensibly() -> None:
    clip = DATA / "benchmark" / "paired" / "HDTF_1"
    row = E.evaluate([clip / "DVFace.mp4"], [clip / "GT.mp4"])[0]
    assert 25 < row["psnr"] < 45 and 0.7 < row["ssim"] < 1 and abs(row["offset"]) <= 2


def test_eval_with_landmark_model(bench: Path, tmp_path: Path) -> None:
    models = E.FaceModels(landmarks=M.OnnxFaceModel(
        M.OnnxSpec(_onnx_model(tmp_path / "lm.onnx", True), 0.0, 255.0, "unit")))
    clip = bench / "clipA"
    good, flick = E.evaluate([clip / "Good.mp4", clip / "Flicker.mp4"], [clip / "GT.mp4"],
                             models=models)[:2]
    assert "akd" not in good["omitted"] and "identity" in good["omitted"]
    assert good["akd"] < flick["akd"]
