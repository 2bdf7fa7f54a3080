"""The `dvface` command. Each subcommand lives in its own module exposing `register(subparsers)`,
which adds an argparse parser whose `func` default runs the command and returns an exit code.

Command modules import only the standard library and light parts of the core at the top; torch,
diffusers and ray are imported inside the commands that use them. So `dvface --help` and every
argument error answer in well under a second, `dvface restore` on onnxruntime never pays for
torch's import (seconds), and a torch-free install lists every command and says what to install
when one needs torch. Only the modules of the command being run are imported.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from .errors import IO_EXIT_CODE, DVFaceError, os_error_message

# (module, the command it adds or extends) in the order `dvface --help` lists them.
COMMAND_MODULES = [
    ("dvface_plugin.commands.info", "info"),
    ("dvface_plugin.commands.prepare", "prepare"),
    ("dvface_plugin.commands.train", "train"),
    ("dvface_plugin.commands.train_plan", "train-plan"),
    ("dvface_plugin.commands.eval", "eval"),
    ("dvface_plugin.commands.restore", "restore"),
    ("dvface_plugin.commands.track", "track"),
    ("dvface_plugin.commands.report", "report"),
    ("dvface_plugin.commands.bench", "bench"),
    ("dvface_plugin.commands.serve", "serve"),
    ("dvface_plugin.commands.export", "export"),
    ("dvface_plugin.commands.bench_model", "bench"),  # `dvface bench model`, after `bench`
    ("dvface_plugin.commands.batch", "batch"),
]

# Packages of the `torch` extra, which the core install (the onnxruntime backend: VapourSynth,
# farm nodes, `pip install dvface-plugin[cpu]`) does not have: the commands that import them say so.
TORCH_EXTRA = ("torch", "diffusers", "onnxscript", "safetensors")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser with every command, or with `command` alone when it is one of them."""
    parser = argparse.ArgumentParser(prog="dvface", description="DVFace video face restoration")
    sub = parser.add_subparsers(dest="command", required=True)
    known = {name for _, name in COMMAND_MODULES}
    for module_name, name in COMMAND_MODULES:
        if command in known and name != command:
            continue
        importlib.import_module(module_name).register(sub)
    return parser


def _command(argv: list[str]) -> str | None:
    """The subcommand named on the command line (the first word that is not an option), if any."""
    return next((word for word in argv if not word.startswith("-")), None)


def missing_extra_message(package: str) -> str:
    """What to install when a command imports a package of the `torch` extra that is absent."""
    return (
        f"this command needs {package}, which this install lacks: pip install \"dvface-plugin[torch]\" "
        "(from a checkout: pip install -e \".[torch]\"; on a CPU-only machine install torch==2.13.0 first, "
        "see README.md)"
    )


def _warning_printer(command: str):
    """Warnings (a lossy step allowed, stale frames left in a folder) as one line in the command's
    own voice, not Python's file:line format with a source line."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        print(f"dvface {command}: warning: {message}", file=sys.stderr if file is None else file)

    return show


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(_command(argv))
    args = parser.parse_args(argv)
    previous, warnings.showwarning = warnings.showwarning, _warning_printer(args.command)
    try:
        return int(args.func(args) or 0)
    except DVFaceError as exc:
        print(f"dvface {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except ModuleNotFoundError as exc:
        if exc.name not in TORCH_EXTRA:
            raise
        print(f"dvface {args.command}: error: {missing_extra_message(exc.name)}", file=sys.stderr)
        return 2
    except OSError as exc:  # the storage, not the input: nothing half-written is left (atomic writers)
        print(f"dvface {args.command}: error: {os_error_message(exc)}", file=sys.stderr)
        return IO_EXIT_CODE
    except KeyboardInterrupt:
        print(f"dvface {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.showwarning = previous


if __name__ == "__main__":
    sys.exit(main())
