"""The DVFace network: shapes, identity at init, prior_scale, gradients, codebooks, weights I/O."""

from __future__ import annotations

import json

import pytest
import torch

from dvface_plugin.cli import main as cli_main
from dvface_plugin.commands.info import PAPER_TOTAL
from dvface_plugin.errors import InputError, WeightsError
from dvface_plugin.model.config import DVFaceConfig, FusionConfig, RefinerConfig
from dvface_plugin.model.dvface import CONFIG_NAME, WEIGHTS_NAME, DVFace


def make_model(seed: int = 0, refiner: int = 0, **fusion) -> DVFace:
    torch.manual_seed(seed)
    config = DVFaceConfig.preset("tiny")
    config.refiner = RefinerConfig(channels=refiner)
    if fusion:
        config.fusion = FusionConfig(**{**config.fusion.__dict__, **fusion})
    return DVFace(config).eval()


def clip(t: int = 5, h: int = 64, w: int = 64, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, t, h, w, generator=g) * 2 - 1


def backbone_alone(model: DVFace, x: torch.Tensor) -> torch.Tensor:
    """The Wan path with no ASTF at all: what a fresh DVFace must equal."""
    latent = model.encode(x)
    v = model.backbone.velocity(latent.z, model.config.timestep, model.context, lambda i, tok, grid: tok)
    out = model.backbone.decode(latent.z - model.config.sigma * v.float()).float()
    if model.config.detail_skip:
        out = (out + latent.detail).clamp(-1, 1)
    return out[:, :, : latent.frames, : latent.height, : latent.width]


def perturb_astf(model: DVFace) -> None:
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in model.fusion.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.5)


@pytest.fixture(scope="module")
def model() -> DVFace:
    return make_model()


@pytest.mark.parametrize("frames", [1, 2, 5, 17, 20])
def test_output_shape_for_any_clip_length(model, frames):
    with torch.inference_mode():
        out = model(clip(frames, 32, 32))
    assert out.shape == (1, 3, frames, 32, 32)
    assert out.abs().max() <= 1.0


@pytest.mark.parametrize("size", [(64, 96), (48, 80), (34, 50)])
def test_non_square_and_unaligned_sizes_are_padded_and_cropped_back(model, size):
    with torch.inference_mode():
        out = model(clip(3, *size))
    assert out.shape == (1, 3, 3, *size)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("query_source", ["hidden", "prior_t"])
def test_fresh_model_equals_backbone_alone(query_source):
    m = make_model(query_source=query_source)
    x = clip(5, 64, 64)
    with torch.inference_mode():
        assert torch.equal(m(x), backbone_alone(m, x))


@pytest.mark.parametrize("query_source", ["hidden", "prior_t"])
def test_prior_scale_zero_is_backbone_even_with_trained_astf(query_source):
    m = make_model(query_source=query_source)
    perturb_astf(m)
    x = clip(5, 64, 64)
    with torch.inference_mode():
        base = backbone_alone(m, x)
        assert torch.equal(m(x, prior_scale=0.0), base)
        assert not torch.allclose(m(x, prior_scale=1.0), base, atol=1e-4)  # the priors do act when enabled


@pytest.mark.parametrize("size", [(64, 64), (34, 50)])
def test_detail_skip_returns_the_input_when_the_velocity_is_zero(size):
    """What `zero_velocity_init` relies on: a restore stage starts at the identity, padding included."""
    m = make_model()
    assert m.config.detail_skip
    with torch.no_grad():
        m.backbone.transformer.proj_out.weight.zero_()
        m.backbone.transformer.proj_out.bias.zero_()
        x = clip(5, *size)
        torch.testing.assert_close(m(x), x, atol=1e-5, rtol=0)
        m.config.detail_skip = False  # without the skip the tiny VAE's reconstruction error shows
        assert (m(x) - x).abs().max() > 0.1


