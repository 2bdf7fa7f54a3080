"""Local endpoints only: a Unix domain socket in a private directory, or localhost TCP.

Addresses are strings: "unix:/run/user/1000/dvface-x/worker.sock" or "tcp:127.0.0.1:PORT".
A Unix socket lives in a 0700 directory (other users cannot even connect) and the worker also
checks the peer's uid (SO_PEERCRED); TCP, for systems without AF_UNIX, binds to 127.0.0.1 only
and relies on the session token alone.
"""

from __future__ import annotations

import os
import socket
import struct
import sys
import tempfile
from pathlib import Path

from ..errors import InputError

HAS_UNIX = hasattr(socket, "AF_UNIX")


def private_dir(prefix: str = "dvface-worker-") -> Path:
    """A fresh directory only this user can enter (mkdtemp creates it 0700)."""
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    # AF_UNIX paths are limited to ~107 bytes; fall back to /tmp when the runtime dir is long.
    if len(base) > 60:
        base = tempfile.gettempdir()
    return Path(tempfile.mkdtemp(prefix=prefix, dir=base))


def default_address(folder: Path) -> str:
    return f"unix:{folder / 'worker.sock'}" if HAS_UNIX else "tcp:127.0.0.1:0"


def _split(address: str) -> tuple[str, str]:
    kind, _, rest = address.partition(":")
    if kind not in ("unix", "tcp") or not rest:
        raise InputError(f"worker address {address!r} must be unix:PATH or tcp:127.0.0.1:PORT")
    return kind, rest


def listen(address: str) -> tuple[socket.socket, str]:
    """A listening socket and its concrete address (a tcp port 0 becomes the chosen port)."""
    kind, rest = _split(address)
    if kind == "unix":
        path = Path(rest)
        mode = path.parent.stat().st_mode & 0o777
        if mode & 0o077:
            raise InputError(f"socket folder {path.parent} is open to other users (mode {mode:o}); "
                             "put the socket in a folder with mode 0700, or leave --address out")
        if path.exists():
            path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(path))
        os.chmod(path, 0o600)
    else:
        host, _, port = rest.rpartition(":")
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise InputError(f"worker TCP address must be on localhost, got {host!r}")
        family = socket.AF_INET6 if host == "::1" else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.bind((host, int(port)))
        address = f"tcp:{host}:{sock.getsockname()[1]}"
    sock.listen(16)
    return sock, address


def connect(address: str, timeout: float | None = 10.0) -> socket.socket:
    kind, rest = _split(address)
    if kind == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target: object = rest
    else:
        host, _, port = rest.rpartition(":")
        sock = socket.socket(socket.AF_INET6 if host == "::1" else socket.AF_INET, socket.SOCK_STREAM)
        target = (host, int(port))
    sock.settimeout(timeout)
    try:
        sock.connect(target)
    except BaseException:
        sock.close()
        raise
    return sock


def peer_uid(sock: socket.socket) -> int | None:
    """uid of the process at the other end of a Unix socket; None where the OS cannot tell."""
    if sock.family != getattr(socket, "AF_UNIX", None):
        return None
    if not sys.platform.startswith("linux"):
        return None  # macOS/BSD: the 0700 socket folder is the guard there
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


def unlink(address: str) -> None:
    kind, rest = _split(address)
    if kind == "unix":
        Path(rest).unlink(missing_ok=True)


    return True
