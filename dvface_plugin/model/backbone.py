"""The Wan2.1 backbone, used through diffusers' own modules.

`AutoencoderKLWan` is the frozen causal 3D VAE; `WanTransformer3DModel` provides the patch
embedding, timestep/text conditioning, blocks and output head. Only the block loop is written
here, because DVFace has to call an ASTF module before every block: the loop is the same as
diffusers' `WanTransformer3DModel.forward` for Wan2.1 (one timestep per sample, no image tokens).
"""

from __future__ import annotations

from typing import Callable

import torch
from diffusers import AutoencoderKLWan, WanTransformer3DModel
from torch import nn

# called before block i with (i, tokens (B, L, D), dit_grid (gh, gw)); returns the new tokens
BlockHook = Callable[[int, torch.Tensor, tuple[int, int]], torch.Tensor]


class WanBackbone(nn.Module):
    def __init__(self, vae: AutoencoderKLWan, transformer: WanTransformer3DModel) -> None:
        super().__init__()
        self.vae = vae
        self.transformer = transformer
        self.vae.requires_grad_(False)
        mean = torch.tensor(vae.config.latents_mean, dtype=torch.float32).view(1, -1, 1, 1, 1)
        std = torch.tensor(vae.config.latents_std, dtype=torch.float32).view(1, -1, 1, 1, 1)
        self.register_buffer("latents_mean", mean, persistent=False)
        self.register_buffer("latents_std", std, persistent=False)

    @classmethod
    def from_config(cls, vae_kwargs: dict, transformer_kwargs: dict) -> "WanBackbone":
        return cls(AutoencoderKLWan(**vae_kwargs), WanTransformer3DModel(**transformer_kwargs))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Pixels (B, 3, 4k+1, H, W) in [-1, 1] -> normalised latent; the posterior mode, so it is deterministic."""
        moments = self.vae.encode(x.to(self.vae.dtype)).latent_dist.mode()
        return (moments.float() - self.latents_mean) / self.latents_std

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        z = z.float() * self.latents_std + self.latents_mean
        return self.vae.decode(z.to(self.vae.dtype)).sample

    def velocity(self, z: torch.Tensor, timestep: int, context: torch.Tensor, before_block: BlockHook) -> torch.Tensor:
        """Flow velocity predicted by the DiT at one fixed timestep, with `before_block` run before each block."""
        dit = self.transformer
        b, _, frames, height, width = z.shape
        p_t, p_h, p_w = dit.config.patch_size
        grid = (height // p_h, width // p_w)
        z = z.to(dit.dtype)

        rotary = dit.rope(z)
        tokens = dit.patch_embedding(z).flatten(2).transpose(1, 2).contiguous()
        t = torch.full((b,), timestep, device=z.device, dtype=torch.long)
        context = context.to(dit.dtype).expand(b, -1, -1)
        temb, timestep_proj, context, _ = dit.condition_embedder(t, context, None)
        timestep_proj = timestep_proj.unflatten(1, (6, -1))

        for i, block in enumerate(dit.blocks):
            tokens = before_block(i, tokens, grid)
            if torch.is_grad_enabled() and dit.gradient_checkpointing:
                tokens = dit._gradient_checkpointing_func(block, tokens, context, timestep_proj, rotary)
            else:
                tokens = block(tokens, context, timestep_proj, rotary)

        shift, scale = (dit.scale_shift_table.to(temb.device) + temb.unsqueeze(1)).chunk(2, dim=1)
        tokens = (dit.norm_out(tokens.float()) * (1 + scale) + shift).type_as(tokens)
        tokens = dit.proj_out(tokens)
        tokens = tokens.reshape(b, frames // p_t, *grid, p_t, p_h, p_w, -1)
        return tokens.permute(0, 7, 1, 4, 2, 5, 3, 6).flatten(6, 7).flatten(4, 5).flatten(2, 3)
