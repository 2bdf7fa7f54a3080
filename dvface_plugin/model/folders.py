"""Model folders: a path, or a name bundled under the repository's models/ (no torch needed)."""

from __future__ import annotations

from pathlib import Path

from ..errors import WeightsError

MODELS_DIR = Path(__file__).resolve().parents[2] / "models"
DEFAULT_MODEL = "dvface-tiny"


def resolve_model_folder(spec: str | Path | None = None) -> Path:
    """A model folder from a path or a bundled name under models/ (None: the bundled default)."""
    spec = DEFAULT_MODEL if spec is None or str(spec) == "" else spec
    path = Path(spec).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise WeightsError(f"--model {spec}: expected a model folder holding config.json and weights, got a file")
    looks_like_path = any(sep in str(spec) for sep in ("/", "\\")) or str(spec).startswith(".")
    if looks_like_path:
        raise WeightsError(f"model folder {path} not found; pass --model FOLDER holding config.json and weights")
    folder = MODELS_DIR / str(spec)
    if folder.is_dir():
        return folder
    hint = (
        f"the bundled default model {DEFAULT_MODEL!r} is missing from this install: reinstall dvface from a "
        "full checkout (models/ is part of the repository)"
        if str(spec) == DEFAULT_MODEL
        else "check the name"
    )
    raise WeightsError(
        f"model {str(spec)!r} not found: no folder {folder}; {hint}, or pass "
        "--model FOLDER with a model folder (config.json + dvface.safetensors, as written by save_pretrained)"
    )
