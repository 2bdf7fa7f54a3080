"""Export the tiny random model the VapourSynth tests run on (needs torch: run it in the 3.11 venv).

    /work/main/.venv/bin/python vapoursynth_filter/tests/make_fixture_model.py OUT_FOLDER

Writes OUT_FOLDER/config.json + dvface.safetensors (the model folder) and OUT_FOLDER/onnx/ (its
export, the layout `ensure_onnx` finds without torch). The tiny preset at a 64 px crop and 5-frame
windows keeps a window at a fraction of a second on two CPU cores. ASTF starts at zero, which
would leave the priors out of the output, so the fusion weights are moved off zero as in the backend's tests.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import torch

from dvface_plugin.model.config import DVFaceConfig
from dvface_plugin.model.dvface import DVFace
from dvface_plugin.runtime.onnx_export import export_model_folder

FRAMES, SIZE = 5, 64


def main(out: Path) -> None:
    torch.manual_seed(0)
    config = dataclasses.replace(DVFaceConfig.preset("tiny"), crop_size=SIZE, window=FRAMES, overlap=1)
    model = DVFace(config).eval()
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in model.fusion.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.5)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    export_model_folder(out, out / "onnx", frames=FRAMES, size=SIZE)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
