"""Training: losses, codebook maintenance, every stage lowers its loss, resume, and 2-rank DDP."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from diffusers import AutoencoderKLWan

from dvface_plugin.cli import main as cli_main
from dvface_plugin.errors import InputError
from dvface_plugin.metrics import stripe_share
from dvface_plugin.model.config import DVFaceConfig, RefinerConfig
from dvface_plugin.model.dvface import DVFace
from dvface_plugin.model.prior import Codebook
from dvface_plugin.training.adversarial import Adversary, DiscriminatorConfig
from dvface_plugin.runtime.stabilise import prefilter
from dvface_plugin.training.data import ClipSampler, photo_to_clip, split
from dvface_plugin.training.losses import (
    PyramidLoss,
    detail_energy_loss,
    laplacian,
    reconstruction_loss,
    stripe_loss,
    temporal_detail_loss,
    temporal_loss,
)
from dvface_plugin.training.plan import load_plan, run_plan
from dvface_plugin.training.quantize import DeadCodeReviver, quantise, usage_loss
from dvface_plugin.training.restoration_cache import RestorationCache
from dvface_plugin.training.stages import STAGES
from dvface_plugin.training import plan as plan_module
from dvface_plugin.training import trainer as trainer_module
from dvface_plugin.training.trainer import TrainConfig, Trainer, cpu_has_bf16


def textured_clip(frames: int, size: int, seed: int) -> np.ndarray:
    """A smooth random texture drifting by one pixel per frame: learnable, with real motion."""
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.integers(0, 256, (size // 4, size // 4, 3), dtype=np.uint8), (size + frames, size + frames),
                      interpolation=cv2.INTER_CUBIC)
    return np.stack([base[t : t + size, t : t + size] for t in range(frames)])


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("train_data")
    for i in range(6):
        np.save(root / f"clip{i}.npy", textured_clip(9, 48, i))
    cv2.imwrite(str(root / "photo.png"), textured_clip(1, 48, 99)[0])
    return root


def config(data_dir: Path, out: Path, stage: str, **kw) -> TrainConfig:
    base = dict(stage=stage, data=[str(data_dir)], out=str(out), steps=40, batch_size=2, frames=5, crop=32,
                degradation="light", lr=2e-3, log_every=1, checkpoint_every=1000, val_fraction=0.0, revive_every=10,
                cache_clips=4, cache_window=3)
    return TrainConfig(**(base | kw))


def losses_of(out: Path) -> list[float]:
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return [r["total"] for r in rows if "total" in r]


def test_temporal_loss_sees_flicker_that_reconstruction_hides():
    target = torch.zeros(1, 3, 4, 8, 8)
    steady = target + 0.1
    flicker = target + torch.tensor([0.1, -0.1, 0.1, -0.1]).view(1, 1, 4, 1, 1)
    assert reconstruction_loss(steady, target) == pytest.approx(reconstruction_loss(flicker, target))
    assert temporal_loss(steady, target) == 0
    assert temporal_loss(flicker, target) > 0.1


def test_temporal_detail_loss_sees_shimmer_the_plain_temporal_loss_barely_sees():
    gen = torch.Generator().manual_seed(0)
    target = torch.rand(1, 3, 1, 32, 32, generator=gen).expand(1, 3, 5, 32, 32) * 0.5  # a still face
    shimmer = target + 0.02 * torch.randn(1, 3, 5, 32, 32, generator=gen)  # fresh fine texture every frame
    drift = target + torch.linspace(0, 0.08, 5).view(1, 1, 5, 1, 1)  # a slow brightness change
    assert temporal_detail_loss(target, target) == 0
    # the plain loss ranks the harmless drift close to the shimmer; the detail band tells them apart
    assert temporal_detail_loss(shimmer, target) > 20 * temporal_detail_loss(drift, target)
    assert temporal_loss(shimmer, target) < 2 * temporal_loss(drift, target)
    one_frame = shimmer[:, :, :1]
    assert temporal_detail_loss(one_frame, target[:, :, :1]) == 0


def test_stripe_loss_penalises_a_painted_lattice_and_training_on_it_removes_it():
    gen = torch.Generator().manual_seed(0)
    smooth = torch.nn.functional.avg_pool2d(torch.rand(4, 3, 64, 64, generator=gen), 5, 1, 2)
    target = (smooth * 2 - 1).unsqueeze(2)  # (B, 3, 1, H, W), a soft texture in [-1, 1]
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    lattice = 0.05 * (torch.cos(2 * torch.pi * xx / 3) + torch.cos(2 * torch.pi * yy / 3))
    grain = 0.05 * torch.randn(target.shape, generator=gen)
    assert stripe_loss(target, target) == 0
    assert stripe_loss(target + lattice, target) > 10 * stripe_loss(target + grain, target)

    def share(clip: torch.Tensor) -> float:
        frame = ((clip[0, :, 0].permute(1, 2, 0) + 1) * 127.5).clamp(0, 255).round().byte().numpy()
        return stripe_share(frame)

    pred = (target + lattice).clone().requires_grad_(True)
    before = share(pred.detach())
    optimiser = torch.optim.Adam([pred], lr=0.01)
    for _ in range(30):
        optimiser.zero_grad()
        stripe_loss(pred, target).backward()
        optimiser.step()
    assert share(pred.detach()) < 0.5 * before


def test_pyramid_loss_weighs_detail_and_is_zero_on_equal_inputs():
    x = torch.rand(1, 3, 2, 32, 32) * 2 - 1
    blurred = torch.nn.functional.avg_pool3d(x, (1, 3, 3), stride=1, padding=(0, 1, 1))
    loss = PyramidLoss()
    assert loss(x, x) == 0
    assert loss(blurred, x) > loss(x + 0.05, x)  # losing texture costs more than a small offset


def sharp_and_soft(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A clip of fine random texture (B, 3, T, 32, 32) in [-1, 1] and the same clip blurred."""
    sharp = torch.from_numpy(textured_clip(3, 32, seed)[None]).permute(0, 4, 1, 2, 3).float() / 127.5 - 1
    noise = torch.rand(sharp.shape, generator=torch.Generator().manual_seed(seed)) * 0.6 - 0.3
    sharp = (sharp + noise).clamp(-1, 1)
    soft = torch.nn.functional.avg_pool3d(sharp, (1, 5, 5), stride=1, padding=(0, 2, 2), count_include_pad=False)
    return sharp, soft


