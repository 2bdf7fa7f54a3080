"""`dvface prepare`: real detector and alignment over a synthetic clip of the astronaut's face."""

from __future__ import annotations

import json
from fractions import Fraction

import cv2
import numpy as np
import pytest
from skimage import data

from dvface_plugin.cli import main as cli_main
from dvface_plugin.media import MediaWriter
from dvface_plugin.training.data import ClipSampler, list_items


@pytest.fixture(scope="module")
def hq_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("hq")
    face = cv2.resize(data.astronaut()[0:300, 80:380], (280, 280), interpolation=cv2.INTER_AREA)
    with MediaWriter(root / "talk.mkv", Fraction(25), width=320, height=320) as writer:
        for t in range(12):
            frame = np.full((320, 320, 3), 90, np.uint8)
            frame[10 + t : 290 + t, 20 + t : 300 + t] = face  # drifts one pixel per frame
            writer.write(frame)
    cv2.imwrite(str(root / "photo.png"), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(root / "no_face.png"), np.zeros((64, 64, 3), np.uint8))
    return root


def test_prepare_writes_aligned_clips_and_photos_that_training_reads(hq_folder, tmp_path, capsys):
    out = tmp_path / "crops"
    assert cli_main(["prepare", str(hq_folder), "-o", str(out), "--size", "64", "--min-frames", "9"]) == 0
    index = json.loads((out / "index.json").read_text())
    clips = [item for item in index if item["frames"] > 1]
    photos = [item for item in index if item["frames"] == 1]
    assert len(clips) == 1 and len(photos) == 1  # the black image has no face and is skipped
    clip = np.load(out / clips[0]["file"])
    assert clip.shape == (clips[0]["frames"], 64, 64, 3) and clip.dtype == np.uint8
    assert clip.shape[0] >= 9
    # aligned: the face stays put in the crop although it moves in the frame
    drift = np.abs(clip[-1].astype(int) - clip[0]).mean()
    assert drift < 20
    sampler = ClipSampler(list_items([out]), frames=5, crop=32, degradation="light")
    lq, hq = sampler.sample(2, np.random.default_rng(0))
    assert hq.shape == (2, 3, 5, 32, 32)


def test_prepare_refuses_benchmark_folders(tmp_path, capsys):
    bench = tmp_path / "benchmark" / "paired"
    bench.mkdir(parents=True)
    assert cli_main(["prepare", str(bench), "-o", str(tmp_path / "out")]) == 2
    assert "benchmark" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
