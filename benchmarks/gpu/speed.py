"""Speed on the device: the tiny preset in frames/s with windows batched, and the paper's scale
(Wan2.1-1.3B preset, random weights, one 81-frame 512 px clip in bf16) in seconds per clip and
peak memory, against the paper's 15.13 s; attention kernels and torch.compile timed apart."""

from __future__ import annotations

import torch
from context import Run, Skip, guarded, timed
from torch.nn.attention import SDPBackend, sdpa_kernel

from dvface_plugin.model.config import DVFaceConfig
from dvface_plugin.model.dvface import DVFace

PAPER_SECONDS_PER_CLIP = 15.13  # method.md: DVFace, 81 frames at 512x512, one step
ATTENTION = {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION, "math": SDPBackend.MATH}


def run(ctx: Run) -> dict:
    result = {"status": "ok", "tiny": guarded(tiny, ctx)}
    ctx.log(f"speed: tiny {result['tiny']}")
    result["paper"] = guarded(paper, ctx)
    ctx.log(f"speed: paper preset {_short(result['paper'])}")
    if any(r["status"] == "failed" for r in (result["tiny"], result["paper"])):
        result["status"] = "failed"
    return result


def _short(d: dict) -> dict:
    return {k: v for k, v in d.items() if not isinstance(v, dict)}


def _random_model(name: str, device: torch.device, dtype: torch.dtype) -> DVFace:
    """A preset with seed-0 random weights, built on the device (a 1.3B model is slow to build on a CPU)."""
    torch.manual_seed(0)
    with device:
        model = DVFace(DVFaceConfig.preset(name))
    return model.to(dtype=dtype).eval()


def tiny(ctx: Run) -> dict:
    """Frames/s of whole windows (encode, priors, restore) at several batch sizes."""
    frames, side = ctx.window
    dtype = torch.float16 if ctx.device.type == "cuda" else torch.float32
    model = _random_model("tiny", ctx.device, dtype)
    rows = {}
    for batch in (1, 2) if ctx.smoke else (1, 4, 8, 16):
        x = torch.rand(batch, 3, frames, side, side, device=ctx.device, dtype=dtype) * 2 - 1
        with torch.inference_mode():
            seconds = timed(lambda: model(x), ctx.device)
        rows[str(batch)] = {"seconds": round(seconds, 4), "fps": round(batch * frames / seconds, 1)}
    return {"status": "ok", "precision": str(dtype).split(".")[-1], "window": [frames, side, side], "batch": rows}


def paper(ctx: Run) -> dict:
    """One clip of the paper's shape through each step, then the DiT under each attention kernel
    and compiled. The smoke run uses the tiny preset: 1.3B parameters do not fit a CPU rehearsal."""
    if ctx.remaining() < 150 and not ctx.smoke:
        raise Skip(f"{ctx.remaining():.0f} s left of the budget, the 1.3B clip needs about 150")
    frames, side = ctx.paper_clip
    name = "tiny" if ctx.smoke else "wan2.1-1.3b"
    dtype = torch.bfloat16
    model = _random_model(name, ctx.device, dtype)
    x = torch.rand(1, 3, frames, side, side, device=ctx.device, dtype=dtype) * 2 - 1
    if ctx.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(ctx.device)
    with torch.inference_mode():
        latent = model.encode(x)
        priors = model.encode_priors(latent)
        steps = {
            "encode": timed(lambda: model.encode(x), ctx.device, repeat=1),
            "priors": timed(lambda: model.encode_priors(latent), ctx.device, repeat=1),
            "dit": timed(lambda: model.denoise(latent, priors), ctx.device, repeat=2),
            "decode": timed(lambda: model.restore_latent(latent, priors), ctx.device, repeat=1),
        }
        steps["decode"] -= steps["dit"]  # restore_latent = denoise + decode (+ detail)
        total = timed(lambda: model(x), ctx.device, repeat=1, warmup=0)
    peak = torch.cuda.max_memory_allocated(ctx.device) / 2**30 if ctx.device.type == "cuda" else None
    ctx.log(f"speed: {name} {frames}x{side}x{side} {total:.2f} s per clip, peak {peak} GiB")
    counts = model.parameter_counts()
    result = {
        "status": "ok", "preset": name, "clip": [frames, side, side], "precision": "bf16",
        "parameters_m": round(counts["total"] / 1e6, 1), "seconds_per_clip": round(total, 3),
        "paper_seconds_per_clip": PAPER_SECONDS_PER_CLIP, "peak_memory_gib": None if peak is None else round(peak, 2),
        "steps_s": {k: round(v, 4) for k, v in steps.items()},
    }
    result["dit_attention_s"] = {k: guarded(_dit_with, ctx, model, latent, priors, backend) for k, backend in ATTENTION.items()}
    result["dit_compiled"] = guarded(_dit_compiled, ctx, model, latent, priors)
    return result


def _dit_with(ctx: Run, model: DVFace, latent, priors, backend: SDPBackend) -> dict:
    if ctx.remaining() < 60 and not ctx.smoke:
        raise Skip("budget")
    try:
        with torch.inference_mode(), sdpa_kernel(backend):
            seconds = timed(lambda: model.denoise(latent, priors), ctx.device, repeat=2)
    except RuntimeError as exc:
        if "No viable backend" in str(exc):
            raise Skip(f"{backend.name} attention is not available for these inputs on {ctx.device}") from exc
        raise
    return {"status": "ok", "seconds": round(seconds, 4)}


def _dit_compiled(ctx: Run, model: DVFace, latent, priors) -> dict:
    """Each DiT block compiled (the blocks share code, so one compilation serves all of them).
    The smoke run traces with the eager backend: no C++ compiler needed on a CPU."""
    if ctx.remaining() < 120 and not ctx.smoke:
        raise Skip(f"{ctx.remaining():.0f} s left of the budget; compiling needs about 120")
    blocks = model.backbone.transformer.blocks
    originals = list(blocks)
    backend = "eager" if ctx.smoke else "inductor"
    for i, block in enumerate(originals):
        blocks[i] = torch.compile(block, backend=backend)
    try:
        with torch.inference_mode():
            first = timed(lambda: model.denoise(latent, priors), ctx.device, repeat=1, warmup=0)  # compiles
            seconds = timed(lambda: model.denoise(latent, priors), ctx.device, repeat=2)
    finally:
        for i, block in enumerate(originals):
            blocks[i] = block
    return {"status": "ok", "backend": backend, "first_call_s": round(first, 2), "seconds": round(seconds, 4)}
