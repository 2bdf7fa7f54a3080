"""`dvface eval`: arguments, then `evaluate.evaluate`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from .. import evaluate as evaluate_module
from ..errors import InputError
from ..evaluate import IDENTITY_STEP, FaceModels, evaluate, json_safe, markdown_table
from ..metrics import OnnxFaceModel, OnnxSpec


def _notes(rows: list[dict[str, Any]]) -> list[str]:
    notes = {f"{k} omitted: {v}" for r in rows for k, v in r.get("omitted", {}).items()}
    return sorted(notes)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval", help="score restored clips: PSNR, SSIM, E_warp, flicker, detail, stripes, identity",
        description=evaluate_module.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pred", type=Path, nargs="+", action="extend", required=True,
                   help="restored video(s) or folder(s) of clips; repeatable")
    p.add_argument("--gt", type=Path, nargs="+", action="extend",
                   help="ground-truth video(s) or folder(s); omit for no-reference metrics")
    p.add_argument("--gt-name", default="GT",
                   help="file name (without suffix) of the ground truth in per-clip folders")
    p.add_argument("--offset-search", type=int, default=2, metavar="N",
                   help="search temporal offsets in [-N, N] frames (0 disables; default 2)")
    p.add_argument("--ref", metavar="NAME_OR_PATH",
                   help="without --gt: the input the methods restored, which detail and identity "
                        "compare with: a method name in each clip folder (default LQ) or one "
                        "video file for a single clip")
    p.add_argument("--landmark-model", type=Path, help="ONNX landmark model for AKD")
    p.add_argument("--landmark-coords", choices=("pixels", "unit", "signed"), default="pixels",
                   help="how the landmark model's outputs are scaled (default pixels)")
    p.add_argument("--landmark-mean", type=float, default=0.0,
                   help="input normalisation of the landmark model: (x - mean) / std, x in 0..255")
    p.add_argument("--landmark-std", type=float, default=255.0)
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print JSON rows")
    out.add_argument("--markdown", action="store_true", help="print a markdown table only")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.offset_search < 0:
        raise InputError("--offset-search must be 0 or more")
    if not args.gt and args.landmark_model:
        raise InputError("--landmark-model compares against ground truth; add --gt")
    if args.gt and args.ref:
        raise InputError("--ref is for clips without ground truth; with --gt, detail and "
                         "identity compare with the ground truth")
    models = FaceModels.load(
        OnnxFaceModel(OnnxSpec(args.landmark_model, args.landmark_mean, args.landmark_std,
                               args.landmark_coords)) if args.landmark_model else None)
    rows = evaluate(args.pred, args.gt, args.offset_search, args.gt_name, models,
                    args.ref or "LQ")
    if args.json:
        print(json.dumps(json_safe(rows), indent=2))
        return 0
    print(markdown_table(rows))
    if not args.markdown:
        mode = "ground-truth flow" if args.gt else "the clip's own flow (no reference)"
        ref = "GT" if args.gt else f"the input ({args.ref or 'LQ'})"
        print(f"\nE*warp: warping error x1e-3 ([0,1] RGB, DIS flow from {mode}); "
              "flicker: mean |median change| of 8x8-cell luma, 8-bit levels; "
              f"detail: Laplacian variance of the face centre / {ref}'s (1 = as sharp); "
              "stripes: share of the face centre's high band on the frequency axes (a painted "
              "lattice; faces ~0.05-0.15); "
              f"identity: dlib face-descriptor distance to {ref} on every "
              f"{IDENTITY_STEP}th frame (lower is better, < 0.6 same person); "
              f"offset s: frame t+s is compared with {ref} frame t.")
        for note in _notes(rows):
            print(note)
    return 0
