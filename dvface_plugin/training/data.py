"""Training data: aligned HQ face clips, cut into random windows and degraded on the fly.

A data folder holds aligned clips as `.npy` arrays (T, H, W, 3) uint8 (read memory-mapped, so a
folder larger than RAM is fine) and/or aligned photos (`.png`, `.jpg`); a photo becomes a short
clip by a small random drift, so image datasets teach the same temporal behaviour as video.
The train/validation split is by clip (never by frame), decided by a hash of the file name so it
never changes when files are added.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from ..degrade import DegradationConfig, degrade_clip
from ..errors import InputError
from ..runtime.monochrome import LUMA
from ..runtime.pixels import to_model
from ..runtime.stabilise import prefilter

PHOTO_SUFFIXES = {".png", ".jpg", ".jpeg"}


def list_items(folders: list[str | Path]) -> list[Path]:
    items: list[Path] = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise InputError(f"training data folder {folder} not found")
        items += sorted(p for p in folder.rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES | {".npy"})
    if not items:
        raise InputError(f"no .npy clips or photos in {', '.join(map(str, folders))}; prepare aligned crops first")
    return items


def is_validation(path: Path, fraction: float) -> bool:
    digest = hashlib.sha256(path.stem.encode()).digest()
    return int.from_bytes(digest[:4], "little") / 2**32 < fraction


def split(items: list[Path], val_fraction: float) -> tuple[list[Path], list[Path]]:
    val = [p for p in items if is_validation(p, val_fraction)]
    train = [p for p in items if not is_validation(p, val_fraction)]
    return train, val


def photo_to_clip(image: np.ndarray, frames: int, rng: np.random.Generator, drift: float = 0.01) -> np.ndarray:
    """A still as a clip with a slow random walk in shift, scale and rotation (head-like motion)."""
    h, w = image.shape[:2]
    steps = rng.normal(0.0, 1.0, size=(frames, 4)) * [drift * w, drift * h, drift / 2, drift * 20]
    path = np.cumsum(steps, axis=0) - steps[0]
    out = np.empty((frames, h, w, 3), dtype=image.dtype)
    for i, (dx, dy, ds, angle) in enumerate(path):
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0 + ds)
        m[:, 2] += (dx, dy)
        out[i] = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return out


def load_item(path: Path) -> np.ndarray:
    """A prepared item as (T, H, W, 3) uint8: a `.npy` clip memory-mapped, a photo as one frame."""
    if path.suffix == ".npy":
        clip = np.load(path, mmap_mode="r")
        if clip.ndim != 4 or clip.shape[-1] != 3 or clip.dtype != np.uint8:
            raise InputError(f"{path}: expected a (T, H, W, 3) uint8 array, got {clip.shape} {clip.dtype}")
        return clip
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise InputError(f"{path}: cannot read image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)[None]


@dataclass
class ClipSampler:
    """Draws (LQ, HQ) batches (B, 3, frames, crop, crop) in [-1, 1] from a list of items.

    `degradation` is a preset name or a list of them; with a list each clip draws one, so a model
    learns to tell how damaged its input is (and to leave a mildly damaged one mostly alone).
    """

    items: list[Path]
    frames: int
    crop: int
    degradation: str | list[str]
    scale: float = 1.0  # resize factor applied before cropping (train on smaller faces than stored)
    prefilter: int = 0  # the model's input prefilter radius (`DVFaceConfig.prefilter`), applied to each LQ window
    grey: float = 0.0  # share of clips made black-and-white before degrading (target and input alike)

    def __post_init__(self) -> None:
        self.presets = [self.degradation] if isinstance(self.degradation, str) else list(self.degradation)
        if not self.presets:
            raise InputError("degradation: give a preset name or a non-empty list of them")
        for name in self.presets:
            DegradationConfig.preset(name)  # an unknown name fails here, before any training

    def _window(self, path: Path, rng: np.random.Generator) -> np.ndarray:
        clip = load_item(path)
        if clip.shape[0] == 1:
            image = clip[0]
            if self.scale != 1.0:
                image = cv2.resize(image, None, fx=self.scale, fy=self.scale, interpolation=cv2.INTER_AREA)
            clip = photo_to_clip(image, self.frames, rng)
        else:
            clip = np.asarray(clip[_window_indices(clip.shape[0], self.frames, rng)])
            if self.scale != 1.0:
                clip = np.stack([cv2.resize(f, None, fx=self.scale, fy=self.scale, interpolation=cv2.INTER_AREA) for f in clip])
        h, w = clip.shape[1:3]
        if min(h, w) < self.crop:
            raise InputError(f"{path}: frames {w}x{h} are smaller than the {self.crop} px training crop")
        y, x = int(rng.integers(0, h - self.crop + 1)), int(rng.integers(0, w - self.crop + 1))
        return np.ascontiguousarray(clip[:, y : y + self.crop, x : x + self.crop])

    def sample(self, batch: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        hq, lq = [], []
        for _ in range(batch):
            clip = self._window(self.items[int(rng.integers(len(self.items)))], rng)
            if self.grey and rng.random() < self.grey:  # no draw at 0: colour-only runs keep their batches
                clip = to_grey(clip)
            hq.append(clip)
            # one preset draws nothing, so single-preset runs keep the batches they always had
            preset = self.presets[int(rng.integers(len(self.presets)))] if len(self.presets) > 1 else self.presets[0]
            lq.append(to_model(degrade_clip(clip, preset, seed=int(rng.integers(2**31)))))
        if self.prefilter:
            lq = [prefilter(clip, self.prefilter) for clip in lq]
        return _to_tensor(np.stack(lq)), _to_tensor(to_model(np.stack(hq)))


def to_grey(clip: np.ndarray) -> np.ndarray:
    """A uint8 RGB clip as black-and-white film: its BT.601 luma in all three channels. Every
    training face is in colour while much archive footage is not, and on the same faces made grey
    the model added a fifth to three quarters less detail than in colour (docs/benchmarks.md,
    "Black-and-white faces"); the target is grey too, so a model learns to restore grey, never to colourise."""
    luma = np.rint(clip.astype(np.float32) @ LUMA)
    return np.repeat(luma.clip(0, 255).astype(clip.dtype)[..., None], 3, axis=-1)


def _window_indices(length: int, frames: int, rng: np.random.Generator) -> np.ndarray:
    """A random run of `frames` consecutive frames; a clip shorter than that plays forward then
    backward (a reversal is still natural motion, unlike a freeze or a jump)."""
    if length >= frames:
        start = int(rng.integers(0, length - frames + 1))
        return np.arange(start, start + frames)
    cycle = np.r_[np.arange(length), np.arange(length - 2, 0, -1)] if length > 1 else np.zeros(1, int)
    return cycle[np.arange(frames) % len(cycle)]


def _to_tensor(clips: np.ndarray) -> torch.Tensor:
    """(B, T, H, W, 3) float32 in [-1, 1] -> (B, 3, T, H, W)."""
    return torch.from_numpy(clips).permute(0, 4, 1, 2, 3)
