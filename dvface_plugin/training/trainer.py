"""`dvface train STAGE --config FILE`: one training loop for every stage and every scale.

Single process on a CPU or GPU, or many under `torchrun` (DDP; gloo on CPU, NCCL on GPU; the
environment variables torchrun sets are all it needs). bf16 autocast on CUDA and on CPUs with bf16
instructions (AVX512-BF16 / AMX; there the restore stage runs 1.33x faster, but the refiner trains
worse: docs/benchmarks.md), gradient checkpointing of the DiT for the 1.3B preset, a checkpoint
every `checkpoint_every` steps that a rerun of the same command resumes from, and `log.jsonl` with
every logged loss. Batches are drawn from a generator seeded by (seed, rank, step), so a resumed
run sees exactly the batches the uninterrupted run would have.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..errors import InputError
from ..model.config import DVFaceConfig
from ..model.dvface import DVFace
from . import PRECISIONS
from .adversarial import Adversary, DiscriminatorConfig
from .data import ClipSampler, list_items, split
from .restoration_cache import RestorationCache
from .stages import STAGES, CodebookStage, RefineStage, RestoreStage, VAEStage, build_stage

LR_SCHEDULES = ("constant", "cosine")


@dataclass
class TrainConfig:
    stage: str
    data: list[str]  # folders of aligned .npy clips / photos (never benchmark/)
    out: str
    init: str = "tiny"  # a preset name, or the model folder the previous stage wrote
    init_overrides: dict[str, Any] = field(default_factory=dict)  # config changes to `init` (e.g. add a refiner); new parts start fresh
    init_fresh: list[str] = field(default_factory=list)  # parts of `init` to restart (e.g. ["refiner"] to train one of a new shape)
    backbone: str | None = None  # diffusers Wan2.1 folder, when `init` lacks backbone weights
    steps: int = 1000
    max_seconds: float | None = None  # also stop here, counting from start-up; the LR schedule follows whichever ends first
    batch_size: int = 2
    frames: int = 5  # 4k+1
    crop: int = 128
    scale: float = 1.0
    degradation: str | list[str] = "medium"  # a preset, or a list: each clip draws one
    grey: float = 0.0  # share of training clips made black-and-white, input and target alike
    lr: float = 2e-4
    lr_schedule: str = "constant"  # or "cosine": linear warm-up over the first 5% of steps, then cosine to zero
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    loss_weights: dict[str, float] = field(default_factory=lambda: {"per": 0.5, "temp": 1.0, "kl": 1e-6, "usage": 0.1})
    perceptual_weights: str | None = None  # VGG16 safetensors; None -> the weight-free pyramid loss
    discriminator: dict[str, Any] = field(default_factory=dict)  # DiscriminatorConfig fields, used when loss_weights["adv"] > 0
    precision: str = "fp32"  # or "bf16": autocast of the trained model's steps; weights, optimiser and cache stay fp32
    gradient_checkpointing: bool = False
    val_fraction: float = 0.1
    val_batches: int = 4
    log_every: int = 10
    checkpoint_every: int = 200
    revive_every: int = 50  # codebook stage: dead-code restarts
    cache_clips: int = 512  # refine stage: clips whose frozen restoration is computed once
    cache_window: int = 5  # refine stage: frames per training sample drawn from a cached clip
    zero_velocity_init: bool = False  # restore stage from a scratch DiT: zero its output head, so training starts at the identity
    seed: int = 0
    loader_threads: int = 0  # > 0: draw and degrade this many batches ahead in threads (same batches, faster on many cores)

    @classmethod
    def load(cls, path: str | Path, **overrides) -> "TrainConfig":
        path = Path(path)
        if not path.is_file():
            raise InputError(f"training config {path} not found")
        data = json.loads(path.read_text())
        for key, value in overrides.items():  # a dict merges into the file's dict (one loss weight, not all)
            if value is not None:
                data[key] = data[key] | value if isinstance(value, dict) and isinstance(data.get(key), dict) else value
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise InputError(f"{path}: unknown training options {unknown}")
        config = cls(**data)
        if config.stage not in STAGES:
            raise InputError(f"{path}: stage must be one of {STAGES}, got {config.stage!r}")
        if config.precision not in PRECISIONS:
            raise InputError(f"{path}: precision must be one of {PRECISIONS}, got {config.precision!r}")
        if config.lr_schedule not in LR_SCHEDULES:
            raise InputError(f"{path}: lr_schedule must be one of {LR_SCHEDULES}, got {config.lr_schedule!r}")
        unknown = sorted(set(config.discriminator) - {f.name for f in dataclasses.fields(DiscriminatorConfig)})
        if unknown:
            raise InputError(f"{path}: unknown discriminator options {unknown}")
        if not 0.0 <= config.grey <= 1.0:
            raise InputError(f"{path}: grey is a share of the clips, in [0, 1]; got {config.grey}")
        if config.loss_weights.get("adv") and config.stage not in ("restore", "refine"):
            raise InputError(f"{path}: the adversarial loss applies to the restore and refine stages, not {config.stage!r}")
        return config


def cpu_has_bf16() -> bool:
    """Native bf16 on this CPU (oneDNN's test): without it autocast emulates bf16, slower than fp32."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


class Trainer:
    def __init__(self, config: TrainConfig) -> None:
        self.cfg = config
        self.started = time.time()
        self.elapsed = 0.0  # fraction of max_seconds used, read once a step by `_tick`
        self.distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
        if self.distributed and not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        self.rank = dist.get_rank() if self.distributed else 0
        self.world = dist.get_world_size() if self.distributed else 1
        if torch.cuda.is_available():
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(self.device)
        else:
            self.device = torch.device("cpu")
            if config.precision == "bf16" and not cpu_has_bf16():
                raise InputError('precision bf16 needs a CUDA GPU or a CPU with bf16 instructions (AVX512-BF16 or AMX), '
                                 'which this one lacks; set "precision": "fp32" in the training config')
        self.out = Path(config.out)
        self.checkpoint_dir = self.out / "checkpoint"

        train_items, val_items = split(list_items(config.data), config.val_fraction)
        if not train_items:
            raise InputError("every training item fell into the validation split; lower val_fraction or add data")
        resume = (self.checkpoint_dir / "trainer_state.pt").is_file()
        self.model = self._load_model(self.checkpoint_dir if resume else config.init).to(self.device)
        if (config.init_overrides or config.init_fresh) and not resume:
            self.model = _grow(self.model, config.init_overrides, config.init_fresh, config.seed)
        args = dict(frames=config.frames, crop=config.crop, degradation=config.degradation, scale=config.scale,
                    prefilter=self.model.config.prefilter, grey=config.grey)
        self.train_data = ClipSampler(train_items, **args)
        self.val_data = ClipSampler(val_items, **args) if val_items else None
        if config.zero_velocity_init and not resume:
            head = self.model.backbone.transformer.proj_out
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
        if config.gradient_checkpointing:
            self.model.backbone.transformer.enable_gradient_checkpointing()
        self.stage = build_stage(config.stage, self.model, config.loss_weights, config.perceptual_weights).to(self.device)
        if isinstance(self.stage, RefineStage):
            start = time.time()
            self.train_data = RestorationCache(self.train_data, self.model, config.cache_clips, config.cache_window,
                                               seed=(config.seed, self.rank), device=self.device)
            if self.val_data is not None:
                self.val_data = RestorationCache(self.val_data, self.model, config.val_batches * config.batch_size,
                                                 config.cache_window, seed=(config.seed, 10**6), device=self.device)
            self._log({"event": "cached", "clips": len(self.train_data), "time_s": round(time.time() - start, 2)})
        self.params = [p for p in self.stage.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=config.lr, weight_decay=config.weight_decay)
        self.adversary: Adversary | None = None
        if config.loss_weights.get("adv") and isinstance(self.stage, RestoreStage):
            torch.manual_seed(config.seed)
            self.adversary = Adversary(DiscriminatorConfig(**config.discriminator), self.device, self.distributed)
            self.stage.adversary = self.adversary
        self.step = 0
        if resume:
            self._load_state()
        self.wrapped = (
            DistributedDataParallel(self.stage, device_ids=[self.device.index] if self.device.type == "cuda" else None)
            if self.distributed
            else self.stage
        )

    def _load_model(self, source: str | Path) -> DVFace:
        if Path(source).is_dir():
            return DVFace.from_pretrained(source, backbone=self.cfg.backbone)
        torch.manual_seed(self.cfg.seed)
        return DVFace(DVFaceConfig.preset(str(source)))

    # --- loop ----------------------------------------------------------------------------------

    def _losses(self, lq: torch.Tensor, hq: torch.Tensor, module) -> dict[str, torch.Tensor]:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.precision == "bf16"):
            return module(lq.to(self.device), hq.to(self.device))

    def train(self) -> dict:
        self.stage.train()
        start = time.time()
        batches = self._batches()
        self._tick()
        # At least one step, even when setting up (data, a refine stage's cache) used the whole
        # `max_seconds`: the stage's log then holds its losses and a plan's summary a step count.
        while self.step == 0 or self.progress() < 1.0:
            lq, hq = next(batches)
            losses = self._losses(lq, hq, self.wrapped)
            for group in self.optimizer.param_groups:
                group["lr"] = self.learning_rate()
            self.optimizer.zero_grad(set_to_none=True)
            losses["total"].backward()
            if self.cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(self.params, self.cfg.grad_clip)
            self.optimizer.step()
            if self.adversary is not None:
                losses["disc"] = self.adversary.step(self.stage.last_output, hq.to(self.device))
            self.step += 1
            self._tick()
            if isinstance(self.stage, CodebookStage) and self.step % self.cfg.revive_every == 0:
                self._revive_codes()
            if self.step % self.cfg.log_every == 0 or self.progress() >= 1.0:
                record = {"step": self.step, **{k: float(v.detach()) for k, v in losses.items()}, "time_s": round(time.time() - start, 2)}
                if self.val_data is not None:
                    record["val_total"] = self.validate()
                self._log(record)
            if self.step % self.cfg.checkpoint_every == 0 and self.progress() < 1.0:
                self.save_checkpoint()
        batches.close()  # joins the loader threads
        return self.finish()

    def _batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.train_data.sample(self.cfg.batch_size, np.random.default_rng([self.cfg.seed, self.rank, step]))

    def _batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches of steps `self.step`, `self.step + 1`, ...; each depends on its step alone,
        so drawing them ahead in threads changes nothing but the speed."""
        step = self.step
        if not self.cfg.loader_threads:
            while True:
                yield self._batch(step)
                step += 1
        with ThreadPoolExecutor(self.cfg.loader_threads) as pool:
            ahead = deque(pool.submit(self._batch, step + i) for i in range(2 * self.cfg.loader_threads))
            step += len(ahead)
            while True:
                yield ahead.popleft().result()
                ahead.append(pool.submit(self._batch, step))
                step += 1

    def _tick(self) -> None:
        """Read the clock once a step. Under DDP every rank takes rank 0's reading, so all of them
        stop after the same step (a rank that stopped alone would hang the others' all-reduce)."""
        if self.cfg.max_seconds is None:
            return
        elapsed = torch.tensor([(time.time() - self.started) / self.cfg.max_seconds], dtype=torch.float64)
        if self.distributed:
            elapsed = elapsed.to(self.device)
            dist.broadcast(elapsed, src=0)
        self.elapsed = float(elapsed)

    def progress(self) -> float:
        """Fraction of the run done: of `steps`, or of `max_seconds` when that runs out first."""
        return max(self.step / self.cfg.steps, self.elapsed)

    def learning_rate(self) -> float:
        """The rate for the step about to be taken (`self.step` steps done)."""
        if self.cfg.lr_schedule == "constant":
            return self.cfg.lr
        if self.cfg.max_seconds is None:
            warmup = max(1, self.cfg.steps // 20)
            if self.step < warmup:
                return self.cfg.lr * (self.step + 1) / warmup
            progress = (self.step - warmup) / max(1, self.cfg.steps - warmup)
        else:  # time-budgeted: warm up over 5 % of the run, by whichever measure is further along
            progress = self.progress()
            if progress < 0.05:
                return self.cfg.lr * progress / 0.05
            progress = (progress - 0.05) / 0.95
        return self.cfg.lr * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

    @torch.no_grad()
    def validate(self) -> float:
        self.stage.eval()
        if self.adversary is not None:
            self.adversary.net.eval()
        total = 0.0
        for i in range(self.cfg.val_batches):
            rng = np.random.default_rng([self.cfg.seed, 10**6, i])  # the same batches every time
            total += float(self._losses(*self.val_data.sample(self.cfg.batch_size, rng), self.stage)["total"])
        self.stage.train()
        if self.adversary is not None:
            self.adversary.net.train()
        return total / self.cfg.val_batches

    def _revive_codes(self) -> None:
        """Rank 0 decides and re-seeds dead codes; the codebooks are then broadcast so ranks stay identical."""
        if self.rank == 0:
            revived = self.stage.revive_dead_codes(torch.Generator().manual_seed(self.cfg.seed + self.step))
            if revived:
                self._log({"step": self.step, "revived_codes": revived})
        if self.distributed:
            for book in (self.model.prior.codebook_s, self.model.prior.codebook_t):
                dist.broadcast(book.weight.data, src=0)

    def _log(self, record: dict) -> None:
        if self.rank != 0:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        with open(self.out / "log.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    # --- checkpoints -----------------------------------------------------------------------------

    def save_checkpoint(self) -> None:
        if self.rank == 0:
            self.model.save_pretrained(self.checkpoint_dir)
            state = {"step": self.step, "optimizer": self.optimizer.state_dict(), "stage": self._stage_extra()}
            tmp = self.checkpoint_dir / "trainer_state.pt.tmp"
            torch.save(state, tmp)
            os.replace(tmp, self.checkpoint_dir / "trainer_state.pt")
        if self.distributed:
            dist.barrier()

    def _stage_extra(self) -> dict:
        if isinstance(self.stage, CodebookStage):
            return {"head": self.stage.head.state_dict(), "usage": {k: r.usage for k, r in self.stage.revivers.items()}}
        if self.adversary is not None:
            return {"adversary": self.adversary.state_dict()}
        return {}

    def _load_state(self) -> None:
        state = torch.load(self.checkpoint_dir / "trainer_state.pt", map_location=self.device, weights_only=True)
        self.step = int(state["step"])
        self.optimizer.load_state_dict(state["optimizer"])
        if isinstance(self.stage, CodebookStage):
            self.stage.head.load_state_dict(state["stage"]["head"])
            for k, usage in state["stage"]["usage"].items():
                self.stage.revivers[k].usage = usage.cpu()
        if self.adversary is not None:
            self.adversary.load_state_dict(state["stage"]["adversary"])

    @torch.no_grad()
    def _set_latent_statistics(self, batches: int = 8) -> None:
        """Store the trained VAE's per-channel latent mean/std, so the DiT sees unit-scale latents."""
        vae = self.model.backbone.vae.eval()
        latents = []
        for i in range(batches):
            _, hq = self.train_data.sample(self.cfg.batch_size, np.random.default_rng([self.cfg.seed, 2 * 10**6, i]))
            latents.append(vae.encode(hq.to(self.device)).latent_dist.mode().transpose(0, 1).flatten(1))
        z = torch.cat(latents, dim=1)
        mean, std = z.mean(1).tolist(), z.std(1).clamp_min(1e-4).tolist()
        self.model.config.vae.update(latents_mean=mean, latents_std=std)
        vae.register_to_config(latents_mean=mean, latents_std=std)
        self.model._reset_derived_buffers()

    def finish(self) -> dict:
        digest = hashlib.sha256()
        for p in self.params:
            digest.update(p.detach().float().cpu().numpy().tobytes())
        digests = [digest.hexdigest()[:16]]
        if self.distributed:
            digests = [None] * self.world
            dist.all_gather_object(digests, digest.hexdigest()[:16])
        summary = {"event": "done", "step": self.step, "rank_digests": digests, "ranks_identical": len(set(digests)) == 1}
        if self.rank == 0:
            if isinstance(self.stage, VAEStage):
                self._set_latent_statistics()
            self.model._digest = None
            self.model.save_pretrained(self.out / "model")
        self._log(summary)
        if self.distributed:
            dist.barrier()
            self._release_process_group()
        return summary

    def _release_process_group(self) -> None:
        """Free the DDP wrappers, then the process group. A wrapper's reducer that holds the group's last
        reference destroys it with the GIL held, joining gloo's worker thread while that thread waits for
        the GIL to free the digest exchange's tensors: a rare hang of rank 0 after "done" (seen in CI).
        Dropped first, the group goes last through its own handle, which releases the GIL."""
        self.wrapped = self.stage
        if self.adversary is not None:
            self.adversary.wrapped = self.adversary.net
        dist.destroy_process_group()


def _grow(model: DVFace, overrides: dict[str, Any], fresh: list[str], seed: int) -> DVFace:
    """`model` under a changed config: every weight it has is kept except those of the `fresh` parts;
    the parts the change adds or restarts (a refiner's last layer is zero, so it starts at the
    identity) are new. A change that reshapes or drops a trained weight outside `fresh` is refused,
    since training would silently restart that part."""
    config = DVFaceConfig.from_dict(model.config.to_dict() | overrides)
    torch.manual_seed(seed)
    grown = DVFace(config).to(model.context.device)
    parts = sorted({name for name, _ in model.named_children()} | {name for name, _ in grown.named_children()})
    unknown = sorted(set(fresh) - set(parts))
    if unknown:
        raise InputError(f"init_fresh {unknown}: not parts of the model; choose from {parts}")
    old = {k: v for k, v in model.state_dict().items() if k.split(".")[0] not in fresh}
    new = grown.state_dict()
    changed = sorted(k for k in old if k not in new or new[k].shape != old[k].shape)
    if changed:
        raise InputError(f"init_overrides {sorted(overrides)} would drop or reshape trained weights {changed[:3]}; "
                         'restart that part with "init_fresh" or start it from an earlier stage')
    grown.load_state_dict(old, strict=False)
    return grown
