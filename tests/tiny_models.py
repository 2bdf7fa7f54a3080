"""The small random models the tests restore with: the `tiny` architecture at a reduced crop."""

from __future__ import annotations

from pathlib import Path

import torch

from dvface_plugin.model.config import DVFaceConfig
from dvface_plugin.model.dvface import DVFace


def save_tiny(folder: Path, crop_size: int, *, window: int | None = None, overlap: int | None = None,
              perturb_astf: bool = False) -> Path:
    """Save a seeded tiny-preset model; `perturb_astf` moves ASTF off its zero init so `prior_scale` matters."""
    torch.manual_seed(0)
    config = DVFaceConfig.preset("tiny")
    config.crop_size = crop_size  # the preset's 512 px crop costs seconds a window on two CPU cores
    if window is not None:
        config.window, config.overlap = window, overlap if overlap is not None else config.overlap
    model = DVFace(config).eval()
    if perturb_astf:
        g = torch.Generator().manual_seed(7)
        with torch.no_grad():
            for p in model.fusion.parameters():
                p.add_(torch.randn(p.shape, generator=g) * 0.5)
    model.save_pretrained(folder)
    return Path(folder)
