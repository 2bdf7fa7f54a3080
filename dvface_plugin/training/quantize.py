"""Vector quantisation for the codebook stage: straight-through codes, a usage regulariser and
dead-code restarts, the two standard defences against codebook collapse."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..model.prior import Codebook


def quantise(features: torch.Tensor, codebook: Codebook, beta: float = 0.25):
    """Nearest codes with a straight-through gradient.

    Returns (quantised features for the decoder, codebook + commitment loss, indices).
    """
    indices = codebook.nearest(features.detach())
    codes = codebook.lookup(indices)
    loss = F.mse_loss(codes, features.detach()) + beta * F.mse_loss(features, codes.detach())
    return features + (codes - features).detach(), loss, indices


def usage_loss(features: torch.Tensor, codebook: Codebook, temperature: float = 1.0) -> torch.Tensor:
    """1 - normalised entropy of the batch's mean soft assignment: 0 when every code is used evenly."""
    flat = features.reshape(-1, features.shape[-1])
    dist = torch.cdist(flat, codebook.weight)
    mean_prob = torch.softmax(-dist / temperature, dim=1).mean(0)
    entropy = -(mean_prob * (mean_prob + 1e-10).log()).sum()
    return 1 - entropy / torch.log(torch.tensor(float(codebook.weight.shape[0])))


class DeadCodeReviver:
    """Tracks an exponential moving average of code usage and re-seeds codes that fell idle
    with feature vectors from the current batch (so they land where the data is)."""

    def __init__(self, size: int, decay: float = 0.99, threshold: float = 1e-3) -> None:
        self.usage = torch.full((size,), 1.0 / size)
        self.decay = decay
        self.threshold = threshold

    def update(self, indices: torch.Tensor) -> None:
        counts = torch.bincount(indices.flatten().cpu(), minlength=self.usage.numel()).float()
        self.usage.mul_(self.decay).add_((1 - self.decay) * counts / counts.sum())

    @torch.no_grad()
    def revive(self, codebook: Codebook, features: torch.Tensor, generator: torch.Generator) -> int:
        """Replace dead codes; returns how many were replaced. Same generator state, same choice."""
        dead = (self.usage < self.threshold).nonzero().flatten()
        if dead.numel() == 0:
            return 0
        flat = features.detach().reshape(-1, features.shape[-1])
        pick = torch.randint(0, flat.shape[0], (dead.numel(),), generator=generator)
        codebook.weight.data[dead.to(codebook.weight.device)] = flat[pick.to(flat.device)].to(codebook.weight.dtype)
        self.usage[dead] = 1.0 / self.usage.numel()
        return int(dead.numel())
