"""The GPU run's CPU rehearsal (benchmarks/gpu/run.py --smoke) and the pieces it carries."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
GPU = ROOT / "benchmarks" / "gpu"
sys.path.insert(0, str(GPU))

import pack  # noqa: E402


@pytest.fixture(scope="module")
def smoke(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gpu-smoke")
    proc = subprocess.run([sys.executable, str(GPU / "run.py"), "--smoke", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def test_smoke_report_has_every_section(smoke: Path) -> None:
    report = json.loads((smoke / "report.json").read_text())
    assert list(report) == ["environment", "correctness", "speed", "training"]
    assert all(body["status"] == "ok" for body in report.values()), report
    assert report["correctness"]["engine_order"]["status"] == "ok"
    assert report["correctness"]["precisions"]["fp32"]["max_err"] == 0.0  # CPU against CPU
    assert [s["stage"] for s in report["training"]["stages"]] == ["vae", "codebook", "predict", "restore", "refine"]
    assert all(s["steps"] > 0 for s in report["training"]["stages"])
    assert {"trained", "bundled", "input"} <= set(report["training"]["held_out"])
    assert "## training: ok" in (smoke / "report.md").read_text()


def test_smoke_returns_files_a_run_may_bring_back(smoke: Path) -> None:
    files = list(smoke.iterdir())
    assert len(files) <= 8
    assert all(f.stat().st_size <= 16 * 2**20 for f in files)


def test_returned_shards_merge_into_a_loadable_model(smoke: Path, tmp_path: Path) -> None:
    import torch
    import training

    from dvface_plugin.model.dvface import DVFace

    folder = training.merge_weights(smoke, tmp_path / "dvface-base")
    model = DVFace.from_pretrained(folder)
    assert model.config.name == "base"
    x = torch.rand(1, 3, 5, 64, 64) * 2 - 1
    with torch.inference_mode():
        assert model(x).shape == x.shape


def test_pack_round_trip_keeps_clips_and_photos(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    source = tmp_path / "prepared"
    source.mkdir()
    clip = np.clip(rng.normal(128, 30, (6, 80, 80, 3)), 0, 255).astype(np.uint8)
    np.save(source / "clip.npy", clip)
    import cv2

    cv2.imwrite(str(source / "photo.png"), clip[0])
    size = pack.pack(source, tmp_path / "pack", size=48, frames=4)
    assert size > 0
    assert pack.unpack(tmp_path / "pack", tmp_path / "out") == 2
    back = np.load(tmp_path / "out" / "clip.npy")
    assert back.shape == (4, 48, 48, 3) and back.dtype == np.uint8
    expected = cv2.resize(clip[2], (48, 48), interpolation=cv2.INTER_AREA).astype(float)
    assert np.abs(back[2].astype(float) - expected).mean() < 12  # JPEG, not a different frame
    assert cv2.imread(str(tmp_path / "out" / "photo.png")).shape == (48, 48, 3)


def test_pack_refuses_benchmark_media(tmp_path: Path) -> None:
    source = tmp_path / "benchmark" / "clips"
    source.mkdir(parents=True)
    assert pack.main([str(source), str(tmp_path / "pack")]) == 2
