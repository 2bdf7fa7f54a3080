"""The worker's transport and request handling: token, peer user, malformed messages, cancel.

Most tests drive a real `python -m dvface_plugin.worker` process (it starts in a few seconds and
loads no model until a restore); the peer-uid check runs an in-process server with a stub job.
"""

import os
import shutil
import socket
import stat
import struct
import subprocess
import sys
import threading
import time

import pytest

from dvface_plugin.errors import InputError
from dvface_plugin.worker import protocol, transport
from dvface_plugin.worker.client import WorkerClient, WorkerError
from dvface_plugin.worker.server import WorkerServer


@pytest.fixture(scope="module")
def worker():
    client = WorkerClient()
    client.ensure_running()
    yield client
    client.close()


def raw(client, payload: bytes, read: bool = True):
    """Send raw bytes on a fresh connection; the reply, or None when the worker closed silently."""
    with transport.connect(client.address, timeout=15) as sock:
        sock.sendall(payload)
        if not read:
            return None
        sock.shutdown(socket.SHUT_WR)
        try:
            return protocol.receive(sock)
        except protocol.ConnectionClosed:
            return None


def frame(obj) -> bytes:
    return protocol.encode(obj)


def assert_alive(client, pid):
    reply = client.health()
    assert reply["pid"] == pid and client.running()


def test_socket_lives_in_a_private_folder_and_is_not_world_reachable(worker):
    path = worker.address.removeprefix("unix:")
    folder_mode = stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode)
    assert worker.address.startswith("unix:") and folder_mode == 0o700
    assert stat.S_IMODE(os.stat(path).st_mode) & 0o077 == 0


def test_requests_without_or_with_a_wrong_token_are_refused(worker):
    pid = worker.health()["pid"]
    for message in ({"op": "health"}, {"op": "stats", "token": "0" * 64}, {"op": "shutdown", "token": 12}):
        reply = raw(worker, frame(message))
        assert reply["event"] == "error" and reply["code"] == "unauthorized"
    assert "cache" not in raw(worker, frame({"op": "stats", "token": "x" * 64}))
    assert_alive(worker, pid)  # the refused shutdown did not stop it


@pytest.mark.parametrize(
    "payload,code",
    [
        (struct.pack(">I", 11) + b"not json!!!", "bad_request"),
        (struct.pack(">I", 4) + b"\xff\xfe\x00\x01", "bad_request"),
        (struct.pack(">I", 2) + b"[]", "bad_request"),
        (struct.pack(">I", protocol.MAX_MESSAGE + 1) + b"{}", "too_large"),
        (struct.pack(">I", 0xFFFFFFFF), "too_large"),
    ],
    ids=["garbage", "not-utf8", "not-an-object", "oversized", "huge-length"],
)
def test_malformed_messages_get_an_error_reply_and_the_worker_stays_up(worker, payload, code):
    pid = worker.health()["pid"]
    reply = raw(worker, payload)
    assert reply == {"event": "error", "code": code, "message": reply["message"]} and reply["message"]
    assert_alive(worker, pid)


def test_bad_requests_with_the_right_token_are_explained(worker):
    t = worker.token
    cases = [
        ({"op": "launch_missiles", "token": t}, "unknown op"),
        ({"op": "cancel", "token": t}, "job"),
        ({"op": "restore", "token": t, "input": "/x/a.####.exr", "output": "/x/b.####.exr", "frames": [5, 1]},
         "frames"),
        ({"op": "restore", "token": t, "input": "/x/a.####.exr", "output": "/x/b.####.exr", "frames": [1, 5],
          "settings": []}, "settings"),
    ]
    for message, word in cases:
        reply = raw(worker, frame(message))
        assert reply["code"] == "bad_request" and word in reply["message"]


def test_truncated_and_silent_connections_do_not_block_other_clients(worker):
    pid = worker.health()["pid"]
    assert raw(worker, struct.pack(">I", 100) + b'{"op": "he') is None  # closed mid-message
    assert raw(worker, b"\x00\x00") is None  # closed mid-header
    hanging = transport.connect(worker.address)  # connects and never sends
    hanging.sendall(struct.pack(">I", 50))
    try:
        started = time.monotonic()
        assert_alive(worker, pid)
        assert time.monotonic() - started < 2.0
    finally:
        hanging.close()


def test_restore_of_missing_input_is_an_input_error_not_a_crash(worker, tmp_path):
    with pytest.raises(WorkerError) as err:
        worker.restore(str(tmp_path / "nothing.####.exr"), (1, 3), str(tmp_path / "out.####.exr"),
                       {"model": str(tmp_path / "no-model")})
    assert err.value.code == "input"
    with pytest.raises(WorkerError, match="unknown restore setting"):
        worker.restore(str(tmp_path / "a.####.exr"), (1, 1), str(tmp_path / "b.####.exr"), {"strenght": 1})
    assert worker.health()["jobs"] == []


def test_cancel_of_an_unknown_job_says_so_and_stats_answer(worker):
    assert worker.cancel("no-such-job") is False
    stats = worker.stats()
    assert {"bytes_held", "budget_bytes", "hits", "misses", "analyses"} <= set(stats)


def test_shutdown_stops_the_worker_and_removes_its_socket():
    client = WorkerClient()
    client.ensure_running()
    path = client.address.removeprefix("unix:")
    proc = client._proc
    assert client.request("shutdown")["event"] == "ok"
    assert proc.wait(timeout=10) == 0
    assert not os.path.exists(path)
    client.close()


