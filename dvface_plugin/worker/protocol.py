"""The worker's wire protocol: length-prefixed JSON over a local socket, with a session token.

Standard library only, so a host's own Python (Nuke's) can talk to a worker running in another
environment.

Framing: every message is a 4-byte big-endian length followed by that many bytes of UTF-8 JSON
holding one object; messages above `MAX_MESSAGE` bytes are refused and the connection closed.

Requests (client -> worker), one per connection; every request carries the session `token`:

    {"op": "health", "token": T}                   -> {"event": "ok", "pid", "version", "jobs": [running ids]}
    {"op": "stats", "token": T}                    -> {"event": "ok", "cache": {...}, "requests": n}
    {"op": "clear_cache", "token": T}              -> {"event": "ok", "cache": {...}}
    {"op": "cancel", "token": T, "job": J}         -> {"event": "ok", "cancelled": bool}
    {"op": "shutdown", "token": T}                 -> {"event": "ok"}, then the worker exits
    {"op": "restore", "token": T, "job": J,
     "input": "/plates/in.####.exr", "frames": [first, last],   # the whole input sequence
     "restore": [lo, hi],                                         # optional sub-range of it
     "output": "/out/restored.####.exr", "settings": {...},     # see restore.RestoreSettings
     "report": "/out/report"}                                     # optional: a QC page of [lo, hi] there
        -> {"event": "accepted", "job": J}
           {"event": "progress", "stage", "frame", "done", "total"}   (any number)
           {"event": "done", "frames": [lo, hi], "written", "output", "report" (index.html or null), "tracks": [...],
            "analysis_cached", "computed": {"windows", "cache_hits", "priors"}, "cache": {...}}
           or {"event": "error", "code", "message"}

Progress events have "stage" ("analyse" or "restore"), the host "frame" number, and "done" of
"total" frames. Face analysis and engine windows always span the whole `frames` range, so a
sub-range restore (a farm chunk) gives exactly the pixels of the whole-range restore.

Replies are a stream on the same connection ending with "ok", "done" or "error". Error codes:
`unauthorized` (bad token or another user), `too_large`, `bad_request` (not JSON, unknown op,
bad fields), `input` (the request names media or settings that cannot be restored), `cancelled`,
`busy`, `internal`.
"""

from __future__ import annotations

import hmac
import json
import socket
import struct
from typing import Any

MAX_MESSAGE = 1 << 20
HEADER = struct.Struct(">I")
OPS = ("health", "stats", "clear_cache", "cancel", "shutdown", "restore")
TOKEN_ENV = "DVFACE_WORKER_TOKEN"


class ProtocolError(Exception):
    """A message that breaks the framing or the request schema; `code` is the reply's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class ConnectionClosed(ConnectionError):
    """The other end closed the connection (before or in the middle of a message)."""


def encode(message: dict[str, Any]) -> bytes:
    body = json.dumps(message, separators=(",", ":"), allow_nan=False).encode("utf-8")
    if len(body) > MAX_MESSAGE:
        raise ProtocolError("too_large", f"message of {len(body)} bytes exceeds the {MAX_MESSAGE}-byte limit")
    return HEADER.pack(len(body)) + body


def send(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.sendall(encode(message))


def _read_exact(sock: socket.socket, n: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < n:
        chunk = sock.recv(min(n - len(chunks), 1 << 16))
        if not chunk:
            raise ConnectionClosed(f"connection closed after {len(chunks)} of {n} bytes")
        chunks += chunk
    return bytes(chunks)


def receive(sock: socket.socket, max_size: int = MAX_MESSAGE) -> dict[str, Any]:
    """One message; ProtocolError for oversized or malformed ones, ConnectionClosed on EOF."""
    (length,) = HEADER.unpack(_read_exact(sock, HEADER.size))
    if length > max_size:
        raise ProtocolError("too_large", f"message of {length} bytes exceeds the {max_size}-byte limit")
    body = _read_exact(sock, length)
    try:
        message = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError("bad_request", f"message is not UTF-8 JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError("bad_request", f"message must be a JSON object, got {type(message).__name__}")
    return message


def token_matches(message: dict[str, Any], token: str) -> bool:
    given = message.get("token")
    return isinstance(given, str) and hmac.compare_digest(given.encode(), token.encode())


def check_request(message: dict[str, Any]) -> str:
    """The request's op, after checking the fields that op needs."""
    op = message.get("op")
    if op not in OPS:
        raise ProtocolError("bad_request", f"unknown op {op!r}; expected one of {', '.join(OPS)}")
    if op == "cancel" and not isinstance(message.get("job"), str):
        raise ProtocolError("bad_request", "cancel needs the 'job' id (a string) of the restore to stop")
    if op == "restore":
        for key in ("input", "output"):
            if not isinstance(message.get(key), str) or not message[key]:
                raise ProtocolError("bad_request", f"restore needs {key!r}: an image sequence path")
        for key in ("frames", "restore"):
            value = message.get(key)
            if value is None and key == "restore":
                continue
            if not (
                isinstance(value, list)
                and len(value) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
                and value[0] <= value[1]
            ):
                raise ProtocolError("bad_request", f"restore needs {key!r} as [first, last] integer frames")
        if not isinstance(message.get("settings", {}), dict):
            raise ProtocolError("bad_request", "restore 'settings' must be an object")
        if not isinstance(message.get("job", ""), str):
            raise ProtocolError("bad_request", "restore 'job' must be a string")
        if not isinstance(message.get("report") or "", str):
            raise ProtocolError("bad_request", "restore 'report' must be a folder path (a string) or null")
    return op


def error(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"event": "error", "code": code, "message": message, **extra}