def energy(clip: torch.Tensor) -> float:
    return float(laplacian(clip.flatten(1, 2)).pow(2).mean())


def test_detail_loss_asks_for_the_ground_truths_sharpness_not_its_exact_texture():
    sharp, soft = sharp_and_soft()
    other_texture = sharp_and_soft(seed=5)[0]
    assert detail_energy_loss(sharp, sharp) < 1e-3
    # a different texture of the same sharpness scores far better than the blurred truth, unlike L1
    assert detail_energy_loss(other_texture, sharp) < 0.5 * detail_energy_loss(soft, sharp)
    assert reconstruction_loss(other_texture, sharp) > reconstruction_loss(soft, sharp)
    out = soft.clone().requires_grad_(True)
    optimiser = torch.optim.Adam([out], lr=1e-2)
    for _ in range(30):  # descending it puts detail back into the soft clip
        optimiser.zero_grad()
        detail_energy_loss(out, sharp).backward()
        optimiser.step()
    assert energy(out.detach()) > 2 * energy(soft)


def test_the_adversary_learns_real_from_soft_and_pushes_a_soft_output_to_sharpen():
    torch.manual_seed(0)
    adversary = Adversary(DiscriminatorConfig(channels=16, layers=2, lr=1e-3), torch.device("cpu"))
    for step in range(60):
        sharp, soft = sharp_and_soft(seed=step % 7)
        adversary.step(soft, sharp)
    sharp, soft = sharp_and_soft(seed=11)  # a texture it has not seen
    with torch.no_grad():
        assert float(adversary.net(sharp).mean()) > float(adversary.net(soft).mean())
    adversary.optimizer.zero_grad(set_to_none=True)
    fake = soft.clone().requires_grad_(True)
    optimiser = torch.optim.Adam([fake], lr=5e-3)
    for _ in range(40):  # the restorer's term alone, the critic fixed: the output moves towards real
        optimiser.zero_grad()
        adversary.generator_loss(fake).backward()
        optimiser.step()
    with torch.no_grad():  # rated more real than where it started, and carrying more fine detail
        assert float(adversary.net(fake).mean()) > float(adversary.net(soft).mean()) + 0.5
    assert energy(fake.detach()) > 1.3 * energy(soft)
    assert all(p.grad is None for p in adversary.net.parameters())  # the critic learns nothing from it
    assert all(p.requires_grad for p in adversary.net.parameters())  # frozen only inside generator_loss


def test_quantise_uses_nearest_codes_with_straight_through_gradient():
    book = Codebook(8, 4)
    feats = book.weight.detach()[[1, 5]].clone().view(1, 1, 2, 4).requires_grad_(True)
    q, loss, idx = quantise(feats + 1e-3, book)
    assert idx.flatten().tolist() == [1, 5]
    q.sum().backward()
    assert torch.equal(feats.grad, torch.ones_like(feats))


def test_usage_loss_is_lower_for_spread_out_assignments():
    book = Codebook(4, 2)
    with torch.no_grad():
        book.weight.copy_(torch.tensor([[0.0, 0], [5, 0], [0, 5], [5, 5]]))
    collapsed = torch.zeros(1, 1, 8, 2)
    spread = book.weight.detach().repeat(2, 1).view(1, 1, 8, 2)
    assert usage_loss(spread, book) < usage_loss(collapsed, book)


