"""ASTF, asymmetric spatio-temporal fusion: how the priors enter the DiT, before every block.

* temporal prior, global: per-frame (gamma, beta) = ZeroMLP(mean over tokens of f_t), applied as
  x = (1 + s * gamma) * x + s * beta to all tokens of that frame. One modulation per frame steers
  the whole clip the same way, which is what keeps identity and tone steady over time.
* spatial prior, local: x = x + s * ZeroLinear(CrossAttn(q, f_s)), attention restricted to the
  same frame's f_s tokens, computed at the reduced width c and projected up to the DiT width.

`s` is `prior_scale`. The last layers of both paths start at zero, so a fresh ASTF is the identity
and a fresh DVFace equals its backbone; `prior_scale = 0` gives the backbone alone at any time.

The query of the cross-attention comes from the DiT tokens (`query_source="hidden"`, default, the
usual reading) or from f_t (`"prior_t"`, the figure's drawing); in the latter case the result
lives on the prior grid and is repeated up to the DiT grid.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import FusionConfig


def zero_linear(in_features: int, out_features: int) -> nn.Linear:
    layer = nn.Linear(in_features, out_features)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class ASTF(nn.Module):
    def __init__(self, hidden_dim: int, code_dim: int, cfg: FusionConfig) -> None:
        super().__init__()
        self.query_source = cfg.query_source
        self.heads = cfg.num_heads
        self.modulation = nn.Sequential(nn.Linear(code_dim, code_dim), nn.SiLU(), zero_linear(code_dim, 2 * hidden_dim))
        query_dim = hidden_dim if cfg.query_source == "hidden" else code_dim
        self.query_norm = nn.LayerNorm(query_dim, elementwise_affine=False)
        self.to_q = nn.Linear(query_dim, code_dim)
        self.to_k = nn.Linear(code_dim, code_dim)
        self.to_v = nn.Linear(code_dim, code_dim)
        self.to_out = zero_linear(code_dim, hidden_dim)

    def forward(
        self,
        x: torch.Tensor,
        f_s: torch.Tensor,
        f_t: torch.Tensor,
        dit_grid: tuple[int, int],
        prior_grid: tuple[int, int],
        prior_scale: float,
    ) -> torch.Tensor:
        """x: DiT tokens (B, T' * gh * gw, D) in frame-major order; f_s, f_t: (B, T', N, c)."""
        b, t, n, c = f_s.shape
        frames = x.view(b, t, -1, x.shape[-1])

        gamma, beta = self.modulation(f_t.mean(dim=2)).to(x.dtype).chunk(2, dim=-1)  # (B, T', D) each
        frames = frames * (1 + prior_scale * gamma[:, :, None]) + prior_scale * beta[:, :, None]

        query_in = frames if self.query_source == "hidden" else f_t.to(x.dtype)
        q = self.to_q(self.query_norm(query_in)).flatten(0, 1)  # (B*T', Lq, c)
        k = self.to_k(f_s.to(x.dtype)).flatten(0, 1)
        v = self.to_v(f_s.to(x.dtype)).flatten(0, 1)
        q, k, v = (u.unflatten(-1, (self.heads, -1)).transpose(1, 2) for u in (q, k, v))
        attended = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).flatten(2)
        update = self.to_out(attended)  # (B*T', Lq, D)
        if self.query_source == "prior_t":
            update = _upsample_tokens(update, prior_grid, dit_grid)
        frames = frames + prior_scale * update.view_as(frames)
        return frames.reshape_as(x)


def _upsample_tokens(tokens: torch.Tensor, src: tuple[int, int], dst: tuple[int, int]) -> torch.Tensor:
    """Nearest repeat of a (N, src_h*src_w, D) token grid to (N, dst_h*dst_w, D)."""
    n, _, d = tokens.shape
    grid = tokens.transpose(1, 2).reshape(n, d, *src)
    grid = F.interpolate(grid, size=dst, mode="nearest")
    return grid.flatten(2).transpose(1, 2)
