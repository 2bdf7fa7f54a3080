"""`dvface info`: versions, devices, and every preset's parameter counts by part.

Presets are built on the meta device, so counting the 1.6 B-parameter preset allocates nothing.
"""

from __future__ import annotations

import argparse
import json
import platform

from .. import __version__
from ..model.config import PRESETS

PAPER_TOTAL = 1624.55e6  # DVFace's reported parameter count (Wan2.1-T2V-1.3B backbone)


def preset_counts(name: str) -> dict[str, int]:
    import torch

    from ..model.config import DVFaceConfig
    from ..model.dvface import DVFace

    with torch.device("meta"):
        model = DVFace(DVFaceConfig.preset(name))
    return model.parameter_counts()


def collect() -> dict:
    import torch
    from diffusers import __version__ as diffusers_version

    return {
        "dvface": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "diffusers": diffusers_version,
        "cuda_available": torch.cuda.is_available(),
        "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "presets": {name: preset_counts(name) for name in PRESETS},
        "paper_total": int(PAPER_TOTAL),
    }


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("info", help="versions, devices and model sizes")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    info = collect()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"dvface {info['dvface']}  python {info['python']}  torch {info['torch']}  diffusers {info['diffusers']}")
    devices = ", ".join(info["cuda_devices"]) or "none"
    print(f"CUDA available: {info['cuda_available']} ({devices})")
    print(f"\n{'preset':<14}{'VAE':>12}{'DiT':>12}{'prior':>12}{'ASTF':>12}{'refiner':>12}{'total':>12}   vs paper")
    for name, c in info["presets"].items():
        ratio = f"{100 * (c['total'] / PAPER_TOTAL - 1):+.2f} %" if name == "wan2.1-1.3b" else ""
        cells = "".join(f"{c[k] / 1e6:>11.2f}M" for k in ("vae", "dit", "prior", "astf", "refiner", "total"))
        print(f"{name:<14}{cells}   {ratio}")
    return 0