def test_a_fresh_refiner_is_the_identity_and_a_trained_one_corrects_the_detail():
    with_refiner = make_model(refiner=16)
    assert with_refiner.refiner is not None
    config = DVFaceConfig.from_dict(with_refiner.config.to_dict() | {"refiner": {"channels": 0}})
    without = DVFace(config).eval()
    without.load_state_dict({k: v for k, v in with_refiner.state_dict().items() if not k.startswith("refiner.")})
    x = clip(5, 48, 80)
    with torch.no_grad():
        torch.testing.assert_close(with_refiner(x), without(x), atol=0, rtol=0)
        torch.nn.init.normal_(with_refiner.refiner.tail.weight, std=0.05)
        out = with_refiner(x)
    assert out.shape == x.shape and out.abs().max() <= 1.0
    assert (out - without(x)).abs().mean() > 1e-3


def test_a_refiner_without_detail_skip_is_refused():
    data = DVFaceConfig.preset("tiny").to_dict() | {"detail_skip": False, "refiner": {"channels": 8}}
    with pytest.raises(ValueError, match="refiner needs detail_skip"):
        DVFaceConfig.from_dict(data)


def test_prior_scale_outside_unit_interval_is_refused(model):
    with pytest.raises(ValueError, match="prior_scale"):
        model(clip(1, 32, 32), prior_scale=1.5)


def test_only_dit_astf_and_refiner_get_gradients_vae_stays_frozen():
    m = make_model(refiner=8)
    m.train()
    out = m(clip(5, 32, 32))
    out.square().mean().backward()
    assert all(p.grad is None and not p.requires_grad for p in m.backbone.vae.parameters())
    assert all(p.grad is not None for p in m.trainable_parameters())
    # the zero-initialised output layers must still learn
    assert all(f.to_out.weight.grad.abs().sum() > 0 for f in m.fusion)
    assert all(f.modulation[-1].weight.grad.abs().sum() > 0 for f in m.fusion)


def test_codebook_lookup_returns_codebook_rows(model):
    with torch.inference_mode():
        priors = model.encode_priors(model.encode(clip(5, 64, 64)))
    for feats, book in ((priors.f_s, model.prior.codebook_s), (priors.f_t, model.prior.codebook_t)):
        rows = feats.reshape(-1, 1, feats.shape[-1])
        assert (rows == book.weight.detach()[None]).all(-1).any(-1).all()
    assert priors.f_s.shape == (1, 2, 4, model.config.prior.code_dim)  # 5 frames -> 2 latent frames, 2x2 grid
    assert priors.nbytes == 2 * priors.f_s.numel() * 4


def test_nearest_code_finds_the_row_itself(model):
    book = model.prior.codebook_s
    idx = torch.tensor([[3, 0, 17]])
    assert torch.equal(book.nearest(book.lookup(idx)), idx)


def test_passing_cached_priors_gives_the_same_output(model):
    x = clip(5, 64, 64)
    with torch.inference_mode():
        latent = model.encode(x)
        priors = model.encode_priors(latent)
        assert torch.equal(model(x, priors=priors), model(x))
        assert torch.equal(model.restore_latent(latent, priors, 0.5), model(x, prior_scale=0.5))


def test_same_input_same_output(model):
    x = clip(9, 64, 64)
    with torch.inference_mode():
        assert torch.equal(model(x), model(x))


def test_save_then_load_reproduces_outputs_bit_for_bit(tmp_path):
    m = make_model()
    perturb_astf(m)
    m.save_pretrained(tmp_path / "m")
    loaded = DVFace.from_pretrained(tmp_path / "m")
    x = clip(5, 64, 64)
    with torch.inference_mode():
        assert torch.equal(loaded(x), m(x))
    assert loaded.weights_digest() == m.weights_digest()
    assert json.loads((tmp_path / "m" / CONFIG_NAME).read_text())["name"] == "tiny"


def test_weights_digest_changes_with_weights():
    a, b = make_model(seed=0), make_model(seed=1)
    assert a.weights_digest() != b.weights_digest()


def test_backbone_from_a_diffusers_wan_folder(tmp_path):
    m = make_model()
    perturb_astf(m)
    wan = tmp_path / "wan"
    m.backbone.vae.save_pretrained(wan / "vae")
    m.backbone.transformer.save_pretrained(wan / "transformer")
    m.save_pretrained(tmp_path / "dvface", backbone="none")
    with pytest.raises(WeightsError, match="Wan2.1"):
        DVFace.from_pretrained(tmp_path / "dvface")
    loaded = DVFace.from_pretrained(tmp_path / "dvface", backbone=wan)
    x = clip(5, 64, 64)
    with torch.inference_mode():
        assert torch.equal(loaded(x), m(x))


