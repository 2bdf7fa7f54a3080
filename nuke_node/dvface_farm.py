"""Farm and terminal renders: restore DVFace nodes for a frame range, then render a Write.

    nuke -t dvface_farm.py shot.nk --frames 1001-1050 --write Write1

The restore runs synchronously through the same path as the Restore button, without Qt. The
face analysis and the engine windows span each node's whole frame range, so machines rendering
different chunks of a shot produce frames identical to a single whole render.
"""

from __future__ import annotations

import argparse
import sys

import nuke

import dvface_nuke


def run(first: int, last: int, node_names: list[str] | None = None, write: str | None = None) -> list[str]:
    """Restore the named DVFaceRestore nodes (default: all in the script); returns their names."""
    if node_names:
        nodes = [nuke.toNode(name) for name in node_names]
        missing = [name for name, node in zip(node_names, nodes) if node is None]
        if missing:
            raise SystemExit(f"dvface_farm: no node named {', '.join(missing)} in the script")
    else:
        nodes = [n for n in nuke.allNodes() if dvface_nuke.is_dvface(n)]
    for node in nodes:
        lo, hi = dvface_nuke.frame_range(node)
        if max(first, lo) <= min(last, hi):
            dvface_nuke.restore(node, max(first, lo), min(last, hi))
    if write:
        nuke.execute(write, first, last)
    return [n.name() for n in nodes]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nuke -t dvface_farm.py")
    parser.add_argument("script", help="the .nk script")
    parser.add_argument("--frames", required=True, help="FIRST-LAST, the chunk this machine renders")
    parser.add_argument("--nodes", help="comma-separated DVFaceRestore node names (default: all)")
    parser.add_argument("--write", help="Write node to render after restoring")
    args = parser.parse_args(argv)
    first, _, last = args.frames.partition("-")
    nuke.scriptOpen(args.script)
    try:
        run(int(first), int(last or first), args.nodes.split(",") if args.nodes else None, args.write)
    except dvface_nuke.DVFaceNukeError as exc:
        print(f"dvface_farm: {exc}", file=sys.stderr)
        return 1
    finally:
        dvface_nuke.set_client(None)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
