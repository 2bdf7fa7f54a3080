"""The job manifest: what a batch job restores and which chunks are done, so a rerun resumes.

One JSON file per job, rewritten atomically (temp file + rename) after every change, so a killed
driver leaves either the old or the new state, never a torn one. The driver is its only writer.
A chunk is `done` only once its piece file was renamed into place; a file is `done` only once
its final output was. A changed input (different sha256) or settings start that file over.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ..errors import InputError
from ..media.sequences import parse_pattern, resolve_sequence, scan_folder
from .plan import Chunk

VERSION = 1


def source_sha256(path: str | Path) -> str:
    """Checksum of an input: a video file's bytes, or an image sequence's frame names and bytes, in
    order (a pattern, or a folder of numbered frames), so a re-rendered frame starts the file over."""
    path = Path(path)
    pattern = parse_pattern(path) or (scan_folder(path) if path.is_dir() else None)
    files = [path] if pattern is None else resolve_sequence(pattern)[1]
    h = hashlib.sha256()
    for file in files:
        if pattern is not None:
            h.update(file.name.encode() + b"\0")
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def job_id(inputs: list[str], settings: dict) -> str:
    """Same inputs and settings, same job: rerunning the command finds its manifest."""
    text = json.dumps({"inputs": sorted(inputs), "settings": settings}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class Manifest:
    def __init__(self, path: Path, data: dict) -> None:
        self.path = path
        self.data = data

    @classmethod
    def open(cls, path: Path, settings: dict) -> Manifest:
        """Load the job's manifest, or start an empty one (settings changed: start over)."""
        if path.exists():
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise InputError(f"cannot read the job manifest {path} ({exc}); delete it to start the job over") from exc
            if data.get("version") == VERSION and data.get("settings") == settings:
                return cls(path, data)
        return cls(path, {"version": VERSION, "settings": settings, "files": {}})

    @property
    def files(self) -> dict:
        return self.data["files"]

    def add_file(self, source: str, sha256: str, output: str, n_frames: int, chunks: list[Chunk],
                 unit: str = "frames") -> dict:
        """The file's entry, kept if its checksum and plan are unchanged, else a fresh one. `unit`
        names what the chunks count: "frames", or "fields" for an interlaced file (two a frame)."""
        entry = self.files.get(source)
        plan = [c.to_json() for c in chunks]
        if entry is not None and entry["sha256"] == sha256 and entry["output"] == output and [
            {k: v for k, v in c.items() if k in plan[0]} for c in entry["chunks"]
        ] == plan:
            if entry["state"] == "done" and not Path(output).exists():
                entry["state"] = "pending"
            for c in entry["chunks"]:
                if c["state"] == "done" and not Path(c["piece"]).exists() and entry["state"] != "done":
                    c["state"] = "pending"
            return entry
        entry = {
            "sha256": sha256,
            "output": output,
            "n_frames": n_frames,
            "unit": unit,
            "state": "pending",
            "chunks": [{**c, "state": "pending", "piece": None, "runs": 0} for c in plan],
        }
        self.files[source] = entry
        return entry

    def chunk_done(self, source: str, index: int, piece: str) -> None:
        chunk = self.files[source]["chunks"][index]
        chunk.update(state="done", piece=piece, runs=chunk["runs"] + 1)
        self.save()

    def file_done(self, source: str) -> None:
        self.files[source]["state"] = "done"
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with open(tmp, "w") as f:
            json.dump(self.data, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
