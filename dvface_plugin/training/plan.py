"""`dvface train-plan PLAN --minutes M`: every training stage of a model in one time budget.

A plan (models/train/base.json) lists stage configs with a share of the budget each. Stages run
in order, each starting from the model the one before wrote; a stage that ends early passes its
unspent time to the ones after it. With `--init FOLDER` (weights an earlier run returned) the
stages marked `"resume": false` (the VAE: retraining it would move the latent space the later
stages learned) are skipped and the rest continue from that folder. A stage's `"set"` changes its
config's fields for this plan only (`{"loss_weights": {"adv": 0.15}}` changes that one weight), so
two plans can differ in one setting without a second copy of the config.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

from ..errors import InputError
from .trainer import TrainConfig, Trainer


def load_plan(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"training plan {path} not found")
    stages = json.loads(path.read_text()).get("stages")
    if not stages or not all(isinstance(s, dict) and "config" in s and s.get("share", 0) > 0
                             and isinstance(s.get("set", {}), dict) for s in stages):
        raise InputError(f"{path}: expected {{\"stages\": [{{\"config\": FILE, \"share\": > 0, \"set\": {{...}} (optional)}}, ...]}}")
    return [s | {"config": str(path.parent / s["config"])} for s in stages]


def run_plan(
    plan: str | Path,
    minutes: float,
    data: list[str],
    out: str | Path,
    init: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Train every stage of `plan` within `minutes`; returns one summary per stage that ran.

    `overrides` change every stage's config (a smoke run's small crops and batches).
    """
    if minutes <= 0:
        raise InputError(f"--minutes must be > 0, got {minutes}")
    stages = [s for s in load_plan(plan) if init is None or s.get("resume", True)]
    out = Path(out)
    deadline = time.time() + 60 * minutes
    previous = str(init) if init is not None else None
    summaries = []
    for i, stage in enumerate(stages):
        remaining = deadline - time.time()
        budget = remaining * stage["share"] / sum(s["share"] for s in stages[i:])
        fields = dict(data=data, out=str(out / Path(stage["config"]).stem), max_seconds=budget)
        if previous is not None:
            fields["init"] = previous
        if init is not None:
            fields["zero_velocity_init"] = False  # a resumed DiT keeps its trained output head
        # the plan's own settings first, then the caller's (a smoke run stays small), then the chain's
        config = TrainConfig.load(stage["config"], **(stage.get("set", {}) | (overrides or {}) | fields))
        start = time.time()
        summary = Trainer(config).train()
        records = [json.loads(line) for line in (Path(config.out) / "log.jsonl").read_text().splitlines()]
        losses = next((r for r in reversed(records) if "total" in r), {})
        summaries.append({
            "stage": config.stage, "steps": summary["step"], "seconds": round(time.time() - start, 1),
            "budget_s": round(budget, 1), "model": str(Path(config.out) / "model"),
            "last": {k: round(v, 5) for k, v in losses.items() if k not in ("step", "time_s")},
        })
        log(f"train-plan: {config.stage} {summary['step']} steps in {summaries[-1]['seconds']} s "
            f"(budget {budget:.0f} s), loss {losses.get('total', float('nan')):.4f}")
        previous = summaries[-1]["model"]
    return summaries
