"""Whether a process still runs: how leftovers (partial outputs, worker sockets) of a killed run
are told apart from those a live process still owns."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path


def process_alive(pid: int) -> bool:
    """Whether process `pid` exists (a process of another user counts as alive). POSIX only:
    on Windows `os.kill` would end the process, so there every pid counts as alive."""
    if os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_orphans(paths: Iterable[Path], tag: str) -> int:
    """Delete the files or folders among `paths` named `...<tag><pid>-...` whose process `pid`
    no longer runs; returns how many."""
    removed = 0
    for path in paths:
        pid = path.name.split(tag, 1)[-1].split("-", 1)[0]
        if tag in path.name and pid.isdigit() and not process_alive(int(pid)):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed += 1
    return removed
