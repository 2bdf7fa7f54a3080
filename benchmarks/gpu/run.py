"""One prepared GPU run: environment, correctness, speed and training in one time budget.

    python benchmarks/gpu/run.py --minutes 8 --out OUT --data .gpu/pack [--resume models/dvface-base]
    python benchmarks/gpu/run.py --only training --plan models/train/tiny-gpu-joint.json --resume models/dvface-tiny ...
    python benchmarks/gpu/run.py --smoke --out OUT      # the CPU rehearsal, tiny shapes, < 3 min

Installs nothing (benchmarks/gpu/README.md says what to carry). Prints one line per step, so a
run cut off still says how far it got, and rewrites OUT/report.json and OUT/report.md after
every section: top-level `environment`, `correctness`, `speed`, `training`, each with a
`status` (ok, failed, skipped) and its figures or the reason. With the trained weights OUT holds
at most 8 files of at most 16 MiB.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]  # this folder's modules; the checkout's dvface_plugin

import torch  # noqa: E402

import correctness  # noqa: E402
import speed  # noqa: E402
import training  # noqa: E402
from context import Run, guarded  # noqa: E402

SECTIONS = {"correctness": correctness.run, "speed": speed.run, "training": training.run}


def environment(ctx: Run) -> dict:
    versions = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
                "cudnn": torch.backends.cudnn.version()}
    for name in ("diffusers", "onnxruntime", "numpy", "cv2"):
        try:
            versions[name] = __import__(name).__version__
        except ImportError:
            versions[name] = None
    env = {"status": "ok", "device": str(ctx.device), "smoke": ctx.smoke, "versions": versions}
    if ctx.device.type == "cuda":
        props = torch.cuda.get_device_properties(ctx.device)
        env |= {"gpu": props.name, "memory_gib": round(props.total_memory / 2**30, 1),
                "multiprocessors": props.multi_processor_count, "capability": f"{props.major}.{props.minor}",
                "bf16": torch.cuda.is_bf16_supported()}
        try:
            env["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                           capture_output=True, text=True, timeout=20).stdout.strip()
        except (OSError, subprocess.TimeoutExpired) as exc:
            env["driver"] = f"unknown ({exc})"
    return env


def write_report(report: dict, out: Path) -> None:
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = ["# GPU run report", ""]
    for section, body in report.items():
        lines += [f"## {section}: {body.get('status')}", "", "```json", json.dumps(body, indent=1), "```", ""]
    (out / "report.md").write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="folder for report.json, report.md and weights")
    parser.add_argument("--minutes", type=float, default=8.0, help="budget for the whole run (default 8)")
    parser.add_argument("--smoke", action="store_true", help="CPU rehearsal: every step, tiny shapes")
    parser.add_argument("--data", type=Path, help="training pack (pack.py) or prepared folder; never benchmark/")
    parser.add_argument("--resume", type=Path, help="continue training from these weights (a model folder)")
    parser.add_argument("--plan", type=Path, help="training plan (default models/train/base.json)")
    parser.add_argument("--only", nargs="+", choices=sorted(SECTIONS), help="run only these sections")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    ctx = Run(out=args.out, minutes=args.minutes, smoke=args.smoke, data=args.data, resume=args.resume,
              plan=args.plan)
    report = {"environment": guarded(environment, ctx)}
    ctx.log(f"environment: {report['environment']}")
    write_report(report, args.out)
    for name, section in SECTIONS.items():
        if args.only and name not in args.only:
            report[name] = {"status": "skipped", "reason": "not asked for (--only)"}
            continue
        ctx.log(f"{name}: start, {ctx.remaining():.0f} s left")
        report[name] = guarded(section, ctx)
        ctx.log(f"{name}: {report[name]['status']} {report[name].get('reason') or report[name].get('error') or ''}")
        write_report(report, args.out)
    failed = [name for name, body in report.items() if body["status"] == "failed"]
    ctx.log(f"done: {', '.join(failed) + ' failed' if failed else 'no section failed'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
