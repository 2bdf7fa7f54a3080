"""The five training stages. Each is an nn.Module whose forward maps an (LQ, HQ) batch (for
`refine`, (cached restoration, HQ)) to a dict of named losses with a "total"; it freezes
everything it does not train, so the optimiser and DDP only ever see the stage's own parameters.

    vae       the tiny preset's VAE from scratch (the Wan2.1 preset uses Wan's pretrained VAE)
    codebook  HQ clips: branch stems + C_s, C_t learn to quantise and reconstruct the HQ latent
    predict   LQ clips: stems + T_s, T_t learn to predict the HQ codes (cross-entropy); codebooks frozen
    restore   LQ clips: ASTF + DiT (+ the refiner) learn the one-step restoration; L_rec + L_per + L_temp
              (+ L_detail, the temporal detail term, the stripe penalty and the adversarial term where
              their weights are set)
    refine    only the detail refiner learns, on the frozen restoration's (D(z_hat), r), computed once
              per clip by a RestorationCache; same losses, a small fraction of a restore step's cost
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from ..model.dvface import DVFace
from ..model.prior import PriorEncoder
from . import STAGES
from .adversarial import Adversary
from .losses import (
    detail_energy_loss,
    kl_loss,
    laplacian,
    perceptual_loss,
    reconstruction_loss,
    stripe_loss,
    temporal_detail_loss,
    temporal_loss,
)
from .quantize import DeadCodeReviver, quantise, usage_loss


def _train_only(model: nn.Module, *trainable: nn.Module) -> None:
    model.requires_grad_(False)
    for module in trainable:
        module.requires_grad_(True)


class VAEStage(nn.Module):
    def __init__(self, model: DVFace, weights: dict, perceptual: str | None) -> None:
        super().__init__()
        self.model, self.w = model, weights
        self.per = perceptual_loss(perceptual)
        _train_only(model, model.backbone.vae)

    def forward(self, lq: torch.Tensor, hq: torch.Tensor) -> dict[str, torch.Tensor]:
        posterior = self.model.backbone.vae.encode(hq).latent_dist
        recon = self.model.backbone.vae.decode(posterior.sample()).sample
        losses = {
            "rec": reconstruction_loss(recon, hq),
            "per": self.per(recon, hq),
            "kl": kl_loss(posterior.mean, posterior.logvar),
        }
        losses["total"] = losses["rec"] + self.w["per"] * losses["per"] + self.w["kl"] * losses["kl"]
        return losses


class LatentHead(nn.Module):
    """Training-only decoder for the codebook stage: quantised code grids back to the HQ latent."""

    def __init__(self, code_dim: int, latent_channels: int, patch: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(2 * code_dim, code_dim, 3, padding=1),
            nn.GELU(),
            nn.ConvTranspose2d(code_dim, latent_channels, patch, stride=patch),
        )

    def forward(self, q_s: torch.Tensor, q_t: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        b, t, n, c = q_s.shape
        x = torch.cat([q_s, q_t], dim=-1).reshape(b * t, *grid, 2 * c).permute(0, 3, 1, 2)
        z = self.net(x)
        return z.reshape(b, t, *z.shape[1:]).transpose(1, 2)  # (B, C, T', h, w)


class CodebookStage(nn.Module):
    def __init__(self, model: DVFace, weights: dict) -> None:
        super().__init__()
        self.model, self.w = model, weights
        prior = model.prior
        self.head = LatentHead(prior.cfg.code_dim, model.config.vae["z_dim"], prior.cfg.patch_size)
        _train_only(model, prior.spatial_embed, prior.spatial_enhance, prior.temporal_embed, prior.temporal_attn,
                    prior.codebook_s, prior.codebook_t)
        self.revivers = {
            "s": DeadCodeReviver(prior.cfg.codebook_size),
            "t": DeadCodeReviver(prior.cfg.codebook_size),
        }
        self.last_features: dict[str, torch.Tensor] = {}

    def forward(self, lq: torch.Tensor, hq: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            z = self.model.encode(hq, with_detail=False).z
        prior = self.model.prior
        h_s, h_t, grid = prior.branch_features(z)
        q_s, vq_s, idx_s = quantise(h_s, prior.codebook_s)
        q_t, vq_t, idx_t = quantise(h_t, prior.codebook_t)
        self.revivers["s"].update(idx_s)
        self.revivers["t"].update(idx_t)
        self.last_features = {"s": h_s.detach(), "t": h_t.detach()}
        losses = {
            "rec": F.mse_loss(self.head(q_s, q_t, grid), z),
            "vq": vq_s + vq_t,
            "usage": usage_loss(h_s, prior.codebook_s) + usage_loss(h_t, prior.codebook_t),
        }
        losses["total"] = losses["rec"] + losses["vq"] + self.w["usage"] * losses["usage"]
        return losses

    def revive_dead_codes(self, generator: torch.Generator) -> int:
        books = {"s": self.model.prior.codebook_s, "t": self.model.prior.codebook_t}
        return sum(self.revivers[k].revive(books[k], self.last_features[k], generator) for k in books)


class PredictStage(nn.Module):
    def __init__(self, model: DVFace, weights: dict) -> None:
        super().__init__()
        self.model, self.w = model, weights
        # the codebook stage's stems, frozen, define the target codes of each HQ clip
        self.teacher: PriorEncoder = copy.deepcopy(model.prior).requires_grad_(False)
        prior = model.prior
        _train_only(model, prior.spatial_embed, prior.spatial_enhance, prior.temporal_embed, prior.temporal_attn,
                    prior.predict_s, prior.predict_t)

    def forward(self, lq: torch.Tensor, hq: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            z_lq, z_hq = self.model.encode(lq, with_detail=False).z, self.model.encode(hq, with_detail=False).z
            t_s, t_t, _ = self.teacher.branch_features(z_hq)
            target_s = self.teacher.codebook_s.nearest(t_s)
            target_t = self.teacher.codebook_t.nearest(t_t)
        prior = self.model.prior
        h_s, h_t, grid = prior.branch_features(z_lq)
        logits_s, logits_t = prior.predict_logits(h_s, h_t, grid)
        losses = {
            "ce_s": F.cross_entropy(logits_s.flatten(0, 2), target_s.flatten()),
            "ce_t": F.cross_entropy(logits_t.flatten(0, 2), target_t.flatten()),
        }
        with torch.no_grad():
            losses["acc"] = ((logits_s.argmax(-1) == target_s).float().mean() + (logits_t.argmax(-1) == target_t).float().mean()) / 2
        losses["total"] = losses["ce_s"] + losses["ce_t"]
        return losses


class RestoreStage(nn.Module):
    """L_rec + L_per + L_temp, plus L_detail (`"detail"` weight), L_temp on the Laplacian band
    (`"tdetail"`), the stripe penalty (`"stripes"`) and the adversarial term (`"adv"`, with the
    `Adversary` the trainer attaches); weights left out of a config are 0."""

    def __init__(self, model: DVFace, weights: dict, perceptual: str | None) -> None:
        super().__init__()
        self.model, self.w = model, weights
        self.per = perceptual_loss(perceptual)
        self.adversary: Adversary | None = None
        self.last_output: torch.Tensor | None = None  # the batch the adversary's own step judges
        model.requires_grad_(False)
        for p in model.trainable_parameters():
            p.requires_grad_(True)

    def forward(self, lq: torch.Tensor, hq: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            latent = self.model.encode(lq)
            priors = self.model.encode_priors(latent)
        return self.losses(self.model.restore_latent(latent, priors, prior_scale=1.0), hq)

    def losses(self, out: torch.Tensor, hq: torch.Tensor) -> dict[str, torch.Tensor]:
        weight = {k: self.w.get(k, 0.0) for k in ("per", "temp", "tdetail", "detail", "stripes", "adv")}
        zero = out.new_zeros(())
        losses = {
            "rec": reconstruction_loss(out, hq),
            # a zero weight (the refine recipe) skips its term: nothing is spent on it
            "per": self.per(out, hq) if weight["per"] else zero,
            "temp": temporal_loss(out, hq),
            "tdetail": temporal_detail_loss(out, hq) if weight["tdetail"] else zero,
            "detail": detail_energy_loss(out, hq) if weight["detail"] else zero,
            "stripes": stripe_loss(out, hq) if weight["stripes"] else zero,
            "adv": self.adversary.generator_loss(out) if weight["adv"] and self.adversary else zero,
        }
        total = losses["rec"]
        for name, w in weight.items():
            total = total + w * losses[name]
        losses["total"] = total
        with torch.no_grad():  # logged, not trained on: output's fine-detail energy over the ground truth's
            losses["sharpness"] = laplacian(out.flatten(1, 2)).pow(2).mean() / laplacian(hq.flatten(1, 2)).pow(2).mean().clamp_min(1e-12)
        self.last_output = out.detach()
        return losses


class RefineStage(RestoreStage):
    """The restore stage's losses with only the refiner trainable, on cached (D(z_hat), r) pairs."""

    def __init__(self, model: DVFace, weights: dict, perceptual: str | None) -> None:
        if model.refiner is None:
            raise InputError("the refine stage needs a model with a refiner: add one with "
                             '"init_overrides": {"refiner": {"channels": 48}} in the training config')
        super().__init__(model, weights, perceptual)
        _train_only(model, model.refiner)

    def forward(self, parts: torch.Tensor, hq: torch.Tensor) -> dict[str, torch.Tensor]:
        """`parts`: cat(D(z_hat), r) on channels, as RestorationCache serves them."""
        decoded, detail = parts.split(3, dim=1)
        return self.losses(self.model.add_detail(decoded, detail), hq)


def build_stage(name: str, model: DVFace, weights: dict, perceptual: str | None) -> nn.Module:
    if name == "vae":
        return VAEStage(model, weights, perceptual)
    if name == "codebook":
        return CodebookStage(model, weights)
    if name == "predict":
        return PredictStage(model, weights)
    if name == "restore":
        return RestoreStage(model, weights, perceptual)
    if name == "refine":
        return RefineStage(model, weights, perceptual)
    raise ValueError(f"unknown stage {name!r}; choose one of {STAGES}")
