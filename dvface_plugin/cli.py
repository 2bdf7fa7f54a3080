"""The `dvface` command. Each subcommand lives in its own module exposing `register(subparsers)`,
which adds an argparse parser whose `func` default runs the command and returns an exit code.

Only the modules of the command being run are imported: `dvface restore` on onnxruntime needs
neither torch nor diffusers, and importing them (through `info`, `train`, `export`) cost about
6 s of a 40 s restore of a 49-frame clip here. `dvface --help`, or no command, imports them all."""

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
    ("dvface_plugin.commands.bench", "bench"),
    ("dvface_plugin.commands.serve", "serve"),
    ("dvface_plugin.commands.export", "export"),
    ("dvface_plugin.commands.bench_model", "bench"),  # `dvface bench model`, after `bench`
    ("dvface_plugin.commands.batch", "batch"),
]

# Packages a torch-free install (the onnxruntime backend: VapourSynth, farm nodes) does not have.
OPTIONAL_PACKAGES = ("torch", "diffusers", "onnxscript")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser with every command, or with `command` alone when it is one of them."""
    parser = argparse.ArgumentParser(prog="dvface", description="DVFace video face restoration")
    sub = parser.add_subparsers(dest="command", required=True)
    known = {name for _, name in COMMAND_MODULES}
    for module_name, name in COMMAND_MODULES:
        if command in known and name != command:
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name not in OPTIONAL_PACKAGES:
                raise
            if name not in sub.choices:
                _unavailable(sub, name, exc.name)
            continue
        module.register(sub)
    return parser


def _command(argv: list[str]) -> str | None:
    """The subcommand named on the command line (the first word that is not an option), if any."""
    return next((word for word in argv if not word.startswith("-")), None)


def _unavailable(sub: argparse._SubParsersAction, command: str, package: str) -> None:
    """A command whose module needs a package this environment lacks: it says so when run."""

    def run(args: argparse.Namespace) -> int:
        raise DVFaceError(f"this command needs {package}, which is not installed here (pip install {package})")

    sub.add_parser(command, help=f"(needs {package})", add_help=False).set_defaults(func=run, unavailable=True)


def _warning_printer(command: str):
    """Warnings (a lossy step allowed, stale frames left in a folder) as one line in the command's
    own voice, not Python's file:line format with a source line."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        print(f"dvface {command}: warning: {message}", file=sys.stderr if file is None else file)

    return show


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(_command(argv))
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "unavailable", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    previous, warnings.showwarning = warnings.showwarning, _warning_printer(args.command)
    try:
        return int(args.func(args) or 0)
    except DVFaceError as exc:
        print(f"dvface {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
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
