"""Reading and writing weights: safetensors only (never pickles), every failure named.

Two sources exist: our own `dvface.safetensors` (written by `DVFace.save_pretrained`) and a
diffusers-format Wan2.1 folder the user downloaded (`vae/` and `transformer/`, each a
`config.json` plus one or more `diffusion_pytorch_model*.safetensors` files).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..errors import WeightsError

WAN_DOWNLOAD_HINT = (
    "download the diffusers-format Wan2.1 backbone once, e.g. "
    "`huggingface-cli download Wan-AI/Wan2.1-T2V-1.3B-Diffusers --local-dir Wan2.1-T2V-1.3B-Diffusers`, "
    "and pass that folder as the backbone"
)


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Load a safetensors file on CPU, turning a missing, truncated or corrupt file into a `WeightsError`."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} not found")
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(
            f"cannot read weights {path}: {exc}. The file is truncated or corrupt; "
            "download or export it again (compare its size with the original)"
        ) from exc


def write_safetensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    """Write atomically: a crash leaves the old file (or none), never half a file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp, metadata=metadata)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_state_dict(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor], source: str) -> None:
    """Raise a `WeightsError` listing missing, unexpected and mis-shaped keys, if there are any."""
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    shapes = sorted(
        f"{k}: file {tuple(found[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(expected) & set(found)
        if tuple(found[k].shape) != tuple(expected[k].shape)
    )
    problems = []
    for label, keys in (("missing keys", missing), ("unexpected keys", extra), ("mis-shaped keys", shapes)):
        if keys:
            shown = ", ".join(keys[:8]) + (f", ... ({len(keys)} in all)" if len(keys) > 8 else "")
            problems.append(f"{label}: {shown}")
    if problems:
        raise WeightsError(
            f"{source} does not match the model config ({'; '.join(problems)}). "
            "Use the config.json that was saved with these weights"
        )


def read_diffusers_component(folder: Path, component: str, expected_config: dict) -> dict[str, torch.Tensor]:
    """State dict of one component (`vae` or `transformer`) of a diffusers Wan2.1 folder.

    Its config.json must agree with ours on every key we set, so a 14B or Wan2.2 folder is
    refused up front instead of failing on the first mis-shaped tensor.
    """
    sub = Path(folder) / component
    config_path = sub / "config.json"
    if not config_path.is_file():
        raise WeightsError(f"{config_path} not found: {folder} is not a diffusers Wan2.1 folder; {WAN_DOWNLOAD_HINT}")
    theirs = json.loads(config_path.read_text())
    differing = sorted(
        f"{k}={theirs.get(k)!r} (expected {v!r})" for k, v in expected_config.items() if _normalise(theirs.get(k)) != _normalise(v)
    )
    if differing:
        raise WeightsError(f"{config_path} describes a different model: {', '.join(differing)}; {WAN_DOWNLOAD_HINT}")
    files = sorted(sub.glob("diffusion_pytorch_model*.safetensors"))
    if not files:
        raise WeightsError(f"no diffusion_pytorch_model*.safetensors in {sub}; {WAN_DOWNLOAD_HINT}")
    tensors: dict[str, torch.Tensor] = {}
    for file in files:
        tensors.update(read_safetensors(file))
    return tensors


def _normalise(value):
    return list(value) if isinstance(value, tuple) else value
