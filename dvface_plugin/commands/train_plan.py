"""`dvface train-plan PLAN --minutes M`: arguments, then `training.plan.run_plan`."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train-plan", help="train every stage of a model in one time budget")
    parser.add_argument("plan", help="plan JSON (e.g. models/train/base.json)")
    parser.add_argument("--minutes", type=float, required=True, help="budget for all stages together")
    parser.add_argument("--data", nargs="+", required=True, help="folders of prepared training clips (never benchmark/)")
    parser.add_argument("--out", required=True, help="folder for each stage's log and model")
    parser.add_argument("--init", help="continue from this model folder (an earlier run's weights)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..training.plan import run_plan

    summaries = run_plan(args.plan, args.minutes, args.data, args.out, init=args.init)
    print(json.dumps(summaries))
    return 0
