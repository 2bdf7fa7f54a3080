"""The detail refiner [ours]: a small pixel-space CNN that cleans the `detail_skip` residual.

With `detail_skip` the output is D(z_hat) + r, r = x_lq - D(z_lq): everything the VAE cannot
represent passes through from the input untouched, noise and codec artefacts included. A small
VAE (the tiny preset reconstructs faces at about 26 dB) leaves most of a face's fine structure,
and so most of what degraded it, in r, where the latent restoration cannot reach. The refiner sees
D(z_hat) and r for each frame and its two neighbours and predicts a correction:

    x_hat = D(z_hat) + r + refiner(D(z_hat), r)

It works at 1/`unshuffle` resolution on pixel-unshuffled channels (cheaper on a CPU, a wider
receptive field, no information lost), and its last layer starts at zero, so a fresh refiner
changes nothing and can be added to a trained model. Keep `channels` well above the 3 x
`unshuffle`^2 values each position outputs: on Gaussian noise, 48 channels at 1/4 resolution
(48 outputs) learned +3.2 dB in 600 steps, 32 at 1/2 (12 outputs) +7.0 dB
(benchmarks/refiner_capacity.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import RefinerConfig


class _ResBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class DetailRefiner(nn.Module):
    def __init__(self, cfg: RefinerConfig) -> None:
        super().__init__()
        s, c = cfg.unshuffle, cfg.channels
        self.unshuffle = s
        # frames t-1, t, t+1 (edge frames repeated): noise and codec artefacts differ between frames
        self.head = nn.Conv3d(6 * s * s, c, (3, 3, 3), padding=(0, 1, 1))
        self.body = nn.Sequential(*(_ResBlock(c) for _ in range(cfg.blocks)))
        self.tail = nn.Conv2d(c, 3 * s * s, 3, padding=1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)

    def forward(self, decoded: torch.Tensor, detail: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) D(z_hat) and r, H and W multiples of `unshuffle` -> the correction to add."""
        b, _, t, h, w = decoded.shape
        s = self.unshuffle
        x = torch.cat([decoded, detail], dim=1).transpose(1, 2).reshape(b * t, 6, h, w)
        x = F.pixel_unshuffle(x, s)
        x = x.reshape(b, t, -1, h // s, w // s).transpose(1, 2)
        x = torch.cat([x[:, :, :1], x, x[:, :, -1:]], dim=2)
        x = F.relu(self.head(x)).transpose(1, 2).reshape(b * t, -1, h // s, w // s)
        x = F.pixel_shuffle(self.tail(self.body(x)), s)
        return x.reshape(b, t, 3, h, w).transpose(1, 2)
