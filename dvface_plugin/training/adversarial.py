"""The adversarial objective [ours]: a patch discriminator trained from scratch against the restorer.

L1-type losses reward the average of every face the input could be, which is a soft face. A
discriminator that tells restored patches from real ones pushes the restorer towards outputs with
the texture real faces have. Ours judges each frame together with its difference to the previous
frame, so detail that shimmers from frame to frame looks fake too. Spectral normalisation keeps it
Lipschitz (stable without a gradient penalty's double backward), the hinge loss keeps its outputs
bounded, and it needs no pretrained weights.

The discriminator and its optimiser belong to `Adversary`, which the trainer owns: the stage's
optimiser, checkpoint weights and DDP wrapper only ever see the restorer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


@dataclass
class DiscriminatorConfig:
    channels: int = 32  # width of the first layer; doubles at each stride-2 layer
    layers: int = 3  # stride-2 layers: a 3-layer critic scores patches of about 38 px
    lr: float = 2e-4
    temporal: bool = True  # also show it the frame-to-frame difference


def _frames_with_motion(clip: torch.Tensor, temporal: bool) -> torch.Tensor:
    """(B, 3, T, H, W) -> (B*T, 3 or 6, H, W): each frame, and its change from the frame before."""
    frames = clip.transpose(1, 2).flatten(0, 1)
    if not temporal:
        return frames
    diff = torch.cat([torch.zeros_like(clip[:, :, :1]), clip.diff(dim=2)], dim=2)
    return torch.cat([frames, diff.transpose(1, 2).flatten(0, 1)], dim=1)


class PatchDiscriminator(nn.Module):
    """A fully convolutional critic: one real/fake score per patch of each frame."""

    def __init__(self, cfg: DiscriminatorConfig) -> None:
        super().__init__()
        self.temporal = cfg.temporal
        c_in, c, layers = 6 if cfg.temporal else 3, cfg.channels, []
        for i in range(cfg.layers):
            c_out = cfg.channels * 2**i
            layers += [spectral_norm(nn.Conv2d(c_in if i == 0 else c, c_out, 4, stride=2, padding=1)),
                       nn.LeakyReLU(0.2)]
            c = c_out
        layers += [spectral_norm(nn.Conv2d(c, c, 3, padding=1)), nn.LeakyReLU(0.2),
                   spectral_norm(nn.Conv2d(c, 1, 3, padding=1))]
        self.net = nn.Sequential(*layers)

    def forward(self, clip: torch.Tensor) -> torch.Tensor:
        return self.net(_frames_with_motion(clip, self.temporal))


def discriminator_hinge_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    return F.relu(1 - real_scores).mean() + F.relu(1 + fake_scores).mean()


def generator_hinge_loss(fake_scores: torch.Tensor) -> torch.Tensor:
    return -fake_scores.mean()


class Adversary:
    """The discriminator, its optimiser and its update, kept apart from the restorer's."""

    def __init__(self, cfg: DiscriminatorConfig, device: torch.device, distributed: bool = False) -> None:
        self.net = PatchDiscriminator(cfg).to(device)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
        # only the discriminator's own step goes through DDP; the generator's pass uses the bare module
        self.wrapped = (torch.nn.parallel.DistributedDataParallel(
            self.net, device_ids=[device.index] if device.type == "cuda" else None) if distributed else self.net)

    def generator_loss(self, fake: torch.Tensor) -> torch.Tensor:
        """The restorer's adversarial term; gradients reach the restorer only."""
        self.net.requires_grad_(False)
        try:
            return generator_hinge_loss(self.net(fake))
        finally:
            self.net.requires_grad_(True)

    def step(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """One discriminator update on a detached restored batch and its ground truth."""
        scores = self.wrapped(torch.cat([real, fake.detach()]))
        real_scores, fake_scores = scores.chunk(2)
        loss = discriminator_hinge_loss(real_scores, fake_scores)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def state_dict(self) -> dict:
        return {"net": self.net.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
