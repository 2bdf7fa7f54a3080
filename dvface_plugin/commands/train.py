"""`dvface train STAGE --config FILE`: arguments, then `training.trainer.Trainer`."""

from __future__ import annotations

import argparse
import json
import os

from ..errors import InputError
from ..training import PRECISIONS, STAGES


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="run one training stage (also under torchrun)")
    parser.add_argument("stage", choices=STAGES)
    parser.add_argument("--config", required=True, help="training config JSON (see models/train/*.json)")
    parser.add_argument("--out", help="override the config's output folder")
    parser.add_argument("--steps", type=int, help="override the number of steps")
    parser.add_argument("--precision", choices=PRECISIONS,
                        help="override the config's precision (bf16: CUDA, or a CPU with AVX512-BF16 / AMX)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..training.trainer import TrainConfig, Trainer

    config = TrainConfig.load(args.config, out=args.out, steps=args.steps, precision=args.precision)
    if config.stage != args.stage:
        raise InputError(f"{args.config} is a {config.stage!r} config, not {args.stage!r}")
    summary = Trainer(config).train()
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(summary))
    return 0
