"""Training on the device: a plan (by default the `base` preset through every stage of
models/train/base.json) in the minutes left, on the carried pack; a quick held-out comparison
with the bundled model; the weights written back as fp16 shards that fit what a run may return,
each carrying the model's config, so two runs side by side stay within 8 returned files."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import numpy as np
import pack
import torch
from context import Run, Skip
from safetensors.torch import save_file

from dvface_plugin.degrade import degrade_clip
from dvface_plugin.engine import restore_track
from dvface_plugin.metrics import detail, detail_ratio, psnr_y
from dvface_plugin.model.dvface import DVFace
from dvface_plugin.runtime.torch_restorer import Restorer, load_model
from dvface_plugin.training.data import is_validation, list_items, load_item
from dvface_plugin.training.plan import run_plan

ROOT = Path(__file__).resolve().parents[2]
PLAN = ROOT / "models" / "train" / "base.json"
SHARD_BYTES = 15 * 2**20  # a returned file may hold 16 MiB
CONFIG_KEY = "dvface_config_json"  # shard metadata: the model's config as JSON
RESERVE_S = 45  # kept back for the comparison and writing the weights
# the CPU rehearsal: small crops and batches, every stage still runs
SMOKE = {"crop": 64, "frames": 5, "batch_size": 2, "cache_clips": 4, "cache_window": 5, "val_batches": 1,
         "loader_threads": 2, "log_every": 1}


def run(ctx: Run) -> dict:
    work = Path(tempfile.mkdtemp(prefix="dvface-gpu-train-"))
    data = _data(ctx, work / "data")
    minutes = (ctx.remaining() - RESERVE_S) / 60
    if ctx.smoke:
        minutes = 0.6
    if minutes < 1 and not ctx.smoke:
        raise Skip(f"{ctx.remaining():.0f} s left of the budget: too little to train every stage")
    torch.backends.cuda.matmul.allow_tf32 = True  # the fp32 recipes train with TF32 matrix products on a GPU
    ctx.log(f"training: {len(list(data.iterdir()))} items, {minutes:.1f} min for all stages")
    stages = run_plan(ctx.plan or PLAN, minutes, [str(data)], work / "train", init=ctx.resume,
                      overrides=SMOKE if ctx.smoke else None, log=ctx.log)
    model_dir = Path(stages[-1]["model"])
    model = DVFace.from_pretrained(model_dir)
    comparison = compare(ctx, model, data)
    ctx.log(f"training: held-out comparison {comparison}")
    files = write_weights(model, ctx.out)
    logs = [json.loads(line) | {"stage": s["stage"]} for s in stages
            for line in (Path(s["model"]).parent / "log.jsonl").read_text().splitlines()]
    counts = model.parameter_counts()
    return {"status": "ok", "plan": str(ctx.plan or PLAN.relative_to(ROOT)), "preset": model.config.name,
            "parameters_m": round(counts["total"] / 1e6, 1),
            "resumed_from": None if ctx.resume is None else str(ctx.resume), "minutes": round(minutes, 2),
            "stages": stages, "held_out": comparison, "files": files, "log": logs}


def _data(ctx: Run, work: Path) -> Path:
    """The training clips as .npy/.png: unpacked from a pack, or a synthetic pack for the smoke run."""
    source = ctx.data
    if source is None:
        if not ctx.smoke:
            raise Skip("no --data: make a pack from ../shared/data/train first (benchmarks/gpu/README.md)")
        source = pack.synthetic_pack(work.parent / "pack")
    if "benchmark" in Path(source).resolve().parts:
        raise Skip(f"{source} is benchmark media, which must never be trained on")
    if any(p.name.endswith(pack.PHOTO) for p in Path(source).iterdir()):
        pack.unpack(Path(source), work)
        return work
    return Path(source)


def compare(ctx: Run, model: DVFace, data: Path, clips: int = 8) -> dict:
    """PSNR (dB) and detail (of the truth) on held-out clips of the pack, degraded `medium`: the
    trained model, the bundled one and the input. A first look, not the benchmark."""
    clips_only = [p for p in list_items([data]) if p.suffix == ".npy"]
    items = [p for p in clips_only if is_validation(p, 0.05)][:clips]
    if ctx.smoke:  # the rehearsal's synthetic pack is too small to hold clips out
        items = items or clips_only[:2]
    if not items:
        return {"status": "skipped", "reason": "no held-out clips in the pack"}
    frames, side = (5, 64) if ctx.smoke else (17, 192)
    pairs = []
    for i, path in enumerate(items):
        hq = np.asarray(load_item(path)[:frames, :side, :side])
        pairs.append((degrade_clip(hq, "medium", seed=i), hq))
    precision = "fp32"
    scores = {}
    for name, restorer in (("trained", Restorer(model, device=ctx.device, precision=precision)),
                           ("bundled", Restorer(load_model(), device=ctx.device, precision=precision)),
                           ("input", None)):
        psnrs, details, truth = [], [], []
        for lq, hq in pairs:
            out = lq if restorer is None else restore_track(restorer, lq)  # uint8 in, uint8 out
            psnrs += [psnr_y(o, h) for o, h in zip(out, hq)]
            details += [detail(o) for o in out]
            truth += [detail(h) for h in hq]
        scores[name] = {"psnr": round(float(np.mean([p for p in psnrs if math.isfinite(p)])), 3),
                        "detail": round(detail_ratio(details, truth), 3)}
    return {"status": "ok", "clips": len(pairs), "frames": frames, "side": side, **scores}


def write_weights(model: DVFace, out: Path) -> list[str]:
    """fp16 shards of at most SHARD_BYTES, each holding the config in its metadata
    (`merge_weights` puts them back together)."""
    out.mkdir(parents=True, exist_ok=True)
    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        tensor = tensor.half() if tensor.is_floating_point() else tensor
        nbytes = tensor.numel() * tensor.element_size()
        if size + nbytes > SHARD_BYTES and shards[-1]:
            shards.append({})
            size = 0
        shards[-1][name] = tensor
        size += nbytes
    config = json.dumps(model.config.to_dict())
    names = []
    for i, shard in enumerate(shards):
        names.append(f"{model.config.name}-weights-{i + 1:02d}-of-{len(shards):02d}.safetensors")
        save_file(shard, str(out / names[-1]), metadata={"format": "pt", CONFIG_KEY: config})
    return names


def merge_weights(returned: Path, folder: Path) -> Path:
    """A model folder (config.json + dvface.safetensors, fp16) from what a run returned."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from dvface_plugin.model.config import DVFaceConfig
    from dvface_plugin.model.dvface import CONFIG_NAME, WEIGHTS_NAME

    shards = sorted(returned.glob("*-weights-*-of-*.safetensors"))
    if not shards:
        raise FileNotFoundError(f"no *-weights-*-of-*.safetensors in {returned}")
    with safe_open(str(shards[0]), "pt") as f:
        config = json.loads(f.metadata()[CONFIG_KEY])
    tensors = {k: v for shard in shards for k, v in load_file(str(shard)).items()}
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / WEIGHTS_NAME), metadata={"format": "pt", "dvface_config": config["name"]})
    DVFaceConfig.from_dict(config).save(folder / CONFIG_NAME)
    return folder
