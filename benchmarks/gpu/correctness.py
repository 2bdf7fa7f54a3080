"""Correctness on the device: the bundled model's window against the CPU in every precision,
the engine's output independent of the order windows are asked for, and onnxruntime's CUDA
provider when that runtime has one."""

from __future__ import annotations

import hashlib
import importlib.util

import numpy as np
import torch
from context import Run, Skip, guarded

from dvface_plugin.engine import FaceTrackSession
from dvface_plugin.errors import DVFaceError
from dvface_plugin.runtime.torch_restorer import Restorer, load_model, resolve_precision

# |model output - CPU fp32| in [-1, 1] units: (max, mean). fp32 with TF32 off agrees to rounding;
# the half types carry 8 (bf16) or 11 (fp16) mantissa bits through four VAE stages and the DiT.
TOLERANCES = {"fp32": (2e-3, 2e-4), "fp16": (0.1, 5e-3), "bf16": (0.3, 2e-2)}
# The engine's stabiliser estimates optical flow on 8-bit frames, so a rounding-sized change can
# move a flow vector and a few pixels by several levels (a 1e-5 latent change moved 0.024 here):
# its output is held to the model's mean tolerance only, its largest error is reported.


def face_window(frames: int, side: int, seed: int = 0) -> np.ndarray:
    """(T, S, S, 3) uint8: a moving textured pattern (no real media travels with the run)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) / side
    t = np.arange(frames, dtype=np.float32)[:, None, None, None]
    field = np.sin(9 * xx[..., None] + [0, 1, 2] + 0.2 * t) * np.cos(6 * yy[..., None] - 0.15 * t)
    return np.clip(128 + 90 * field + rng.normal(0, 12, field.shape), 0, 255).astype(np.uint8)


def run(ctx: Run) -> dict:
    frames, side = ctx.window
    crops = face_window(frames, side)
    reference = _restore(Restorer(load_model(), device="cpu", precision="fp32"), crops)
    result: dict = {"window": [frames, side, side], "precisions": {}, "status": "ok"}
    for precision in TOLERANCES:
        check = result["precisions"][precision] = guarded(precision_check, ctx, precision, crops, reference)
        ctx.log(f"correctness: {precision} {check}")
    result["engine_order"] = guarded(engine_order, ctx)
    ctx.log(f"correctness: engine order {result['engine_order']['status']}")
    result["ort_cuda"] = guarded(ort_cuda, ctx, crops, reference)
    ctx.log(f"correctness: onnxruntime CUDA {result['ort_cuda']['status']}")
    checks = [*result["precisions"].values(), result["engine_order"], result["ort_cuda"]]
    if any(c["status"] == "failed" for c in checks):
        result["status"] = "failed"
    return result


def precision_check(ctx: Run, precision: str, crops: np.ndarray, reference: dict[str, np.ndarray]) -> dict:
    try:
        resolve_precision(precision, ctx.device)
    except DVFaceError as exc:
        raise Skip(str(exc)) from exc
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    if precision == "fp32":  # compare true fp32, not TF32
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        out = _restore(Restorer(load_model(), device=ctx.device, precision=precision), crops)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    max_tol, mean_tol = TOLERANCES[precision]
    model, engine = (np.abs(out[k] - reference[k]) for k in ("model", "engine"))
    ok = bool(model.max() <= max_tol and model.mean() <= mean_tol and engine.mean() <= mean_tol)
    return {"status": "ok" if ok else "failed", "max_err": float(model.max()), "mean_err": float(model.mean()),
            "engine_max_err": float(engine.max()), "engine_mean_err": float(engine.mean()),
            "max_tol": max_tol, "mean_tol": mean_tol}


def _restore(restorer: Restorer, crops: np.ndarray) -> dict[str, np.ndarray]:
    """The window from the model alone, and as the engine returns it (stabilised as configured)."""
    state = restorer.encode(crops)
    return {"model": restorer.with_stabilise(0).decode(state), "engine": restorer.decode(state)}


def engine_order(ctx: Run) -> dict:
    """Several windows rendered front to back and in a shuffled order must give the same bytes."""
    frames, side = ctx.window
    n = 3 * frames
    track = face_window(n, side, seed=1)
    precision = resolve_precision("auto", ctx.device)
    restorer = Restorer(load_model(), device=ctx.device, precision=precision)
    digests = []
    for order in (range(n), np.random.default_rng(0).permutation(n)):
        with FaceTrackSession(restorer, track.__getitem__, n, crop_size=side) as session:
            frames_out = {int(f): session.frame(int(f)) for f in order}
        digests.append(hashlib.sha256(b"".join(frames_out[f].tobytes() for f in range(n))).hexdigest()[:16])
    same = digests[0] == digests[1]
    return {"status": "ok" if same else "failed", "frames": n, "precision": precision, "digests": digests}


def ort_cuda(ctx: Run, crops: np.ndarray, reference: dict[str, np.ndarray]) -> dict:
    if importlib.util.find_spec("onnxruntime") is None:
        return {"status": "skipped", "reason": "onnxruntime is not installed"}
    import onnxruntime

    providers = onnxruntime.get_available_providers()
    if "CUDAExecutionProvider" not in providers:
        return {"status": "skipped", "reason": f"this onnxruntime build has no CUDA provider (has {providers})"}
    from dvface_plugin.runtime.ort_restorer import OrtRestorer

    frames, _ = ctx.window
    restorer = OrtRestorer.load(None, device="cuda", precision="fp32")
    if restorer.config.window != frames:
        return {"status": "skipped", "reason": f"the bundled export is for {restorer.config.window}-frame windows"}
    err = np.abs(_restore(restorer, crops)["model"] - reference["model"])
    ok = bool(err.max() <= 0.02)
    return {"status": "ok" if ok else "failed", "max_err": float(err.max()), "mean_err": float(err.mean())}
