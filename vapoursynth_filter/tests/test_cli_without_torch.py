"""`dvface restore --backend ort` in this environment, which has no torch at all (Python 3.12)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

from conftest import FACE_FRAMES, make_frames
from dvface_plugin.media import MediaWriter, open_media


def test_this_environment_really_has_no_torch():
    assert importlib.util.find_spec("torch") is None
    assert importlib.util.find_spec("diffusers") is None


@pytest.mark.parametrize("aligned", [True, False], ids=["aligned", "whole-frame"])
def test_dvface_restore_runs_on_onnxruntime(model_dir, tmp_path, aligned):
    frames = make_frames()
    if aligned:
        frames = [np.ascontiguousarray(f[:64, :64]) for f in frames]
    src, out = tmp_path / "in.mkv", tmp_path / "out.mkv"
    with MediaWriter(src, Fraction(24000, 1001), width=frames[0].shape[1], height=frames[0].shape[0]) as w:
        for frame in frames:
            w.write(frame)
    dvface = shutil.which("dvface") or str((sys.executable.rsplit("/", 1)[0]) + "/dvface")
    cmd = [dvface, "restore", str(src), "-o", str(out), "--model", str(model_dir), "--backend", "ort", "--quiet"]
    result = subprocess.run(cmd + (["--aligned"] if aligned else ["--no-cache"]), capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    with open_media(out) as restored:
        assert restored.fps == Fraction(24000, 1001)
        got = np.stack(list(restored))
    assert got.shape == np.stack(frames).shape
    assert not np.array_equal(got, np.stack(frames))
    if not aligned:  # frames without a face come out exactly as they went in
        assert all(np.array_equal(got[n], frames[n]) for n in range(FACE_FRAMES, len(frames)))
