"""The bundled default model (models/dvface-tiny, with its shipped ONNX export) in the torch-free
VapourSynth environment: `vsdvface.restore(clip)` with no model argument restores the face and
leaves frames without a face untouched."""

from __future__ import annotations

import importlib.util

import numpy as np

import vsdvface
from conftest import make_frames, planes, rgb24_clip


def test_restore_without_a_model_argument_uses_the_bundled_model(monkeypatch):
    assert importlib.util.find_spec("torch") is None  # the shipped ONNX export is all it needs
    monkeypatch.delenv("DVFACE_MODEL", raising=False)
    frames = make_frames(length=6, face_frames=4)
    clip = rgb24_clip(frames)
    out = vsdvface.restore(clip)
    assert (out.format.id, out.width, out.height, out.num_frames) == (clip.format.id, clip.width, clip.height, 6)
    for n in range(6):
        frame = out.get_frame(n)
        got = np.stack(planes(frame), axis=-1)
        if n < 4:
            assert frame.props["DVFaceCount"] == 1
            assert not np.array_equal(got, frames[n])  # the face was restored and pasted back
        else:
            assert frame.props["DVFaceCount"] == 0 and np.array_equal(got, frames[n])
