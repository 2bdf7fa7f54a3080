"""DVFace: one-step video face restoration with dual-codebook priors in a Wan2.1 DiT.

    x_lq --pad--> VAE.encode --> z_lq ----------------------------+
                                  |                               v
                                  +--> PriorEncoder --> f_s, f_t --> ASTF before each DiT block
                                                                  v
    z_hat = z_lq - sigma_t * v(z_lq, t, empty-prompt context)  --> VAE.decode --crop--> x_hat

With `config.detail_skip` the output is D(z_hat) + (x_lq - D(z_lq)): the model only adds the change
it makes in latent space, and the detail the VAE cannot represent passes through; with a
`config.refiner` a small pixel-space CNN then cleans that detail (`refiner.py`).

The three steps are public (`encode`, `encode_priors`, `restore_latent`) so the windowed engine
can cache the latent and prior features of a window and re-run only the backbone when the user
changes `prior_scale`. The model keeps per-call state inside the diffusers VAE: serialise calls
from several threads with a lock.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from diffusers.models.transformers.transformer_wan import WanRotaryPosEmbed
from torch import nn

from ..errors import InputError, WeightsError
from .backbone import WanBackbone
from .config import DVFaceConfig
from .fusion import ASTF
from .prior import PriorEncoder, PriorFeatures
from .refiner import DetailRefiner
from .weights import WAN_DOWNLOAD_HINT, check_state_dict, read_diffusers_component, read_safetensors, write_safetensors

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "dvface.safetensors"
BACKBONE_PREFIXES = {"vae": "backbone.vae.", "transformer": "backbone.transformer."}


@dataclass
class Latent:
    """A padded clip's normalised VAE latent (B, 16, T', h, w), the size to crop the output back to,
    and with `detail_skip` the padded pixels' detail x - D(z) that the VAE did not keep."""

    z: torch.Tensor
    frames: int
    height: int
    width: int
    detail: torch.Tensor | None = None

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.z, self.detail) if t is not None)

    def to(self, *args, **kwargs) -> "Latent":
        detail = None if self.detail is None else self.detail.to(*args, **kwargs)
        return Latent(self.z.to(*args, **kwargs), self.frames, self.height, self.width, detail)


