"""DVFace configuration: plain data, saved as `config.json` beside the weights.

A config fully determines the network's shapes. The Wan2.1 backbone parts are kept as the exact
keyword arguments of diffusers' `AutoencoderKLWan` and `WanTransformer3DModel`, so a downloaded
Wan2.1 folder can be checked against them key for key.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import WeightsError

QUERY_SOURCES = ("hidden", "prior_t")


@dataclass
class PriorConfig:
    """The dual-codebook prior encoder.

    It reads the frozen VAE's LQ latent rather than pixels [ours]: the latent is already at the
    DiT's temporal resolution (4k+1 frames -> k+1 latent frames), so f_t has exactly one entry
    per DiT frame, and the codebooks learn HQ *latent* structure in the codebook stage.
    """

    codebook_size: int = 1024  # K, entries in each of C_s and C_t
    code_dim: int = 256  # c, width of codes, prior transformers and ASTF attention
    patch_size: int = 4  # latent pixels per prior token side: 512 px -> 64 latent -> 16x16 codes
    num_layers: int = 8  # layers of each index-predicting transformer (T_s, T_t)
    num_heads: int = 8
    temporal_layers: int = 1  # attention-across-frames layers in the temporal branch


@dataclass
class FusionConfig:
    """ASTF (asymmetric spatio-temporal fusion), one module before every DiT block."""

    query_source: str = "hidden"  # "hidden": query from DiT tokens (conventional); "prior_t": from f_t (figure)
    num_heads: int = 8  # heads of the reduced-width (code_dim) cross-attention


@dataclass
class RefinerConfig:
    """[ours] The pixel-space detail refiner (`refiner.py`); needs `detail_skip`. 0 channels = none."""

    channels: int = 0
    blocks: int = 3  # residual blocks of two 3x3 convolutions
    # works at 1/unshuffle resolution on pixel-unshuffled channels; 2 learns far more than 4 for
    # about twice the time (benchmarks/refiner_capacity.py, docs/benchmarks.md)
    unshuffle: int = 2


@dataclass
class DVFaceConfig:
    name: str
    vae: dict[str, Any]  # AutoencoderKLWan keyword arguments
    transformer: dict[str, Any]  # WanTransformer3DModel keyword arguments
    prior: PriorConfig = field(default_factory=PriorConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    timestep: int = 399  # the one fixed timestep; sigma_t = timestep / num_train_timesteps
    num_train_timesteps: int = 1000
    context_length: int = 512  # tokens of the stored empty-prompt context (UMT5 pads to 512)
    crop_size: int = 512  # side of the aligned face crops the model is trained on
    window: int = 17  # engine window in frames (4k+1, so the VAE needs no temporal padding)
    overlap: int = 4  # frames shared by neighbouring windows, cross-faded
    # [ours] flow-guided averaging of each restored frame with this many neighbours each side,
    # within a window (`runtime/stabilise.py`; more than the window holds uses all of it); 0 = off
    stabilise: int = 0
    # [ours] the same flow-guided averaging, over whole frames, of each input frame before encoding:
    # a temporal denoise the model was trained behind (`runtime/stabilise.prefilter`); 0 = off
    prefilter: int = 0
    # [ours] x_hat = D(z_hat) + (x_lq - D(z_lq)): add back the detail the VAE cannot represent, so a
    # small VAE does not cap the output's fidelity and a zero velocity returns the input unchanged.
    detail_skip: bool = False
    refiner: RefinerConfig = field(default_factory=RefinerConfig)

    def __post_init__(self) -> None:
        if isinstance(self.prior, dict):
            self.prior = PriorConfig(**self.prior)
        if isinstance(self.fusion, dict):
            self.fusion = FusionConfig(**self.fusion)
        if isinstance(self.refiner, dict):
            self.refiner = RefinerConfig(**self.refiner)
        self.validate()

    @property
    def sigma(self) -> float:
        """Flow-matching noise level of the fixed timestep (Wan: sigma = t / T, no shift at one step)."""
        return self.timestep / self.num_train_timesteps

    @property
    def vae_temporal_stride(self) -> int:
        return 2 ** sum(bool(d) for d in self.vae.get("temperal_downsample", [False, True, True]))

    @property
    def vae_spatial_stride(self) -> int:
        return 2 ** (len(self.vae.get("dim_mult", [1, 2, 4, 4])) - 1) * (self.vae.get("patch_size") or 1)

    @property
    def spatial_multiple(self) -> int:
        """Frame sides are padded to a multiple of this: VAE stride x prior patch (a multiple of the DiT patch)."""
        return self.vae_spatial_stride * self.prior.patch_size

    def validate(self) -> None:
        if self.fusion.query_source not in QUERY_SOURCES:
            raise ValueError(f"fusion.query_source must be one of {QUERY_SOURCES}, got {self.fusion.query_source!r}")
        if self.prior.code_dim % self.prior.num_heads or self.prior.code_dim % self.fusion.num_heads:
            raise ValueError("prior.code_dim must be divisible by prior.num_heads and fusion.num_heads")
        if not 0 < self.timestep < self.num_train_timesteps:
            raise ValueError(f"timestep must be in (0, {self.num_train_timesteps}), got {self.timestep}")
        if (self.window - 1) % self.vae_temporal_stride:
            raise ValueError(f"window must be {self.vae_temporal_stride}k+1 frames, got {self.window}")
        if not 0 <= self.overlap < self.window:
            raise ValueError(f"overlap must be in [0, window), got {self.overlap}")
        if self.stabilise < 0:
            raise ValueError(f"stabilise must be >= 0 (0 = off), got {self.stabilise}")
        if self.prefilter < 0:
            raise ValueError(f"prefilter must be >= 0 (0 = off), got {self.prefilter}")
        dit_patch = self.transformer.get("patch_size", (1, 2, 2))
        if dit_patch[0] != 1:
            raise ValueError("only temporal patch size 1 is supported (one DiT frame per latent frame)")
        if self.prior.patch_size % dit_patch[1]:
            raise ValueError("prior.patch_size must be a multiple of the DiT's spatial patch size")
        if self.refiner.channels and not self.detail_skip:
            raise ValueError("refiner needs detail_skip: it refines the detail residual x_lq - D(z_lq)")
        if self.refiner.channels and self.spatial_multiple % self.refiner.unshuffle:
            raise ValueError(f"refiner.unshuffle must divide the padded frame multiple {self.spatial_multiple}")

    # --- (de)serialisation -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DVFaceConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise WeightsError(f"config has unknown keys {unknown}; it was written by a newer dvface or edited")
        return cls(**data)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> "DVFaceConfig":
        path = Path(path)
        if not path.is_file():
            raise WeightsError(f"{path} not found: a DVFace model folder needs config.json beside its weights")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise WeightsError(f"{path} is not valid JSON ({exc}); restore it from the model's release") from exc
        return cls.from_dict(data)

    @classmethod
    def preset(cls, name: str) -> "DVFaceConfig":
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        return PRESETS[name]()


def _wan21_1_3b() -> DVFaceConfig:
    """The paper's scale: Wan2.1-T2V-1.3B (diffusers layout), K = 1024, c = 256."""
    return DVFaceConfig(
        name="wan2.1-1.3b",
        vae=dict(
            base_dim=96,
            z_dim=16,
            dim_mult=[1, 2, 4, 4],
            num_res_blocks=2,
            attn_scales=[],
            temperal_downsample=[False, True, True],
        ),
        transformer=dict(
            patch_size=[1, 2, 2],
            num_attention_heads=12,
            attention_head_dim=128,
            in_channels=16,
            out_channels=16,
            text_dim=4096,
            freq_dim=256,
            ffn_dim=8960,
            num_layers=30,
            cross_attn_norm=True,
            qk_norm="rms_norm_across_heads",
            eps=1e-6,
            rope_max_seq_len=1024,
        ),
        prior=PriorConfig(codebook_size=1024, code_dim=256, patch_size=4, num_layers=12, num_heads=8),
        fusion=FusionConfig(query_source="hidden", num_heads=8),
        context_length=512,
        window=33,
        overlap=8,
    )