def test_dead_codes_are_revived_from_batch_features():
    book = Codebook(4, 2)
    reviver = DeadCodeReviver(4, decay=0.0, threshold=0.1)
    reviver.update(torch.zeros(10, dtype=torch.long))  # only code 0 is used
    feats = torch.full((1, 1, 3, 2), 7.0)
    assert reviver.revive(book, feats, torch.Generator().manual_seed(0)) == 3
    assert torch.equal(book.weight.data[1:], torch.full((3, 2), 7.0))


def test_photo_becomes_a_gently_moving_clip():
    image = textured_clip(1, 64, 3)[0]
    clip = photo_to_clip(image, 5, np.random.default_rng(0))
    assert clip.shape == (5, 64, 64, 3)
    assert np.array_equal(clip[0], image)
    diffs = [np.abs(clip[i + 1].astype(int) - clip[i]).mean() for i in range(4)]
    assert all(0 < d < 40 for d in diffs)


def test_a_clip_shorter_than_the_window_plays_forward_then_backward(tmp_path):
    np.save(tmp_path / "short.npy", textured_clip(4, 32, 0))
    sampler = ClipSampler([tmp_path / "short.npy"], frames=9, crop=32, degradation="light")
    _, hq = sampler.sample(1, np.random.default_rng(0))
    frames = ((hq[0].permute(1, 2, 3, 0) + 1) * 127.5).round().to(torch.uint8).numpy()
    source = textured_clip(4, 32, 0)
    assert all(np.array_equal(frames[i], source[j]) for i, j in enumerate([0, 1, 2, 3, 2, 1, 0, 1, 2]))


def test_split_is_by_clip_and_stable(data_dir):
    items = sorted(data_dir.iterdir())
    train, val = split(items, 0.5)
    assert sorted(train + val) == items and not set(train) & set(val)
    assert split(items, 0.5) == (train, val)


def test_sampler_pairs_are_aligned_and_degraded(data_dir):
    sampler = ClipSampler(sorted(data_dir.glob("*.npy")), frames=5, crop=32, degradation="medium")
    lq, hq = sampler.sample(2, np.random.default_rng(0))
    assert lq.shape == hq.shape == (2, 3, 5, 32, 32)
    assert hq.min() >= -1 and hq.max() <= 1
    assert not torch.equal(lq, hq)
    lq2, hq2 = sampler.sample(2, np.random.default_rng(0))
    assert torch.equal(lq, lq2) and torch.equal(hq, hq2)


def test_the_sampler_prefilters_lq_as_the_model_config_asks(data_dir, tmp_path):
    """What the model is trained on is what the engine feeds it: the LQ window prefiltered."""
    items = sorted(data_dir.glob("*.npy"))
    plain = ClipSampler(items, frames=5, crop=32, degradation="medium")
    steady = ClipSampler(items, frames=5, crop=32, degradation="medium", prefilter=2)
    lq, hq = plain.sample(2, np.random.default_rng(0))
    lq2, hq2 = steady.sample(2, np.random.default_rng(0))
    assert torch.equal(hq, hq2) and not torch.equal(lq, lq2)
    expected = np.stack([prefilter(clip, 2) for clip in lq.permute(0, 2, 3, 4, 1).numpy()])
    torch.testing.assert_close(lq2, torch.from_numpy(expected).permute(0, 4, 1, 2, 3), atol=1e-6, rtol=0)
    trainer = Trainer(config(data_dir, tmp_path / "p", "restore", steps=1, init_overrides={"prefilter": 2}))
    assert trainer.model.config.prefilter == 2 and trainer.train_data.prefilter == 2


def test_grey_clips_are_grey_in_input_and_target_and_colour_runs_keep_their_batches(data_dir, tmp_path):
    """A `grey` share of clips is black-and-white film: the target as well as its degraded input
    (a model restores grey faces and never learns to colourise); at 0 nothing extra is drawn."""
    items = sorted(data_dir.glob("*.npy"))
    colour = ClipSampler(items, frames=5, crop=32, degradation="medium")
    lq, hq = colour.sample(4, np.random.default_rng(0))
    lq0, hq0 = ClipSampler(items, frames=5, crop=32, degradation="medium", grey=0.0).sample(4, np.random.default_rng(0))
    assert torch.equal(lq, lq0) and torch.equal(hq, hq0)
    lq1, hq1 = ClipSampler(items, frames=5, crop=32, degradation="medium", grey=1.0).sample(4, np.random.default_rng(0))
    spread = lambda x: float((x.amax(dim=1) - x.amin(dim=1)).mean())  # noqa: E731  (channel spread; 0 = grey)
    assert spread(hq1) == 0.0 < 4 * spread(lq1) < spread(lq)  # only the degradation's colour noise is not grey
    half = ClipSampler(items, frames=5, crop=32, degradation="medium", grey=0.5)
    greys = [spread(half.sample(1, np.random.default_rng(seed))[1]) == 0.0 for seed in range(40)]
    assert 8 < sum(greys) < 32
    trainer = Trainer(config(data_dir, tmp_path / "g", "restore", steps=1, grey=0.3))
    assert trainer.train_data.grey == 0.3
    path = tmp_path / "grey.json"
    path.write_text(json.dumps(dataclasses.asdict(config(data_dir, tmp_path / "g2", "restore", grey=1.5))))
    with pytest.raises(InputError, match=r"grey is a share of the clips, in \[0, 1\]"):
        TrainConfig.load(path)


