"""The `dvface` parser: it imports only the command being run, and still lists every command."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from dvface_plugin import cli

ALL = {name for _, name in cli.COMMAND_MODULES}  # info, prepare, train, ..., batch


def test_restore_imports_neither_torch_nor_diffusers():
    """The onnxruntime restore path must not pay for torch's import (about 6 s here with diffusers)."""
    code = ("import sys; from dvface_plugin.cli import build_parser; build_parser('restore'); "
            "print(sorted(m for m in ('torch', 'diffusers', 'ray') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("command", [None, "no-such-command", "--help"])
def test_no_or_unknown_command_lists_every_command(command):
    parser = cli.build_parser(cli._command([command] if command else []))
    sub = next(a for a in parser._actions if a.dest == "command")
    assert len(ALL) == 12 and set(sub.choices) == ALL


def test_one_command_alone_and_bench_keeps_its_model_benchmark():
    parser = cli.build_parser(cli._command(["bench", "model", "--backend", "ort"]))
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == {"bench"}
    args = parser.parse_args(["bench", "model", "--backend", "ort"])
    assert (args.command, args.bench, args.backend) == ("bench", "model", "ort")
    assert parser.parse_args(["bench", "cache"]).bench == "cache"


def test_a_command_whose_package_is_missing_says_what_to_install(monkeypatch, capsys):
    from dvface_plugin.commands import train

    def without_torch(args) -> int:
        raise ModuleNotFoundError("No module named 'torch'", name="torch")

    monkeypatch.setattr(train, "run", without_torch)
    assert cli.main(["train", "restore", "--config", "x.json"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("dvface train: error: this command needs torch") and "dvface-plugin[torch]" in err
    assert err.count("\n") == 1


def test_help_imports_no_torch_and_lists_every_command():
    """`dvface --help` and argument errors must not pay for torch's import (3 s here, 11 s on a cold disk)."""
    code = ("import sys; from dvface_plugin.cli import build_parser; build_parser(None); "
            "print(sorted(m for m in ('torch', 'diffusers', 'ray', 'onnxruntime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_core_install_needs_no_torch():
    """The main job's install (`pip install dvface-plugin[cpu]`) must not pull torch: 6 GB for the CUDA build."""
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]

    def names(requirements: list[str]) -> set[str]:
        return {r.split(">")[0].split("=")[0].split("[")[0].strip().lower() for r in requirements}

    heavy = {"torch", "diffusers", "onnxscript", "safetensors"}
    assert not names(project["dependencies"]) & heavy
    assert not names(project["optional-dependencies"]["cpu"]) & heavy
    assert names(project["optional-dependencies"]["torch"]) == heavy == set(cli.TORCH_EXTRA)


def test_warnings_print_as_one_line_in_the_commands_voice(monkeypatch, capsys):
    import warnings

    from dvface_plugin.commands import info
    from dvface_plugin.media import MediaWarning

    def run(args) -> int:
        warnings.warn("10-bit source written as 8-bit (--allow-bit-depth-loss)", MediaWarning, stacklevel=2)
        return 0

    monkeypatch.setattr(info, "run", run)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        before = warnings.showwarning
        assert cli.main(["info"]) == 0
        assert warnings.showwarning is before  # put back for the caller
    err = capsys.readouterr().err
    assert err == "dvface info: warning: 10-bit source written as 8-bit (--allow-bit-depth-loss)\n"