class DVFace(nn.Module):
    def __init__(self, config: DVFaceConfig, backbone: WanBackbone | None = None) -> None:
        super().__init__()
        self.config = config
        self.backbone = backbone or WanBackbone.from_config(config.vae, config.transformer)
        dit = config.transformer
        hidden = dit["num_attention_heads"] * dit["attention_head_dim"]
        self.prior = PriorEncoder(config.prior, latent_channels=config.vae["z_dim"])
        self.fusion = nn.ModuleList(
            ASTF(hidden, config.prior.code_dim, config.fusion) for _ in range(dit["num_layers"])
        )
        self.refiner = DetailRefiner(config.refiner) if config.refiner.channels else None
        # The text path sees one fixed embedding of the empty prompt instead of a text encoder.
        self.register_buffer("context", torch.zeros(1, config.context_length, dit["text_dim"]))
        self._digest: str | None = None

    # --- inference ---------------------------------------------------------------------------

    def encode(self, x: torch.Tensor, with_detail: bool = True) -> Latent:
        """Validate and pad (B, 3, T, H, W) pixels in [-1, 1] to what the VAE needs, then encode.

        `with_detail=False` skips the extra decode that `detail_skip` needs, for callers that only
        want the latent (the prior training stages).
        """
        _check_clip(x)
        b, _, frames, height, width = x.shape
        stride_t, multiple = self.config.vae_temporal_stride, self.config.spatial_multiple
        pad_t = -(frames - 1) % stride_t
        pad_h, pad_w = -height % multiple, -width % multiple
        if pad_t or pad_h or pad_w:  # repeat the last frame / edge pixels: no new content enters the window
            x = F.pad(x, (0, pad_w, 0, pad_h, 0, pad_t), mode="replicate")
        z = self.backbone.encode(x)
        detail = None
        if self.config.detail_skip and with_detail:
            detail = x.float() - self.backbone.decode(z).float()
        return Latent(z, frames, height, width, detail)

    def encode_priors(self, latent: Latent) -> PriorFeatures:
        return self.prior(latent.z.to(self._param_dtype(self.prior)))

    def denoise(self, latent: Latent, priors: PriorFeatures, prior_scale: float = 1.0) -> torch.Tensor:
        """One step: z_hat = z_lq - sigma_t * v, with the priors injected before every DiT block."""
        if not 0.0 <= prior_scale <= 1.0:
            raise ValueError(f"prior_scale must be in [0, 1], got {prior_scale}")

        def inject(i: int, tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
            return self.fusion[i](tokens, priors.f_s, priors.f_t, grid, priors.grid, prior_scale)

        velocity = self.backbone.velocity(latent.z, self.config.timestep, self.context, inject)
        return latent.z - self.config.sigma * velocity.float()

    def restore_latent(self, latent: Latent, priors: PriorFeatures, prior_scale: float = 1.0) -> torch.Tensor:
        """Restored clip (B, 3, T, H, W) in [-1, 1], cropped back to the input's size."""
        out = self.decode_restored(latent, priors, prior_scale)
        if latent.detail is not None:
            out = self.add_detail(out, latent.detail)
        return out[:, :, : latent.frames, : latent.height, : latent.width]

    def decode_restored(self, latent: Latent, priors: PriorFeatures, prior_scale: float = 1.0) -> torch.Tensor:
        """D(z_hat) in fp32 at the padded size: the restoration before the detail skip and refiner."""
        return self.backbone.decode(self.denoise(latent, priors, prior_scale)).float()

    def add_detail(self, decoded: torch.Tensor, detail: torch.Tensor) -> torch.Tensor:
        """`detail_skip`: D(z_hat) + r, refined when the config has a refiner, in [-1, 1]."""
        out = decoded + detail
        if self.refiner is not None:
            dtype = self._param_dtype(self.refiner)
            out = out + self.refiner(decoded.to(dtype), detail.to(dtype)).float()
        return out.clamp(-1.0, 1.0)

    def forward(self, x: torch.Tensor, prior_scale: float = 1.0, priors: PriorFeatures | None = None) -> torch.Tensor:
        latent = self.encode(x)
        return self.restore_latent(latent, priors if priors is not None else self.encode_priors(latent), prior_scale)

    # --- bookkeeping ---------------------------------------------------------------------------

    def parameter_counts(self) -> dict[str, int]:
        """Parameters by part, as the paper counts them (the text encoder is not part of DVFace)."""

        def count(module: nn.Module) -> int:
            return sum(p.numel() for p in module.parameters())

        counts = {
            "vae": count(self.backbone.vae),
            "dit": count(self.backbone.transformer),
            "prior": count(self.prior),
            "astf": count(self.fusion),
            "refiner": count(self.refiner) if self.refiner is not None else 0,
        }
        counts["new_modules"] = counts["prior"] + counts["astf"] + counts["refiner"]
        counts["total"] = counts["vae"] + counts["dit"] + counts["new_modules"]
        return counts

    def trainable_parameters(self) -> list[nn.Parameter]:
        """What the restoration stage trains: ASTF, DiT and the refiner. The VAE is always frozen."""
        modules = (self.fusion, self.backbone.transformer, self.refiner)
        return [p for m in modules if m is not None for p in m.parameters()]

    def weights_digest(self) -> str:
        """Identity of config plus weights, for cache keys. Hashed once; call again after training."""
        if self._digest is None:
            h = hashlib.sha256(json.dumps(self.config.to_dict(), sort_keys=True).encode())
            for name, tensor in sorted(self.state_dict().items()):
                h.update(name.encode())
                h.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
            self._digest = h.hexdigest()[:32]
        return self._digest

    def _param_dtype(self, module: nn.Module) -> torch.dtype:
        return next(module.parameters()).dtype

    # --- weights I/O ---------------------------------------------------------------------------

    def save_pretrained(self, folder: str | Path, backbone: Literal["all", "transformer", "none"] = "all") -> None:
        """Write config.json and dvface.safetensors.

        `backbone="none"` stores only the DVFace modules (use when the Wan weights are unchanged
        and users load them from their own Wan2.1 download); `"transformer"` adds the fine-tuned
        DiT but not the frozen VAE.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        skip = {"all": (), "transformer": (BACKBONE_PREFIXES["vae"],), "none": tuple(BACKBONE_PREFIXES.values())}
        if backbone not in skip:
            raise ValueError(f"backbone must be 'all', 'transformer' or 'none', got {backbone!r}")
        tensors = {k: v for k, v in self.state_dict().items() if not k.startswith(skip[backbone])}
        write_safetensors(tensors, folder / WEIGHTS_NAME, metadata={"format": "pt", "dvface_config": self.config.name})
        self.config.save(folder / CONFIG_NAME)

    @classmethod
    def from_pretrained(
        cls, folder: str | Path, backbone: str | Path | None = None, device: str | torch.device = "cpu"
    ) -> "DVFace":
        """Load a model folder; the Wan2.1 parts its file lacks come from `backbone`, a diffusers Wan2.1 folder."""
        folder = Path(folder)
        if not folder.is_dir():
            raise WeightsError(f"model folder {folder} not found; pass a folder holding {CONFIG_NAME} and {WEIGHTS_NAME}")
        config = DVFaceConfig.load(folder / CONFIG_NAME)
        tensors = read_safetensors(folder / WEIGHTS_NAME)
        for component, prefix in BACKBONE_PREFIXES.items():
            if any(k.startswith(prefix) for k in tensors):
                continue
            if backbone is None:
                raise WeightsError(
                    f"{folder / WEIGHTS_NAME} holds no Wan2.1 {component} weights; {WAN_DOWNLOAD_HINT} "
                    "(CLI: --backbone FOLDER)"
                )
            own = getattr(config, component)
            found = read_diffusers_component(Path(backbone), component, own)
            ignored = ("norm_added_q",) if component == "transformer" else ()
            tensors.update({prefix + k: v for k, v in found.items() if not any(s in k for s in ignored)})

        with torch.device("meta"):
            model = cls(config)
        check_state_dict(model.state_dict(), tensors, str(folder))
        model = model.to_empty(device=device)
        model.load_state_dict(tensors, strict=True)
        model._reset_derived_buffers()
        return model.eval()

    def _reset_derived_buffers(self) -> None:
        """Recompute the non-persistent buffers (RoPE tables, latent statistics) that `to_empty` left undefined."""
        dit = self.backbone.transformer
        device = self.context.device
        dit.rope = WanRotaryPosEmbed(
            dit.config.attention_head_dim, dit.config.patch_size, dit.config.rope_max_seq_len
        ).to(device)
        vae_cfg = self.backbone.vae.config
        self.backbone.latents_mean = torch.tensor(vae_cfg.latents_mean, device=device).view(1, -1, 1, 1, 1)
        self.backbone.latents_std = torch.tensor(vae_cfg.latents_std, device=device).view(1, -1, 1, 1, 1)


def _check_clip(x: torch.Tensor) -> None:
    if x.ndim != 5 or x.shape[1] != 3:
        raise InputError(f"expected a clip tensor (B, 3, T, H, W), got shape {tuple(x.shape)}")
    if min(x.shape) < 1:
        raise InputError(f"clip has an empty dimension: shape {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise InputError("clip contains NaN or Inf values; clean the input frames before restoring")
    peak = x.abs().max().item()
    if peak > 1.0 + 1e-3:
        raise InputError(f"clip values must lie in [-1, 1], found |x| up to {peak:.3g}; map 8-bit frames with x / 127.5 - 1")