def test_a_degradation_mixture_draws_every_preset_and_names_an_unknown_one(data_dir, monkeypatch):
    drawn = []

    def record(clip, preset, seed):
        drawn.append(preset)
        return clip

    monkeypatch.setattr("dvface_plugin.training.data.degrade_clip", record)
    sampler = ClipSampler(sorted(data_dir.glob("*.npy")), frames=5, crop=32, degradation=["light", "heavy"])
    sampler.sample(16, np.random.default_rng(0))
    assert set(drawn) == {"light", "heavy"}
    with pytest.raises(InputError, match="'nope'"):
        ClipSampler(sorted(data_dir.glob("*.npy")), frames=5, crop=32, degradation=["light", "nope"])


def test_restoration_cache_serves_the_frozen_restoration(data_dir):
    torch.manual_seed(0)
    cfg = DVFaceConfig.preset("tiny")
    cfg.refiner = RefinerConfig(channels=8)
    model = DVFace(cfg).eval()
    sampler = ClipSampler(sorted(data_dir.glob("*.npy")), frames=5, crop=32, degradation="medium")
    cache = RestorationCache(sampler, model, clips=2, window=3, seed=(7,), device=torch.device("cpu"))
    lq, hq = sampler.sample(1, np.random.default_rng([7, 0]))  # the first cached clip
    decoded, detail = cache.parts[:1].float().split(3, dim=1)
    with torch.no_grad():
        torch.testing.assert_close(model.add_detail(decoded, detail), model(lq), atol=2e-2, rtol=0)
    torch.testing.assert_close(cache.hq[:1].float(), hq, atol=1e-2, rtol=0)
    parts, window_hq = cache.sample(4, np.random.default_rng(0))
    assert parts.shape == (4, 6, 3, 32, 32) and window_hq.shape == (4, 3, 3, 32, 32)
    with pytest.raises(InputError, match="cache_window=9"):
        RestorationCache(sampler, model, clips=1, window=9, seed=(0,), device=torch.device("cpu"))


def test_cosine_schedule_warms_up_then_decays_to_zero(data_dir, tmp_path):
    trainer = Trainer(config(data_dir, tmp_path / "c", "predict", lr_schedule="cosine", steps=100, lr=1e-3))
    rates = []
    for step in range(100):
        trainer.step = step
        rates.append(trainer.learning_rate())
    assert rates[0] < rates[4] == pytest.approx(1e-3)  # 5 warm-up steps
    assert all(a >= b for a, b in zip(rates[4:], rates[5:])) and rates[-1] < 1e-5
    (tmp_path / "bad.json").write_text(json.dumps({"stage": "predict", "data": [str(data_dir)], "out": "x",
                                                   "lr_schedule": "linear"}))
    with pytest.raises(InputError, match="lr_schedule"):
        TrainConfig.load(tmp_path / "bad.json")


def run_stage(data_dir: Path, out: Path, stage: str, init: str = "tiny", **kw) -> list[float]:
    Trainer(config(data_dir, out, stage, init=init, **kw)).train()
    return losses_of(out)


@pytest.mark.parametrize("stage", ["vae", "codebook", "predict", "restore", "refine"])
def test_each_stage_lowers_its_loss(data_dir, tmp_path, stage):
    grow = {"init_overrides": {"refiner": {"channels": 48}}} if stage in ("restore", "refine") else {}
    losses = run_stage(data_dir, tmp_path / stage, stage, lr=1e-2 if stage in ("restore", "refine") else 2e-3, **grow)
    assert np.mean(losses[-5:]) < 0.97 * np.mean(losses[:5]), losses
    model = DVFace.from_pretrained(tmp_path / stage / "model")
    assert model.config.name == "tiny"


