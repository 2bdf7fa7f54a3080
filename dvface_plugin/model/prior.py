"""The dual-codebook prior encoder: spatial and temporal codes predicted from the LQ latent.

Two branches read the frozen VAE's normalised LQ latent z (B, 16, T', h, w), one token per
`patch_size` x `patch_size` latent pixels:

* spatial:  patch embed -> conv-act-conv local enhancement (residual) -> T_s -> indices -> C_s -> f_s
* temporal: patch embed -> attention across frames + (h_t - h_{t-1}) -> T_t -> indices -> C_t -> f_t

The branch stems (everything before T_s / T_t) double as the HQ encoder of the codebook stage,
and T_s / T_t learn in the code-prediction stage to predict the HQ codes from LQ input; the
training code uses `branch_features` and `predict_logits` for that. At inference the features
are codebook rows chosen by argmax, so they come from a clean, finite prior whatever the input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import PriorConfig


@dataclass
class PriorFeatures:
    """f_s and f_t of one clip: (B, T', N, c) codebook rows on a (grid_h, grid_w) token grid."""

    f_s: torch.Tensor
    f_t: torch.Tensor
    grid: tuple[int, int]

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.f_s, self.f_t))

    def to(self, *args, **kwargs) -> "PriorFeatures":
        return PriorFeatures(self.f_s.to(*args, **kwargs), self.f_t.to(*args, **kwargs), self.grid)


class Codebook(nn.Module):
    """K learned codes of width c; `lookup` is the only way features leave the prior encoder."""

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(size, dim) / math.sqrt(dim))

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        return F.embedding(indices, self.weight)

    def nearest(self, features: torch.Tensor) -> torch.Tensor:
        """Index of the closest code (squared L2) for each feature vector (vector quantisation)."""
        flat = features.reshape(-1, features.shape[-1])
        dist = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ self.weight.t() + self.weight.pow(2).sum(1)
        return dist.argmin(1).reshape(features.shape[:-1])


def sincos_2d(grid_h: int, grid_w: int, dim: int, device=None, dtype=None) -> torch.Tensor:
    """Fixed 2D sine-cosine position table (grid_h * grid_w, dim): no parameters, any grid size."""
    quarter = dim // 4
    freq = 1.0 / (10000 ** (torch.arange(quarter, device=device, dtype=torch.float32) / quarter))
    ys, xs = torch.meshgrid(
        torch.arange(grid_h, device=device, dtype=torch.float32),
        torch.arange(grid_w, device=device, dtype=torch.float32),
        indexing="ij",
    )
    parts = []
    for coord in (ys.flatten(), xs.flatten()):
        angle = coord[:, None] * freq[None]
        parts += [angle.sin(), angle.cos()]
    table = torch.cat(parts, dim=1)
    table = F.pad(table, (0, dim - table.shape[1]))
    return table.to(dtype) if dtype is not None else table


class CodePredictor(nn.Module):
    """T_s / T_t: a pre-norm transformer over one frame's tokens that outputs code logits."""

    def __init__(self, dim: int, layers: int, heads: int, codebook_size: int) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(
            dim, heads, dim_feedforward=4 * dim, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, codebook_size)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.blocks(tokens)))


class PriorEncoder(nn.Module):
    def __init__(self, cfg: PriorConfig, latent_channels: int) -> None:
        super().__init__()
        c, p = cfg.code_dim, cfg.patch_size
        self.cfg = cfg
        # spatial branch stem: patch embed + "enhance local" conv-act-conv
        self.spatial_embed = nn.Conv2d(latent_channels, c, p, stride=p)
        self.spatial_enhance = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.GELU(), nn.Conv2d(c, c, 3, padding=1))
        # temporal branch stem: patch embed + attention across frames (per token position)
        self.temporal_embed = nn.Conv2d(latent_channels, c, p, stride=p)
        frame_attn = nn.TransformerEncoderLayer(
            c, cfg.num_heads, dim_feedforward=2 * c, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.temporal_attn = nn.TransformerEncoder(frame_attn, cfg.temporal_layers, enable_nested_tensor=False)
        self.predict_s = CodePredictor(c, cfg.num_layers, cfg.num_heads, cfg.codebook_size)
        self.predict_t = CodePredictor(c, cfg.num_layers, cfg.num_heads, cfg.codebook_size)
        self.codebook_s = Codebook(cfg.codebook_size, c)
        self.codebook_t = Codebook(cfg.codebook_size, c)

    def _embed(self, conv: nn.Conv2d, z: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        b, _, t, h, w = z.shape
        x = conv(z.transpose(1, 2).flatten(0, 1))  # (B*T', c, gh, gw)
        return x, x.shape[-2], x.shape[-1]

    def branch_features(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
        """Continuous spatial and temporal features (B, T', N, c) before code prediction."""
        b, t = z.shape[0], z.shape[2]
        xs, gh, gw = self._embed(self.spatial_embed, z)
        xs = xs + self.spatial_enhance(xs)
        h_s = xs.flatten(2).transpose(1, 2).reshape(b, t, gh * gw, -1)

        xt, _, _ = self._embed(self.temporal_embed, z)
        xt = xt.flatten(2).transpose(1, 2).reshape(b, t, gh * gw, -1)
        frame_pos = sincos_2d(t, 1, xt.shape[-1], xt.device, xt.dtype)  # (T', c): frame order
        seq = (xt + frame_pos[None, :, None]).permute(0, 2, 1, 3).flatten(0, 1)  # (B*N, T', c)
        attended = self.temporal_attn(seq).reshape(b, gh * gw, t, -1).permute(0, 2, 1, 3)
        previous = torch.cat([xt[:, :1], xt[:, :-1]], dim=1)  # frame 0 differences with itself
        h_t = attended + (xt - previous)
        return h_s, h_t, (gh, gw)

    def predict_logits(self, h_s: torch.Tensor, h_t: torch.Tensor, grid: tuple[int, int]):
        """Code logits (B, T', N, K) of both branches, each transformer attending within a frame."""
        b, t, n, c = h_s.shape
        pos = sincos_2d(*grid, c, h_s.device, h_s.dtype)
        logits_s = self.predict_s((h_s.reshape(b * t, n, c) + pos)).reshape(b, t, n, -1)
        logits_t = self.predict_t((h_t.reshape(b * t, n, c) + pos)).reshape(b, t, n, -1)
        return logits_s, logits_t

    def forward(self, z: torch.Tensor) -> PriorFeatures:
        h_s, h_t, grid = self.branch_features(z)
        logits_s, logits_t = self.predict_logits(h_s, h_t, grid)
        f_s = self.codebook_s.lookup(logits_s.argmax(-1))
        f_t = self.codebook_t.lookup(logits_t.argmax(-1))
        return PriorFeatures(f_s, f_t, grid)
