"""Start, drive and restart a worker from a host (Nuke's Python): standard library only.

The client starts the worker in the worker's own Python environment with a fresh token in its
environment (never on the command line, where `ps` would show it) and a socket in a private
folder. If the worker dies during a restore (crash, out of memory, killed), the client starts a
new one and sends the same range again; the worker writes each frame to a temporary name and
renames it, so the redone range never mixes with half-written frames.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from . import protocol, transport
from .protocol import ConnectionClosed

PYTHON_ENV = "DVFACE_PYTHON"
EventCallback = Callable[[dict[str, Any]], None]
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


class WorkerError(Exception):
    """The worker answered with an error, could not be started, or died too often."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class WorkerCancelled(WorkerError):
    pass


class WorkerClient:
    """One worker process owned by this host session (or an already running one to attach to).

    python: the worker environment's interpreter ($DVFACE_PYTHON, else this interpreter).
    address + token: attach to a worker started elsewhere (`dvface serve`); it is not restarted.
    """

    def __init__(
        self,
        python: str | None = None,
        *,
        address: str | None = None,
        token: str | None = None,
        cache_mb: int = 2048,
        start_timeout: float = 120.0,
        max_restarts: int = 2,
        env: dict[str, str] | None = None,
    ) -> None:
        if (address is None) != (token is None):
            raise ValueError("pass both address and token to attach to a running worker, or neither")
        self.python = python or os.environ.get(PYTHON_ENV) or sys.executable
        self.address = address
        self.token = token
        self.owned = address is None
        self.cache_mb = cache_mb
        self.start_timeout = start_timeout
        self.max_restarts = max_restarts
        self.restarts = 0
        self._env = env
        self._proc: subprocess.Popen | None = None
        self._folder: Path | None = None
        self._lock = threading.RLock()
        self._cancelled: set[str] = set()

    # --- process ----------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def log_path(self) -> Path | None:
        return self._folder / "worker.log" if self._folder is not None else None

    def running(self) -> bool:
        if not self.owned:
            return True
        return self._proc is not None and self._proc.poll() is None

    def ensure_running(self) -> None:
        with self._lock:
            if not self.running():
                self._start()

    def _start(self) -> None:
        if self._proc is not None:
            self.restarts += 1  # a worker of ours existed and died
        self._discard_process()
        self._folder = transport.private_dir()
        self.token = secrets.token_hex(32)
        ready = self._folder / "ready"
        env = dict(os.environ if self._env is None else self._env)
        env[protocol.TOKEN_ENV] = self.token
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH", "")) if p)
        cmd = [
            self.python, "-m", "dvface_plugin.worker",
            "--address", transport.default_address(self._folder),
            "--ready-file", str(ready), "--cache-mb", str(self.cache_mb), "--parent-pid", str(os.getpid()),
        ]
        with open(self._folder / "worker.log", "ab") as log:
            self._proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                          start_new_session=True)
        deadline = time.monotonic() + self.start_timeout
        while not ready.exists():
            if self._proc.poll() is not None:
                raise WorkerError("start", f"the worker exited with code {self._proc.returncode} while starting "
                                  f"({self.python}); its log ends:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self._discard_process()
                raise WorkerError("start", f"the worker did not start within {self.start_timeout:.0f} s")
            time.sleep(0.05)
        self.address = ready.read_text().strip()

    def log_tail(self, lines: int = 20) -> str:
        path = self.log_path
        if path is None or not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def kill(self) -> None:
        """Kill the worker process at once (tests, and a host's 'Stop worker')."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()

    def _discard_process(self) -> None:
        self.kill()
        self._proc = None
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def close(self) -> None:
        """Ask an owned worker to shut down (kill it if it does not), and remove its folder."""
        with self._lock:
            if self.owned and self.running():
                try:
                    self.request("shutdown", timeout=5.0)
                    self._proc.wait(timeout=10)
                except (OSError, WorkerError, subprocess.TimeoutExpired):
                    pass
            if self.owned:
                self._discard_process()

    # --- requests ---------------------------------------------------------------------------

    def _connect(self, timeout: float | None) -> socket.socket:
        self.ensure_running()
        return transport.connect(self.address, timeout)

    def request(self, op: str, *, timeout: float | None = 30.0, **fields: Any) -> dict[str, Any]:
        """Send one non-streaming request; returns the "ok" reply or raises WorkerError."""
        with self._connect(timeout) as sock:
            _send(sock, {"op": op, "token": self.token, **fields})
            reply = protocol.receive(sock)
        if reply.get("event") == "error":
            raise WorkerError(reply.get("code", "error"), reply.get("message", ""))
        return reply

    def health(self) -> dict[str, Any]:
        return self.request("health")

    def stats(self) -> dict[str, Any]:
        return self.request("stats")["cache"]

    def clear_cache(self) -> dict[str, Any]:
        return self.request("clear_cache")["cache"]

    def cancel(self, job: str) -> bool:
        self._cancelled.add(job)
        if not self.running():
            return False
        return bool(self.request("cancel", job=job).get("cancelled"))

    def restore(
        self,
        input: str,
        frames: tuple[int, int],
        output: str,
        settings: dict[str, Any] | None = None,
        *,
        restore: tuple[int, int] | None = None,
        job: str | None = None,
        on_event: EventCallback | None = None,
        report: str | None = None,
    ) -> dict[str, Any]:
        """Restore frames and return the worker's "done" reply; restarts a dead worker and redoes the range.

        on_event receives every progress event, plus {"event": "restarted"} after a restart.
        report: a folder for a QC page of the restored range (`dvface report`'s), replaced if present.
        """
        job = job or uuid.uuid4().hex
        request = {"op": "restore", "job": job, "input": input, "frames": list(frames), "output": output,
                   "settings": settings or {}}
        if restore is not None:
            request["restore"] = list(restore)
        if report is not None:
            request["report"] = report
        attempts = 0
        while True:
            self.ensure_running()
            proc = self._proc  # the process this attempt talks to (another thread may restart it)
            try:
                return self._stream(request, on_event)
            except (ConnectionClosed, ConnectionError) as exc:
                if job in self._cancelled:
                    raise WorkerCancelled("cancelled", "restore cancelled") from None
                if not self.owned:
                    raise WorkerError("lost", f"lost the connection to the worker at {self.address}: {exc}") from None
                try:
                    proc.wait(timeout=5)  # a worker that dropped us without dying is replaced too
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                log = self.log_tail()
                if attempts >= self.max_restarts:
                    raise WorkerError("crashed", f"the worker died {attempts + 1} times on this range; "
                                      f"its log ends:\n{log}") from None
                attempts += 1
                with self._lock:
                    if self._proc is proc:  # not yet replaced by a request on another thread
                        self._start()
                if on_event is not None:
                    on_event({"event": "restarted", "job": job, "attempt": attempts, "pid": self.pid})

    def _stream(self, request: dict[str, Any], on_event: EventCallback | None) -> dict[str, Any]:
        with self._connect(timeout=30.0) as sock:
            _send(sock, {**request, "token": self.token})
            sock.settimeout(None)  # a window can take minutes on a CPU; death shows as EOF
            while True:
                event = protocol.receive(sock)
                kind = event.get("event")
                if kind == "error":
                    cls = WorkerCancelled if event.get("code") == "cancelled" else WorkerError
                    raise cls(event.get("code", "error"), event.get("message", ""))
                if kind == "done":
                    return event
                if on_event is not None:
                    on_event(event)


def _send(sock, message: dict[str, Any]) -> None:
    """Send a request; a worker that refuses a connection (wrong user) answers and closes before
    reading it, so a broken pipe here still leaves its reply to be read."""
    try:
        protocol.send(sock, message)
    except (BrokenPipeError, ConnectionResetError):
        pass
