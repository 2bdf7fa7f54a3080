"""The `dvface` command. Each subcommand lives in its own module exposing `register(subparsers)`,
which adds an argparse parser whose `func` default runs the command and returns an exit code."""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import DVFaceError

# Modules that contribute subcommands, in the order `dvface --help` lists them.
COMMAND_MODULES = [
    "dvface_plugin.info",
    "dvface_plugin.training.prepare",
    "dvface_plugin.training.trainer",
    "dvface_plugin.evaluate",
    "dvface_plugin.restore_aligned",
    "dvface_plugin.track_cmd",
    "dvface_plugin.bench",
    "dvface_plugin.worker.server",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dvface", description="DVFace video face restoration")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
