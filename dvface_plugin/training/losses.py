"""Training losses: L_rec, L_per, L_temp, L_detail and the stripe penalty of the restoration stage,
plus the VAE's KL term.

Clips are (B, 3, T, H, W) in [-1, 1].
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..metrics import STRIPE_BAND
from ..model.weights import check_state_dict, read_safetensors


def reconstruction_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1: sharper than MSE for faces and less dominated by a few outlier pixels."""
    return (pred - target).abs().mean()


def temporal_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L1 between adjacent-frame differences: penalises flicker the ground truth does not have."""
    if pred.shape[2] < 2:
        return pred.new_zeros(())
    return ((pred[:, :, 1:] - pred[:, :, :-1]) - (target[:, :, 1:] - target[:, :, :-1])).abs().mean()


_LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def laplacian(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> its 3x3 Laplacian per channel (reflect padding), the detail the eye sees."""
    kernel = _LAPLACIAN.to(x).expand(x.shape[1], 1, 3, 3)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), kernel, groups=x.shape[1])


def detail_energy_loss(pred: torch.Tensor, target: torch.Tensor, window: int = 8) -> torch.Tensor:
    """L1 between the local RMS of the Laplacian of output and ground truth, over `window` px cells.

    Pixel losses are minimised by averaging the plausible faces, so under uncertainty they pay the
    restorer to blur. This one compares how much fine detail each cell holds, not where each edge
    lies, so it asks for the ground truth's sharpness without asking to guess its exact texture.
    """
    a, b = laplacian(_frames(pred)), laplacian(_frames(target))
    energy_a = F.avg_pool2d(a.pow(2), window, ceil_mode=True).add(1e-6).sqrt()
    energy_b = F.avg_pool2d(b.pow(2), window, ceil_mode=True).add(1e-6).sqrt()
    return (energy_a - energy_b).abs().mean()


def temporal_detail_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """`temporal_loss` on the Laplacian: fine detail that changes from frame to frame where the
    ground truth's does not. The plain temporal loss is ruled by the low band, so a refiner can
    invent fresh texture every frame (shimmer, a higher warping error) at almost no cost there."""
    if pred.shape[2] < 2:
        return pred.new_zeros(())
    return temporal_loss(_high_band(pred), _high_band(target))


def _high_band(clip: torch.Tensor) -> torch.Tensor:
    """(B, C, T, H, W) -> the Laplacian of every frame, same shape."""
    b, _, t = clip.shape[:3]
    return laplacian(_frames(clip)).unflatten(0, (b, t)).transpose(1, 2)


def stripe_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """High-band power on the two frequency axes above the ground truth's, over the truth's whole
    high band (per frame, Hann-windowed, channels averaged): the horizontal and vertical stripe
    lattice a generator paints where its input holds no detail. The detail and adversarial losses
    both reward that lattice; this term does not (`metrics.stripe_share` measures it)."""
    a, b = _frames(pred).mean(1), _frames(target).mean(1)  # (N, H, W)
    h, w = a.shape[-2:]
    window = torch.outer(torch.hann_window(h, periodic=False, dtype=a.dtype, device=a.device),
                         torch.hann_window(w, periodic=False, dtype=a.dtype, device=a.device))
    power = [torch.fft.fft2((x - x.mean((-2, -1), keepdim=True)) * window).abs().pow(2) for x in (a, b)]
    fy = torch.fft.fftfreq(h, device=a.device)[:, None].abs()
    fx = torch.fft.fftfreq(w, device=a.device)[None, :].abs()
    high = torch.hypot(fy, fx) > STRIPE_BAND
    axes = high & ((fy <= 1 / h) | (fx <= 1 / w))
    excess = (power[0] * axes).sum((-2, -1)) - (power[1] * axes).sum((-2, -1))
    return (F.relu(excess) / ((power[1] * high).sum((-2, -1)) + 1e-6)).mean()


def kl_loss(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).mean()


def _frames(x: torch.Tensor) -> torch.Tensor:
    return x.transpose(1, 2).flatten(0, 1)  # (B*T, 3, H, W)


class PyramidLoss(nn.Module):
    """The weight-free stand-in for LPIPS/DISTS: L1 of Laplacian-pyramid bands and image gradients.

    Band-pass and gradient differences weigh edges and texture, which plain L1 under-weights, and
    need no downloaded network. It is not a learned perceptual metric; with user-supplied VGG16
    weights `VGGFeatureLoss` is used instead.
    """

    def __init__(self, levels: int = 4) -> None:
        super().__init__()
        self.levels = levels

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        a, b = _frames(pred), _frames(target)
        loss = a.new_zeros(())
        for _ in range(self.levels):
            if min(a.shape[-2:]) < 4:
                break
            a_low, b_low = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
            band_a = a - F.interpolate(a_low, size=a.shape[-2:], mode="bilinear", align_corners=False)
            band_b = b - F.interpolate(b_low, size=b.shape[-2:], mode="bilinear", align_corners=False)
            loss = loss + (band_a - band_b).abs().mean()
            for dim in (-1, -2):
                loss = loss + (a.diff(dim=dim) - b.diff(dim=dim)).abs().mean()
            a, b = a_low, b_low
        return loss


VGG16_LAYERS = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512]
VGG16_TAPS = (3, 8, 15, 22)  # indices in `features` after relu1_2, relu2_2, relu3_3, relu4_3


class VGGFeatureLoss(nn.Module):
    """LPIPS-style feature distance with VGG16 weights the user supplies as safetensors.

    The file uses torchvision's key names (`features.<i>.weight/bias`); convert once with
    `safetensors.torch.save_file(vgg16().features.state_dict() prefixed by 'features.')`.
    """

    def __init__(self, weights: str | Path) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for item in VGG16_LAYERS:
            if item == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(channels, item, 3, padding=1), nn.ReLU()]
                channels = item
        self.features = nn.Sequential(*layers)
        tensors = read_safetensors(Path(weights))
        tensors = {k: v for k, v in tensors.items() if k.startswith("features.") and int(k.split(".")[1]) < len(layers)}
        check_state_dict(self.state_dict(), tensors, str(weights))
        self.load_state_dict(tensors)
        self.requires_grad_(False)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        x = ((torch.cat([_frames(pred), _frames(target)]) + 1) / 2 - self.mean) / self.std
        loss = x.new_zeros(())
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in VGG16_TAPS:
                fa, fb = x.chunk(2)
                fa = fa / (fa.norm(dim=1, keepdim=True) + 1e-8)
                fb = fb / (fb.norm(dim=1, keepdim=True) + 1e-8)
                loss = loss + (fa - fb).pow(2).sum(1).mean()
            if i >= VGG16_TAPS[-1]:
                break
        return loss


def perceptual_loss(weights: str | Path | None) -> nn.Module:
    return VGGFeatureLoss(weights) if weights else PyramidLoss()
