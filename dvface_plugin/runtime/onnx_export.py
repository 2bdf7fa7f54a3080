"""The two inference graphs of a DVFace model, for the torch-free backend (`dvface export onnx`).

The engine caches a window's latent and prior features and re-runs only the backbone when the
user changes `prior_scale`, so the model is cut at the same place:

    encode_priors.onnx   pixels (1, 3, T, H, W) padded   -> z, f_s, f_t
    restore.onnx         z, f_s, f_t, prior_scale ()      -> pixels (1, 3, T, H, W) padded

Shapes are fixed (T = config.window, H = W = config.crop_size unless overridden) so TensorRT can
build one engine per graph; `onnx_model.OrtModel` pads smaller inputs up to them. The pair is
also exported for every shorter window the VAE takes (1, 5, 9 and 13 frames beside 17), so a
short clip or a track's short tail runs on the smallest pair that holds it. Graph inputs
and outputs are float32 at either precision: an fp16 export casts inside the graph, so callers
never handle half floats. The legacy TorchScript exporter cannot export the Wan VAE and DiT
(`aten::rms_norm`, nearest-exact upsampling), hence `dynamo=True`.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import time
import uuid
import warnings
from pathlib import Path

import torch
from torch import nn

from .. import __version__
from ..errors import InputError
from ..model.dvface import WEIGHTS_NAME, DVFace
from .onnx_conv2d import convs_as_2d
from .onnx_format import (
    ENCODE_GRAPH,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST_NAME,
    RESTORE_GRAPH,
    SHARED_DATA,
    file_sha256,
    replace_folder,
    share_external_data,
    short_graphs,
)

OPSET = 20  # what torch's dynamo exporter emits by default; TensorRT 10 parses it


class EncodePriorsGraph(nn.Module):
    """Padded pixels -> normalised latent, prior features and (with `detail_skip`) the detail
    x - D(z), as `DVFace.encode` + `encode_priors`."""

    def __init__(self, model: DVFace) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        m = self.model
        z = m.backbone.encode(pixels)
        priors = m.prior(z.to(next(m.prior.parameters()).dtype))
        out = (z, priors.f_s.float(), priors.f_t.float())
        if m.config.detail_skip:
            out += (pixels.float() - m.backbone.decode(z).float(),)
        return out


class RestoreGraph(nn.Module):
    """Latent + priors + prior_scale -> padded pixels, as `DVFace.restore_latent` before cropping.

    `DVFace.denoise` range-checks `prior_scale` in Python, which an exported graph cannot do on a
    tensor input, so the one-step update is written out here; `onnx_model` checks the range.
    """

    def __init__(self, model: DVFace) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, z: torch.Tensor, f_s: torch.Tensor, f_t: torch.Tensor, prior_scale: torch.Tensor, *detail: torch.Tensor
    ) -> torch.Tensor:
        m = self.model
        dtype = next(m.fusion.parameters()).dtype
        patch = m.config.prior.patch_size
        prior_grid = (z.shape[-2] // patch, z.shape[-1] // patch)
        f_s, f_t, scale = f_s.to(dtype), f_t.to(dtype), prior_scale.to(dtype)

        def inject(i: int, tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
            return m.fusion[i](tokens, f_s, f_t, grid, prior_grid, scale)

        velocity = m.backbone.velocity(z, m.config.timestep, m.context, inject)
        z_hat = z - m.config.sigma * velocity.float()
        out = m.backbone.decode(z_hat).float()
        return m.add_detail(out, detail[0]) if detail else out


def export_shape(model: DVFace, frames: int | None = None, size: int | None = None) -> tuple[int, int, int]:
    """(T, H, W) of the exported graphs: the engine window and crop size unless overridden, checked."""
    cfg = model.config
    frames = cfg.window if frames is None else int(frames)
    size = cfg.crop_size if size is None else int(size)
    stride_t, multiple = cfg.vae_temporal_stride, cfg.spatial_multiple
    if frames < 1 or (frames - 1) % stride_t:
        raise InputError(f"--frames must be {stride_t}k+1 (the VAE's temporal stride), got {frames}")
    if size < multiple or size % multiple:
        raise InputError(f"--size must be a positive multiple of {multiple} (VAE stride x prior patch), got {size}")
    return frames, size, size


def export_onnx(
    model: DVFace,
    folder: str | Path,
    *,
    frames: int | None = None,
    size: int | None = None,
    fp16: bool = False,
    weights_file: str | Path | None = None,
) -> dict:
    """Export `model` to `folder` (created; a previous export there is replaced) and return the manifest.

    `weights_file` is the safetensors file the model was loaded from; its sha256 goes into the
    manifest so `OrtModel` can tell when the graphs are stale. The folder appears complete or not
    at all: everything is written to a temporary sibling first.
    """
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or (any(folder.iterdir()) and not (folder / MANIFEST_NAME).is_file())):
        raise InputError(f"{folder} exists and is not an ONNX export folder; choose a new or empty output folder")
    t, h, w = export_shape(model, frames, size)
    precision = "fp16" if fp16 else "fp32"
    weights_sha = file_sha256(Path(weights_file)) if weights_file is not None else None
    digest = model.weights_digest()  # from the fp32 weights, equal to the torch model's cache identity

    dtype = torch.float16 if fp16 else torch.float32
    param = next(model.parameters())
    if param.dtype != dtype or param.device.type != "cpu":  # export a copy: `.to` would convert the caller's model
        model = copy.deepcopy(model).to(device="cpu", dtype=dtype)
    model = model.eval()
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".{folder.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
    tmp.mkdir()  # not mkdtemp: that one is private (0700), the export is an ordinary folder
    try:
        encode_io, restore_io = _export_pair(model, tmp, (t, h, w), (ENCODE_GRAPH, RESTORE_GRAPH))
        # Every shorter window the VAE takes (4k+1 frames), so short clips and tails cost in
        # proportion to their frames instead of a whole padded window.
        short = {n: _export_pair(model, tmp, (n, h, w), short_graphs(n))
                 for n in range(1, t, model.config.vae_temporal_stride)}
        ios = [encode_io, restore_io, *(io for pair in short.values() for io in pair)]
        # 3D convolutions as 2D ones (faster on onnxruntime's CPU), before the weights are placed:
        # the rewrite reorders the 3D kernels
        shared = share_external_data(tmp, [io["file"] for io in ios], transform=convs_as_2d)
        for io in ios:
            io["files"] = [io["file"], shared]
        opsets = {io.pop("opset") for io in ios}
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "dvface_version": __version__,
            "config_name": model.config.name,
            "config": model.config.to_dict(),
            "weights_file": WEIGHTS_NAME,
            "weights_sha256": weights_sha,
            "weights_digest": digest,
            "precision": precision,
            "opset": max(opsets),
            "shape": {"batch": 1, "frames": t, "height": h, "width": w},
            "graphs": {"encode_priors": encode_io, "restore": restore_io},
            "short_windows": {str(n): {"encode_priors": e, "restore": r} for n, (e, r) in short.items()},
            "exporter": {"torch": torch.__version__, "onnxscript": _version("onnxscript"), "dynamo": True},
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
        replace_folder(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def _export_pair(model: DVFace, folder: Path, shape: tuple[int, int, int], names: tuple[str, str]) -> tuple[dict, dict]:
    """Export the encode and restore graphs for windows of `shape` (T, H, W) into `folder`."""
    pixels = torch.zeros(1, 3, *shape)
    # example inputs of the restore graph; normal tensors even under a caller's inference_mode (not traceable)
    with torch.inference_mode(False), torch.no_grad():
        encoded = EncodePriorsGraph(model)(pixels)
    state = ["z", "f_s", "f_t"]
    detail = ["detail"] if model.config.detail_skip else []
    encode_io = _export(EncodePriorsGraph(model).eval(), (pixels,), folder / names[0], ["pixels"], state + detail)
    restore_io = _export(
        RestoreGraph(model).eval(),
        (*encoded[:3], torch.tensor(1.0), *encoded[3:]),
        folder / names[1],
        state + ["prior_scale"] + detail,
        ["pixels"],
    )
    return encode_io, restore_io


def _export(module: nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str]) -> dict:
    import onnx

    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # the exporter's own deprecations, not the user's business
        torch.onnx.export(
            module, args, str(path), dynamo=True, opset_version=OPSET, input_names=inputs, output_names=outputs,
            external_data=True, verbose=False,
        )
    proto = onnx.load(str(path), load_external_data=False)
    opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))

    def describe(values) -> list[dict]:
        return [
            {
                "name": v.name,
                "shape": [d.dim_value for d in v.type.tensor_type.shape.dim],
                "dtype": onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type).name,
            }
            for v in values
        ]

    files = sorted(p.name for p in path.parent.iterdir() if p.name.startswith(path.name))
    return {"file": path.name, "files": files, "inputs": describe(proto.graph.input),
            "outputs": describe(proto.graph.output), "opset": opset}


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def export_model_folder(
    model_folder: str | Path,
    out: str | Path,
    *,
    frames: int | None = None,
    size: int | None = None,
    fp16: bool = False,
    backbone: str | Path | None = None,
) -> dict:
    """Load a model folder and export it; the manifest records its weights file's checksum."""
    model_folder = Path(model_folder)
    model = DVFace.from_pretrained(model_folder, backbone=backbone)
    return export_onnx(model, out, frames=frames, size=size, fp16=fp16, weights_file=model_folder / WEIGHTS_NAME)


# --- CLI ---------------------------------------------------------------------------------------
