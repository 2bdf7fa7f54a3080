"""`dvface serve`: the long-lived worker that owns the model, the face pipeline and the caches.

One thread per connection, one request per connection (see `protocol`). Restores run one at a
time (the model is serialised anyway); health, stats and cancel answer while one runs. A bad
message gets an error reply and closes only its own connection; nothing a client sends can stop
the worker except an authenticated `shutdown`.
"""

from __future__ import annotations

import os
import secrets
import socket
import sys
import threading
import traceback
import uuid
from pathlib import Path
from typing import Any, Callable, Protocol

from ..errors import DVFaceError, InputError
from ..processes import process_alive
from . import protocol, transport
from .protocol import ConnectionClosed, ProtocolError

VERSION = 1


class Handler(Protocol):
    def restore(self, request: dict[str, Any], progress: Callable[[dict[str, Any]], None],
                cancelled: Callable[[], bool]) -> dict[str, Any]: ...

    def stats(self) -> dict[str, Any]: ...

    def clear(self) -> dict[str, Any]: ...


class WorkerServer:
    def __init__(
        self,
        address: str,
        token: str,
        handler: Handler,
        *,
        allowed_uid: int | None = None,
        read_timeout: float = 10.0,
        parent_pid: int | None = None,
    ) -> None:
        if len(token) < 16:
            raise ValueError("the session token must be at least 16 characters")
        self.token = token
        self.handler = handler
        self.allowed_uid = os.getuid() if allowed_uid is None and hasattr(os, "getuid") else allowed_uid
        self.read_timeout = read_timeout
        self.parent_pid = parent_pid
        self._listener, self.address = transport.listen(address)
        self._stop = threading.Event()
        self._jobs: dict[str, threading.Event] = {}
        self._jobs_lock = threading.Lock()
        self.requests = 0

    # --- loop -------------------------------------------------------------------------------

    def serve_forever(self) -> None:
        self._listener.settimeout(0.5)
        try:
            while not self._stop.is_set():
                if self.parent_pid is not None and not process_alive(self.parent_pid):
                    break  # the host that started us is gone: do not linger holding a GPU
                try:
                    conn, _ = self._listener.accept()
                except socket.timeout:
                    continue
                except OSError:
                    if self._stop.is_set():
                        break
                    raise
                threading.Thread(target=self._serve, args=(conn,), daemon=True).start()
        finally:
            self.close()

    def stop(self) -> None:
        self._stop.set()
        with self._jobs_lock:
            for event in self._jobs.values():
                event.set()

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        transport.unlink(self.address)

    # --- one connection ---------------------------------------------------------------------

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(self.read_timeout)
            uid = transport.peer_uid(conn)
            if uid is not None and self.allowed_uid is not None and uid != self.allowed_uid:
                self._reply(conn, protocol.error("unauthorized", f"uid {uid} may not use this worker"))
                return
            try:
                message = protocol.receive(conn)
            except ProtocolError as exc:
                self._reply(conn, protocol.error(exc.code, str(exc)))
                return
            except (ConnectionClosed, OSError):
                return  # truncated message, timeout or reset: nothing to answer
            if not protocol.token_matches(message, self.token):
                self._reply(conn, protocol.error("unauthorized", "missing or wrong session token"))
                return
            try:
                op = protocol.check_request(message)
            except ProtocolError as exc:
                self._reply(conn, protocol.error(exc.code, str(exc)))
                return
            self.requests += 1
            try:
                if op == "restore":
                    self._restore(conn, message)
                else:
                    self._reply(conn, self._simple(op, message))
            except Exception as exc:  # never let one request take the worker down
                traceback.print_exc(file=sys.stderr)
                self._reply(conn, protocol.error("internal", f"{type(exc).__name__}: {exc}"))

    def _simple(self, op: str, message: dict[str, Any]) -> dict[str, Any]:
        if op == "health":
            with self._jobs_lock:
                busy = sorted(self._jobs)
            return {"event": "ok", "pid": os.getpid(), "version": VERSION, "jobs": busy}
        if op == "stats":
            return {"event": "ok", "cache": self.handler.stats(), "requests": self.requests}
        if op == "clear_cache":
            return {"event": "ok", "cache": self.handler.clear()}
        if op == "cancel":
            with self._jobs_lock:
                event = self._jobs.get(message["job"])
            if event is not None:
                event.set()
            return {"event": "ok", "cancelled": event is not None}
        if op == "shutdown":
            self.stop()
            return {"event": "ok"}
        raise AssertionError(op)

    def _restore(self, conn: socket.socket, message: dict[str, Any]) -> None:
        job = message.get("job") or uuid.uuid4().hex
        cancel = threading.Event()
        with self._jobs_lock:
            if job in self._jobs:
                self._reply(conn, protocol.error("busy", f"job {job!r} is already running"))
                return
            self._jobs[job] = cancel
        try:
            self._reply(conn, {"event": "accepted", "job": job})

            def progress(event: dict[str, Any]) -> None:
                if not self._reply(conn, {**event, "job": job}):
                    cancel.set()  # the client went away: stop spending time on its range

            try:
                reply = {**self.handler.restore(message, progress, cancel.is_set), "job": job}
            except DVFaceError as exc:
                code = "cancelled" if cancel.is_set() else "input"
                reply = protocol.error(code, str(exc), job=job)
        finally:
            with self._jobs_lock:
                self._jobs.pop(job, None)  # before the final reply: a client may ask health next
        self._reply(conn, reply)

    @staticmethod
    def _reply(conn: socket.socket, message: dict[str, Any]) -> bool:
        try:
            protocol.send(conn, message)
            return True
        except OSError:
            return False


# --- command line -----------------------------------------------------------------------------


def load_token(token_file: Path | None) -> str:
    """$DVFACE_WORKER_TOKEN, else the token file (created 0600 with a fresh token if absent)."""
    token = os.environ.get(protocol.TOKEN_ENV)
    if token:
        return token
    if token_file is None:
        raise InputError(f"no session token: set {protocol.TOKEN_ENV} or pass --token-file")
    if token_file.exists():
        return token_file.read_text().strip()
    token = secrets.token_hex(32)
    fd = os.open(token_file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token)
    return token