class StubJob:
    def __init__(self):
        self.started = threading.Event()

    def restore(self, request, progress, cancelled):
        self.started.set()
        for i in range(200):
            if cancelled():
                from dvface_plugin.worker.restore import Cancelled

                raise Cancelled("restore cancelled")
            progress({"event": "progress", "stage": "restore", "frame": i, "done": i + 1, "total": 200})
            time.sleep(0.02)
        return {"event": "done", "frames": request["frames"]}

    def stats(self):
        return {"entries": 0}

    def clear(self):
        return {"entries": 0}


@pytest.fixture
def stub_server():
    folder = transport.private_dir()
    servers = []

    def start(**kwargs):
        server = WorkerServer(f"unix:{folder / 's.sock'}", "t" * 32, StubJob(), **kwargs)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
    shutil.rmtree(folder, ignore_errors=True)


def test_connections_from_another_user_are_refused_by_peer_credentials(stub_server):
    server = stub_server(allowed_uid=os.getuid() + 1)  # as if the worker belonged to someone else
    assert transport.peer_uid(transport.connect(server.address)) is not None
    client = WorkerClient(address=server.address, token="t" * 32)
    with pytest.raises(WorkerError) as err:
        client.health()
    assert err.value.code == "unauthorized" and "uid" in str(err.value)


@pytest.mark.skipif(not hasattr(os, "setuid") or os.getuid() != 0, reason="needs root to act as another user")
def test_another_user_cannot_even_reach_the_socket(stub_server):
    server = stub_server()
    path = server.address.removeprefix("unix:")
    pid = os.fork()
    if pid == 0:  # child: become 'nobody' and try to connect
        code = 0
        try:
            os.setgid(65534)
            os.setuid(65534)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(path)
        except PermissionError:
            code = 7
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 7


def test_cancel_stops_a_running_restore_and_a_vanished_client_cancels_too(stub_server):
    server = stub_server()
    client = WorkerClient(address=server.address, token="t" * 32)
    events = []
    errors = []

    def run():
        try:
            client.restore("/a.####.exr", (1, 2), "/b.####.exr", job="J1", on_event=events.append)
        except WorkerError as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    server.handler.started.wait(5)
    time.sleep(0.1)
    assert client.health()["jobs"] == ["J1"]  # health answers while a restore runs
    assert client.cancel("J1") is True
    thread.join(5)
    assert errors and errors[0].code == "cancelled" and 0 < len(events) < 200

    sock = transport.connect(server.address)  # a client that sends a restore and disappears
    protocol.send(sock, {"op": "restore", "token": "t" * 32, "job": "J2", "input": "/a.####.exr",
                         "output": "/b.####.exr", "frames": [1, 2]})
    assert protocol.receive(sock)["event"] == "accepted"
    sock.close()
    deadline = time.monotonic() + 5
    while client.health()["jobs"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.health()["jobs"] == []


def test_dvface_serve_started_by_hand_writes_a_private_token_and_a_client_can_attach(tmp_path):
    folder = transport.private_dir()
    ready = folder / "ready"
    env = {k: v for k, v in os.environ.items() if k != protocol.TOKEN_ENV}
    proc = subprocess.Popen([sys.executable, "-m", "dvface_plugin.cli", "serve", "--address",
                             f"unix:{folder / 'w.sock'}", "--token-file", str(folder / "token"),
                             "--ready-file", str(ready)], env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        token_file = folder / "token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600 and len(token_file.read_text()) == 64
        client = WorkerClient(address=ready.read_text(), token=token_file.read_text())
        assert client.health()["pid"] == proc.pid
        assert client.request("shutdown")["event"] == "ok"
        assert proc.wait(timeout=15) == 0
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(folder, ignore_errors=True)


def test_a_shared_socket_folder_is_refused(tmp_path):
    tmp_path.chmod(0o755)
    with pytest.raises(InputError, match="0700"):
        transport.listen(f"unix:{tmp_path / 's.sock'}")
    with pytest.raises(InputError, match="localhost"):
        transport.listen("tcp:0.0.0.0:0")


def test_localhost_tcp_transport_needs_the_token_too():
    server = WorkerServer("tcp:127.0.0.1:0", "k" * 32, StubJob())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        assert server.address.startswith("tcp:127.0.0.1:") and not server.address.endswith(":0")
        assert WorkerClient(address=server.address, token="k" * 32).health()["event"] == "ok"
        with pytest.raises(WorkerError, match="token"):
            WorkerClient(address=server.address, token="j" * 32).health()
    finally:
        server.stop()


def test_a_worker_that_died_while_idle_is_restarted_by_the_next_request():
    client = WorkerClient()
    try:
        first = client.health()["pid"]
        client.kill()
        assert not client.running()
        assert client.health()["pid"] not in (first, None) and client.restarts == 1
    finally:
        client.close()


def test_the_worker_exits_when_the_host_that_started_it_dies(tmp_path):
    host = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\n"
         "from dvface_plugin.worker.client import WorkerClient\n"
         "c = WorkerClient(); c.ensure_running(); print(c.pid, flush=True); time.sleep(600)"],
        stdout=subprocess.PIPE, text=True)
    try:
        worker_pid = int(host.stdout.readline())
        os.kill(worker_pid, 0)  # running
        host.kill()
        host.wait()
        deadline = time.monotonic() + 30  # it first lets its warm-up imports end: ~5 s idle, more on a busy machine
        while time.monotonic() < deadline:
            try:
                os.kill(worker_pid, 0)
            except ProcessLookupError:
                break
            stat_file = f"/proc/{worker_pid}/stat"
            if os.path.exists(stat_file) and open(stat_file).read().split(")")[-1].split()[0] == "Z":
                break  # exited, waiting to be reaped by init
            time.sleep(0.1)
        else:
            os.kill(worker_pid, 9)
            pytest.fail("the worker outlived its host")
    finally:
        host.kill()
        host.wait()