def test_a_wan_folder_of_another_size_is_refused(tmp_path):
    m = make_model()
    m.save_pretrained(tmp_path / "dvface", backbone="none")
    wan = tmp_path / "wan"
    m.backbone.vae.save_pretrained(wan / "vae")
    m.backbone.transformer.save_pretrained(wan / "transformer")
    cfg_path = wan / "transformer" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["num_layers"] = 40
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(WeightsError, match="num_layers"):
        DVFace.from_pretrained(tmp_path / "dvface", backbone=wan)


def test_truncated_weights_give_a_clear_error(tmp_path):
    m = make_model()
    m.save_pretrained(tmp_path / "m")
    weights = tmp_path / "m" / WEIGHTS_NAME
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="truncated or corrupt"):
        DVFace.from_pretrained(tmp_path / "m")
    weights.write_bytes(b"\x00" * 64)
    with pytest.raises(WeightsError, match="truncated or corrupt"):
        DVFace.from_pretrained(tmp_path / "m")


def test_missing_extra_and_misshaped_keys_are_named(tmp_path):
    from safetensors.torch import load_file, save_file

    m = make_model()
    m.save_pretrained(tmp_path / "m")
    path = tmp_path / "m" / WEIGHTS_NAME
    tensors = load_file(str(path))
    tensors.pop("prior.codebook_s.weight")
    tensors["fusion.0.extra"] = torch.zeros(1)
    tensors["fusion.1.to_q.weight"] = torch.zeros(3, 3)
    save_file(tensors, str(path))
    with pytest.raises(WeightsError) as err:
        DVFace.from_pretrained(tmp_path / "m")
    message = str(err.value)
    assert "prior.codebook_s.weight" in message
    assert "fusion.0.extra" in message
    assert "fusion.1.to_q.weight" in message


def test_missing_folder_or_files_name_what_is_missing(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        DVFace.from_pretrained(tmp_path / "nope")
    (tmp_path / "m").mkdir()
    with pytest.raises(WeightsError, match=CONFIG_NAME):
        DVFace.from_pretrained(tmp_path / "m")
    DVFaceConfig.preset("tiny").save(tmp_path / "m" / CONFIG_NAME)
    with pytest.raises(WeightsError, match=WEIGHTS_NAME):
        DVFace.from_pretrained(tmp_path / "m")


@pytest.mark.parametrize(
    "bad, match",
    [
        (torch.zeros(1, 4, 2, 32, 32), "shape"),
        (torch.zeros(3, 2, 32, 32), "shape"),
        (torch.full((1, 3, 2, 32, 32), float("nan")), "NaN"),
        (torch.full((1, 3, 2, 32, 32), 255.0), r"\[-1, 1\]"),
    ],
)
def test_bad_clips_are_refused_with_a_named_problem(model, bad, match):
    with pytest.raises(InputError, match=match):
        model(bad)


def test_config_round_trip_and_unknown_keys(tmp_path):
    cfg = DVFaceConfig.preset("wan2.1-1.3b")
    cfg.save(tmp_path / "c.json")
    assert DVFaceConfig.load(tmp_path / "c.json") == cfg
    data = cfg.to_dict() | {"colour": "blue"}
    (tmp_path / "c.json").write_text(json.dumps(data))
    with pytest.raises(WeightsError, match="colour"):
        DVFaceConfig.load(tmp_path / "c.json")
    with pytest.raises(ValueError, match="query_source"):
        DVFaceConfig.from_dict(cfg.to_dict() | {"fusion": {"query_source": "text"}})


def test_info_reports_paper_scale_within_five_percent(capsys):
    assert cli_main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    counts = info["presets"]["wan2.1-1.3b"]
    assert abs(counts["total"] / PAPER_TOTAL - 1) < 0.05
    assert counts["dit"] == 1_418_996_800  # diffusers' Wan2.1-T2V-1.3B transformer
    assert counts["total"] == counts["vae"] + counts["dit"] + counts["prior"] + counts["astf"] + counts["refiner"]
    assert info["presets"]["tiny"]["total"] < 20e6