def _tiny() -> DVFaceConfig:
    """Small enough to train and run on 2 CPU cores; the bundled default model's shape."""
    return DVFaceConfig(
        name="tiny",
        # 2x2 pixel patchify + two downsamples: still 8x spatial, 4x temporal, but no conv runs
        # at full resolution, which is what dominates a small VAE's time on a CPU.
        vae=dict(
            base_dim=16,
            z_dim=16,
            dim_mult=[1, 2, 4],
            num_res_blocks=1,
            attn_scales=[],
            temperal_downsample=[True, True],
            patch_size=2,
            in_channels=12,
            out_channels=12,
        ),
        transformer=dict(
            patch_size=[1, 2, 2],
            num_attention_heads=4,
            attention_head_dim=32,
            in_channels=16,
            out_channels=16,
            text_dim=64,
            freq_dim=64,
            ffn_dim=512,
            num_layers=4,
            cross_attn_norm=True,
            qk_norm="rms_norm_across_heads",
            eps=1e-6,
            rope_max_seq_len=1024,
        ),
        prior=PriorConfig(codebook_size=512, code_dim=128, patch_size=4, num_layers=2, num_heads=4),
        fusion=FusionConfig(query_source="hidden", num_heads=4),
        context_length=8,
        window=17,
        overlap=4,
        detail_skip=True,
    )


def _base() -> DVFaceConfig:
    """The tiny layout at about four times its parameters: small enough that every stage, the VAE
    included, trains in minutes on one GPU (benchmarks/gpu), and weights that travel in fp16 shards."""
    tiny = _tiny()
    return dataclasses.replace(
        tiny,
        name="base",
        vae=tiny.vae | dict(base_dim=32),
        transformer=tiny.transformer | dict(num_attention_heads=4, attention_head_dim=64, ffn_dim=1024, num_layers=8),
        prior=PriorConfig(codebook_size=1024, code_dim=128, patch_size=4, num_layers=4, num_heads=4),
        fusion=FusionConfig(query_source="hidden", num_heads=4),
        stabilise=2,
        refiner=RefinerConfig(channels=64, blocks=6),
    )


PRESETS = {"wan2.1-1.3b": _wan21_1_3b, "base": _base, "tiny": _tiny}