def test_vae_stage_stores_latent_statistics(data_dir, tmp_path):
    run_stage(data_dir, tmp_path / "vae", "vae", steps=3)
    model = DVFace.from_pretrained(tmp_path / "vae" / "model")
    wan_default = AutoencoderKLWan().config.latents_mean
    assert model.config.vae["latents_mean"] != wan_default
    assert len(model.config.vae["latents_std"]) == model.config.vae["z_dim"]
    assert model.backbone.latents_std.flatten().tolist() == pytest.approx(model.config.vae["latents_std"])


def test_restore_stage_trains_only_astf_dit_and_refiner(data_dir, tmp_path):
    out = tmp_path / "r"
    trainer = Trainer(config(data_dir, out, "restore", steps=2, init_overrides={"refiner": {"channels": 8}}))
    snapshot = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.train()
    after = trainer.model.state_dict()
    changed = {k.split(".")[0] + "." + k.split(".")[1] for k in snapshot if not torch.equal(snapshot[k], after[k])}
    assert changed <= {"backbone.transformer", "fusion.0", "fusion.1", "fusion.2", "fusion.3",
                       "refiner.head", "refiner.body", "refiner.tail"}
    assert {"backbone.transformer", "refiner.tail"} <= changed
    assert all(torch.equal(snapshot[k], after[k]) for k in snapshot if k.startswith(("backbone.vae", "prior.")))


def test_refine_stage_trains_only_the_refiner(data_dir, tmp_path):
    trainer = Trainer(config(data_dir, tmp_path / "r", "refine", steps=2, init_overrides={"refiner": {"channels": 8}}))
    snapshot = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.train()
    after = trainer.model.state_dict()
    changed = {k for k in snapshot if not torch.equal(snapshot[k], after[k])}
    assert changed and all(k.startswith("refiner.") for k in changed)
    with pytest.raises(InputError, match="refine stage needs a model with a refiner"):
        Trainer(config(data_dir, tmp_path / "r2", "refine", init=str(save_without_refiner(tmp_path / "plain"))))


def test_a_zero_perceptual_weight_skips_the_perceptual_loss(data_dir, tmp_path):
    weights = {"per": 0.0, "temp": 1.0, "kl": 0.0, "usage": 0.0}
    trainer = Trainer(config(data_dir, tmp_path / "r", "refine", init_overrides={"refiner": {"channels": 8}},
                             loss_weights=weights))
    out, hq = torch.zeros(1, 3, 3, 32, 32), torch.rand(1, 3, 3, 32, 32)
    assert trainer.stage.losses(out, hq)["per"] == 0
    trainer.stage.w = weights | {"per": 0.5}
    assert trainer.stage.losses(out, hq)["per"] > 0


def save_without_refiner(folder: Path) -> Path:
    """A tiny model trained without a refiner (the preset's default)."""
    torch.manual_seed(3)
    DVFace(DVFaceConfig.preset("tiny")).save_pretrained(folder)
    return folder


