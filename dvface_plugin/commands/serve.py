"""`dvface serve` (and `python -m dvface_plugin.worker`): arguments, then `worker.server.WorkerServer`."""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

from ..errors import DVFaceError
from ..worker import protocol, server, transport
from ..worker.server import WorkerServer, load_token


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--address", help="unix:PATH (default, in a new private folder) or tcp:127.0.0.1:PORT")
    parser.add_argument("--token-file", type=Path, help="file holding the session token (created 0600 if absent) "
                        f"when ${protocol.TOKEN_ENV} is not set")
    parser.add_argument("--ready-file", type=Path, help="write the listening address here once ready")
    parser.add_argument("--cache-mb", type=int, default=2048, help="engine window cache budget (MiB)")
    parser.add_argument("--parent-pid", type=int, help="exit when this process (the host) ends")


def run(args: argparse.Namespace) -> int:
    from ..worker.restore import RangeRestorer

    address = args.address
    if address is None:
        folder = transport.private_dir()
        address = transport.default_address(folder)
        token_file = args.token_file or folder / "token"
    else:
        token_file = args.token_file
    token = load_token(token_file)
    handler = RangeRestorer(args.cache_mb << 20)
    server = WorkerServer(address, token, handler, parent_pid=args.parent_pid)
    warm_up = threading.Thread(target=handler.warm, name="warm-up", daemon=True)
    warm_up.start()
    if args.ready_file is not None:
        tmp = args.ready_file.with_name(args.ready_file.name + ".tmp")
        tmp.write_text(server.address)
        os.replace(tmp, args.ready_file)
    print(f"dvface serve: listening on {server.address} (pid {os.getpid()}); token in "
          f"{'$' + protocol.TOKEN_ENV if os.environ.get(protocol.TOKEN_ENV) else token_file}", file=sys.stderr)
    started = time.monotonic()
    server.serve_forever()
    # An interpreter that exits while another thread is still importing torch can abort (SIGABRT):
    # let the warm-up finish first (a few seconds at most).
    warm_up.join()
    print(f"dvface serve: stopped after {time.monotonic() - started:.0f} s", file=sys.stderr)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("serve", help="run the restoration worker for Nuke and other hosts",
                                   description=server.__doc__.split("\n\n")[0])
    add_arguments(parser)
    parser.set_defaults(func=run)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dvface_plugin.worker")
    add_arguments(parser)
    try:
        return run(parser.parse_args(argv))
    except DVFaceError as exc:
        print(f"dvface serve: error: {exc}", file=sys.stderr)
        return exc.exit_code
