"""The `dvface` command. Each subcommand lives in its own module exposing `register(subparsers)`,
which adds an argparse parser whose `func` default runs the command and returns an exit code."""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import DVFaceError

# (module, the command it adds) in the order `dvface --help` lists them; None: it extends another.
COMMAND_MODULES = [
    ("dvface_plugin.info", "info"),
    ("dvface_plugin.training.prepare", "prepare"),
    ("dvface_plugin.training.trainer", "train"),
    ("dvface_plugin.evaluate", "eval"),
    ("dvface_plugin.restore_aligned", "restore"),
    ("dvface_plugin.track_cmd", "track"),
    ("dvface_plugin.bench", "bench"),
    ("dvface_plugin.worker.server", "serve"),
    ("dvface_plugin.onnx_export", "export"),
    ("dvface_plugin.model_bench", None),  # `dvface bench model`
    ("dvface_plugin.batch.command", "batch"),
]

# Packages a torch-free install (the onnxruntime backend: VapourSynth, farm nodes) does not have.
OPTIONAL_PACKAGES = ("torch", "diffusers", "onnxscript")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dvface", description="DVFace video face restoration")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, command in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name not in OPTIONAL_PACKAGES:
                raise
            if command is not None:
                _unavailable(sub, command, exc.name)
            continue
        module.register(sub)
    return parser


def _unavailable(sub: argparse._SubParsersAction, command: str, package: str) -> None:
    """A command whose module needs a package this environment lacks: it says so when run."""

    def run(args: argparse.Namespace) -> int:
        raise DVFaceError(f"this command needs {package}, which is not installed here (pip install {package})")

    sub.add_parser(command, help=f"(needs {package})", add_help=False).set_defaults(func=run, unavailable=True)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "unavailable", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return int(args.func(args) or 0)
    except DVFaceError as exc:
        print(f"dvface {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"dvface {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