def test_init_overrides_add_a_refiner_to_a_trained_model_and_keep_its_weights(data_dir, tmp_path):
    trained = DVFace.from_pretrained(save_without_refiner(tmp_path / "trained"))
    refiner = {"channels": 8, "blocks": 1, "unshuffle": 4}
    trainer = Trainer(config(data_dir, tmp_path / "grown", "restore", init=str(tmp_path / "trained"),
                             init_overrides={"refiner": refiner}, steps=1))
    grown = trainer.model.eval()
    assert grown.refiner is not None and grown.config.refiner.channels == 8
    old = trained.state_dict()
    assert all(torch.equal(old[k], v) for k, v in grown.state_dict().items() if k in old)
    x = torch.rand(1, 3, 5, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(grown(x), trained(x), atol=0, rtol=0)  # a fresh refiner is the identity
    trainer.train()
    assert DVFace.from_pretrained(tmp_path / "grown" / "model").config.refiner.channels == 8
    with pytest.raises(InputError, match="init_overrides.*reshape"):
        Trainer(config(data_dir, tmp_path / "bad", "restore", init=str(tmp_path / "trained"),
                       init_overrides={"prior": {"code_dim": 64, "codebook_size": 512, "num_heads": 4}}))


def test_init_fresh_restarts_a_refiner_of_a_new_shape_and_keeps_the_rest(data_dir, tmp_path):
    base = {"channels": 8, "blocks": 1, "unshuffle": 4}
    trained = DVFace.from_pretrained(save_without_refiner(tmp_path / "trained"))
    first = Trainer(config(data_dir, tmp_path / "a", "refine", init=str(tmp_path / "trained"),
                           init_overrides={"refiner": base}, steps=2, cache_clips=2))
    first.train()
    reshaped = {"channels": 4, "blocks": 2, "unshuffle": 2}
    with pytest.raises(InputError, match="init_fresh"):
        Trainer(config(data_dir, tmp_path / "b", "refine", init=str(tmp_path / "a" / "model"),
                       init_overrides={"refiner": reshaped}))
    with pytest.raises(InputError, match=r"init_fresh \['refinr'\].*refiner"):
        Trainer(config(data_dir, tmp_path / "b", "refine", init=str(tmp_path / "a" / "model"),
                       init_overrides={"refiner": reshaped}, init_fresh=["refinr"]))
    restarted = Trainer(config(data_dir, tmp_path / "b", "refine", init=str(tmp_path / "a" / "model"),
                               init_overrides={"refiner": reshaped}, init_fresh=["refiner"])).model.eval()
    assert restarted.config.refiner.unshuffle == 2 and restarted.config.refiner.blocks == 2
    old = trained.state_dict()
    assert all(torch.equal(old[k], v) for k, v in restarted.state_dict().items() if k in old)
    x = torch.rand(1, 3, 5, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():  # the restarted refiner is the identity, whatever the first one learned
        torch.testing.assert_close(restarted(x), trained(x), atol=0, rtol=0)


def test_the_adversarial_refine_stage_trains_the_discriminator_apart_and_resumes_exactly(data_dir, tmp_path):
    weights = {"per": 0.0, "temp": 1.0, "tdetail": 1.0, "detail": 1.0, "stripes": 1.0, "adv": 0.1}
    kw = dict(init_overrides={"refiner": {"channels": 8}}, loss_weights=weights, steps=6,
              discriminator={"channels": 8, "layers": 2})
    straight = Trainer(config(data_dir, tmp_path / "s", "refine", checkpoint_every=3, **kw))
    disc_ids = {id(p) for p in straight.adversary.net.parameters()}
    assert disc_ids and not disc_ids & {id(p) for p in straight.params}  # the restorer's optimiser never sees it
    before = {k: v.clone() for k, v in straight.adversary.net.state_dict().items()}
    straight.train()
    rows = [json.loads(line) for line in (tmp_path / "s" / "log.jsonl").read_text().splitlines()]
    assert all({"disc", "adv", "detail", "tdetail", "stripes", "sharpness"} <= set(r) for r in rows if "total" in r)
    assert all(r["tdetail"] > 0 for r in rows if "total" in r)
    assert any(not torch.equal(before[k], v) for k, v in straight.adversary.net.state_dict().items())

    interrupted = tmp_path / "i"
    Trainer(config(data_dir, interrupted, "refine", checkpoint_every=3, **kw)).train()
    shutil.rmtree(interrupted / "model")
    resumed = Trainer(config(data_dir, interrupted, "refine", checkpoint_every=3, **kw))
    assert resumed.step == 3
    resumed.train()
    a = DVFace.from_pretrained(tmp_path / "s" / "model").state_dict()
    b = DVFace.from_pretrained(interrupted / "model").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    for bad, match in (({"discriminator": {"width": 8}}, "discriminator options"),
                       ({"stage": "vae", "loss_weights": {"adv": 0.1}}, "adversarial loss")):
        (tmp_path / "bad.json").write_text(json.dumps({"stage": "refine", "data": [str(data_dir)], "out": "x"} | bad))
        with pytest.raises(InputError, match=match):
            TrainConfig.load(tmp_path / "bad.json")


def test_resume_continues_exactly_where_it_stopped(data_dir, tmp_path):
    straight = tmp_path / "straight"
    Trainer(config(data_dir, straight, "codebook", steps=8, checkpoint_every=4)).train()
    interrupted = tmp_path / "interrupted"
    Trainer(config(data_dir, interrupted, "codebook", steps=4)).save_checkpoint()  # a checkpoint at step 0
    shutil.rmtree(interrupted)
    Trainer(config(data_dir, interrupted, "codebook", steps=8, checkpoint_every=4)).train()
    # crash after the step-4 checkpoint: keep only the checkpoint, rerun the same command
    shutil.rmtree(interrupted / "model")
    (interrupted / "log.jsonl").unlink()
    resumed = Trainer(config(data_dir, interrupted, "codebook", steps=8, checkpoint_every=4))
    assert resumed.step == 4
    resumed.train()
    a = DVFace.from_pretrained(straight / "model").state_dict()
    b = DVFace.from_pretrained(interrupted / "model").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_bundled_recipe_files_load_and_chain_stage_to_stage():
    """models/train: each file is a valid config whose `init` is a preset or an earlier file's output
    (its final model, or its checkpoint where a stage was cut short, as J's refine-sharp was)."""
    files = sorted((Path(__file__).parents[1] / "models" / "train").glob("*.json"))
    plans = [p for p in files if "stages" in json.loads(p.read_text())]
    recipes = {p.stem: TrainConfig.load(p) for p in files if p not in plans}
    assert {"tiny-vae", "tiny-codebook", "tiny-predict", "tiny-restore", "tiny-restore17", "tiny-refine"} <= set(recipes)
    outputs = {str(Path(c.out) / part) for c in recipes.values() for part in ("model", "checkpoint")}
    for name, recipe in recipes.items():
        assert recipe.init in ("tiny", "base") or recipe.init in outputs or recipe.init.startswith("models/"), name
        assert recipe.frames % 4 == 1 and "benchmark" not in " ".join(recipe.data), name
    for plan in plans:  # a plan's stages are recipes, in the order they chain: a run of consecutive stages
        stages = [TrainConfig.load(s["config"], **s.get("set", {})) for s in load_plan(plan)]
        first = STAGES.index(stages[0].stage)
        assert [s.stage for s in stages] == list(STAGES)[first : first + len(stages)], plan
        assert all(str(Path(a.out) / "model") == b.init for a, b in zip(stages, stages[1:])), plan


def test_cli_runs_a_stage_from_a_config_file(data_dir, tmp_path, capsys):
    cfg = config(data_dir, tmp_path / "cli", "predict", steps=2)
    path = tmp_path / "predict.json"
    path.write_text(json.dumps(cfg.__dict__))
    assert cli_main(["train", "predict", "--config", str(path)]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["step"] == 2
    assert cli_main(["train", "vae", "--config", str(path)]) == 2  # wrong stage for this file


@pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has no native bf16 (AVX512-BF16 / AMX)")
def test_bf16_on_the_cpu_trains_in_bf16_and_follows_fp32(data_dir, tmp_path):
    grow = {"init_overrides": {"refiner": {"channels": 16}}, "lr": 1e-2, "steps": 12}
    fp32 = run_stage(data_dir, tmp_path / "fp32", "restore", **grow)
    bf16 = run_stage(data_dir, tmp_path / "bf16", "restore", precision="bf16", **grow)
    assert bf16 != fp32  # autocast took: the same batches give other losses
    assert bf16[0] == pytest.approx(fp32[0], rel=0.02)  # the same step 1, to bf16's precision
    assert np.mean(bf16[-3:]) < 0.97 * np.mean(bf16[:3]), bf16
    weights = DVFace.from_pretrained(tmp_path / "bf16" / "model").state_dict()
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in weights.values())


def test_an_unknown_or_unsupported_training_precision_is_refused(data_dir, tmp_path, capsys, monkeypatch):
    path = tmp_path / "predict.json"
    path.write_text(json.dumps(config(data_dir, tmp_path / "p", "predict", steps=1, precision="fp16").__dict__))
    with pytest.raises(InputError, match="precision must be one of"):
        TrainConfig.load(path)
    monkeypatch.setattr(trainer_module, "cpu_has_bf16", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cli_main(["train", "predict", "--config", str(path), "--precision", "bf16"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bf16" in err[0] and '"precision": "fp32"' in err[0]
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("budget", [{}, {"steps": 10**6, "max_seconds": 3.0}], ids=["steps", "clock"])
def test_two_ranks_under_torchrun_end_with_identical_weights(data_dir, tmp_path, budget):
    cfg = config(data_dir, tmp_path / "ddp", "codebook", **({"steps": 12, "revive_every": 5} | budget))
    path = tmp_path / "ddp.json"
    path.write_text(json.dumps(cfg.__dict__))
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "dvface_plugin.cli", "train", "codebook", "--config", str(path)]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    done = [json.loads(line) for line in (tmp_path / "ddp" / "log.jsonl").read_text().splitlines()][-1]
    assert done["event"] == "done" and len(done["rank_digests"]) == 2
    assert done["ranks_identical"], done


def test_a_distributed_run_frees_its_ddp_wrappers_before_the_process_group(data_dir, tmp_path, monkeypatch):
    """A DDP reducer holding the group's last reference destroys it with the GIL held, which can hang
    rank 0 at exit; so the wrappers must be gone when the group is destroyed (a 1-rank gloo group here)."""
    import torch.distributed as dist
    import weakref

    dist.init_process_group("gloo", init_method=(tmp_path / "store").as_uri(), rank=0, world_size=1)
    monkeypatch.setenv("WORLD_SIZE", "2")  # the Trainer takes the group above as a distributed run's
    weights = {"per": 0.0, "temp": 1.0, "detail": 1.0, "adv": 0.1}
    try:
        trainer = Trainer(config(data_dir, tmp_path / "t", "refine", steps=2, loss_weights=weights,
                                 init_overrides={"refiner": {"channels": 8}},
                                 discriminator={"channels": 8, "layers": 2}))
        wrappers = [weakref.ref(trainer.wrapped), weakref.ref(trainer.adversary.wrapped)]
        assert all(isinstance(w(), torch.nn.parallel.DistributedDataParallel) for w in wrappers)
        alive_at_destroy = []
        destroy = dist.destroy_process_group
        monkeypatch.setattr(dist, "destroy_process_group",
                            lambda *a: (alive_at_destroy.append([w() is not None for w in wrappers]), destroy(*a)))
        assert trainer.train()["ranks_identical"]
        assert alive_at_destroy == [[False, False]]
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_loader_threads_draw_the_same_batches_as_the_plain_loop(data_dir, tmp_path):
    plain = Trainer(config(data_dir, tmp_path / "a", "vae"))
    threaded = Trainer(config(data_dir, tmp_path / "b", "vae", loader_threads=3))
    a, b = plain._batches(), threaded._batches()
    for _ in range(5):
        (lq_a, hq_a), (lq_b, hq_b) = next(a), next(b)
        assert torch.equal(lq_a, lq_b) and torch.equal(hq_a, hq_b)
    b.close()


def test_max_seconds_ends_a_run_early_with_the_lr_decayed(data_dir, tmp_path):
    trainer = Trainer(config(data_dir, tmp_path / "t", "predict", steps=10**6, max_seconds=2.0, lr_schedule="cosine"))
    summary = trainer.train()
    assert 0 < summary["step"] < 10**6
    assert time.time() - trainer.started < 30
    assert trainer.learning_rate() < 0.01 * trainer.cfg.lr  # the cosine reached its end with the clock
    assert (tmp_path / "t" / "model" / "dvface.safetensors").is_file()


def test_a_run_whose_set_up_used_its_whole_budget_still_takes_one_step(data_dir, tmp_path):
    trainer = Trainer(config(data_dir, tmp_path / "t", "predict", steps=10**6, max_seconds=1e-9))
    assert trainer.train()["step"] == 1
    records = [json.loads(line) for line in (tmp_path / "t" / "log.jsonl").read_text().splitlines()]
    assert any("total" in r for r in records)


def test_a_plan_stage_sets_fields_of_its_config_and_merges_loss_weights(tmp_path, monkeypatch):
    (tmp_path / "restore.json").write_text(json.dumps(
        {"stage": "restore", "data": ["d"], "lr": 1e-4, "loss_weights": {"temp": 1.0, "adv": 0.05, "stripes": 1.0}}))
    stage = {"config": "restore.json", "share": 1.0, "set": {"loss_weights": {"adv": 0.15}, "lr": 5e-5}}
    (tmp_path / "plan.json").write_text(json.dumps({"stages": [stage]}))
    seen = []

    class Recorder:  # stands in for the trainer: what config would it have trained?
        def __init__(self, cfg):
            seen.append(cfg)
            self.cfg = cfg

        def train(self):
            Path(self.cfg.out).mkdir(parents=True)
            (Path(self.cfg.out) / "log.jsonl").write_text('{"total": 1.0}\n')
            return {"step": 0}

    monkeypatch.setattr(plan_module, "Trainer", Recorder)
    run_plan(tmp_path / "plan.json", 1.0, ["d"], tmp_path / "run", log=lambda m: None)
    assert seen[0].loss_weights == {"temp": 1.0, "adv": 0.15, "stripes": 1.0} and seen[0].lr == 5e-5
    (tmp_path / "plan.json").write_text(json.dumps({"stages": [stage | {"set": [0.15]}]}))
    with pytest.raises(InputError, match="set"):
        load_plan(tmp_path / "plan.json")


def write_plan(data_dir: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for stage in STAGES:
        cfg = config(data_dir, folder / stage, stage, steps=3, init="tiny")
        if stage == "refine":
            cfg.init_overrides = {"refiner": {"channels": 8, "blocks": 1}}
        (folder / f"{stage}.json").write_text(json.dumps(cfg.__dict__))
        names.append({"config": f"{stage}.json", "share": 1.0, "resume": stage != "vae"})
    (folder / "plan.json").write_text(json.dumps({"stages": names}))
    return folder / "plan.json"


def test_a_plan_chains_every_stage_and_resumes_without_the_vae(data_dir, tmp_path):
    plan = write_plan(data_dir, tmp_path / "recipes")
    first = run_plan(plan, 5.0, [str(data_dir)], tmp_path / "run1", log=lambda m: None)
    assert [s["stage"] for s in first] == list(STAGES) and all(s["steps"] == 3 for s in first)
    vae = DVFace.from_pretrained(first[0]["model"]).backbone.vae.state_dict()
    again = run_plan(plan, 5.0, [str(data_dir)], tmp_path / "run2", init=first[-1]["model"], log=lambda m: None)
    assert [s["stage"] for s in again] == list(STAGES[1:])
    resumed = DVFace.from_pretrained(again[-1]["model"])
    assert all(torch.equal(v, resumed.backbone.vae.state_dict()[k]) for k, v in vae.items())
    with pytest.raises(InputError, match="minutes"):
        run_plan(plan, 0, [str(data_dir)], tmp_path / "run3")
