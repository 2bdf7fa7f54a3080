"""Running a job's pending chunks on Ray actors, each holding one loaded model.

The driver is the only writer of the manifest: it marks a chunk done when its task returns
(the piece is already renamed into place by then) and joins a file's output as soon as all its
chunks are done. A worker process that dies is restarted by Ray and its chunk retried; any other
chunk error stops the job with the manifest saved, so rerunning the command resumes it.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from pathlib import Path

from ..errors import DVFaceError
from .execute import CRASH_ONCE_ENV, DRIVER_KILL_AFTER_ENV, FAIL_AFTER_ENV, ChunkWorker, assemble
from .manifest import Manifest
from .naming import input_stem

INSTALL_HINT = 'dvface batch needs Ray: pip install "dvface-plugin[batch]" (or pip install "ray>=2.9")'


def import_ray():
    try:
        import ray
    except ModuleNotFoundError as exc:
        if exc.name != "ray":
            raise
        raise DVFaceError(INSTALL_HINT) from exc
    return ray


def run_job(manifest: Manifest, options: dict, *, workers: int, gpus_per_worker: float,
            address: str | None, quiet: bool, report_dir: Path | None = None) -> int:
    """Render every pending chunk and join every finished file; returns the frames rendered.

    `report_dir`: a QC page per whole-frame file as it completes, in report_dir/<stem>/."""
    ray = import_ray()
    todo = [(src, c) for src, e in manifest.files.items() if e["state"] != "done"
            for c in e["chunks"] if c["state"] != "done"]
    for src in [s for s, e in manifest.files.items() if e["state"] != "done"]:
        _finish_if_complete(manifest, src, options, report_dir)
    if not todo:
        return 0
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=not quiet,
                 **({} if address else {"num_cpus": max(workers, 1)}))
    fail_after = os.environ.get(FAIL_AFTER_ENV)
    actor_cls = ray.remote(ChunkWorker).options(num_cpus=1, num_gpus=gpus_per_worker,
                                                max_restarts=3, max_task_retries=3)
    actors = [actor_cls.remote(options, None if fail_after is None else int(fail_after),
                               os.environ.get(CRASH_ONCE_ENV))
              for _ in range(min(workers, len(todo)))]
    progress = _progress(sum(c["stop"] - c["start"] for _, c in todo), quiet)
    running: dict = {}
    done_frames = marked = 0
    kill_after = os.environ.get(DRIVER_KILL_AFTER_ENV)

    def submit(actor) -> None:
        src, c = todo.pop(0)
        piece = str(_piece_path(manifest, src, c["index"]))
        tracks = None if options["aligned"] else str(tracks_path(manifest, src))
        ref = actor.render.remote(src, manifest.files[src]["n_frames"],
                                  {k: c[k] for k in ("index", "start", "stop", "read_start", "read_stop")}, piece,
                                  tracks)
        running[ref] = (actor, src, c)

    try:
        for actor in actors:
            if todo:
                submit(actor)
        while running:
            ready, _ = ray.wait(list(running), num_returns=1)
            actor, src, c = running.pop(ready[0])
            try:
                piece = ray.get(ready[0])
            except Exception as exc:
                cause = getattr(exc, "cause", None) or exc  # a RayTaskError carries the worker's exception
                raise DVFaceError(
                    f"chunk {c['index']} of {src} failed ({type(cause).__name__}: {cause}); the job state is saved in {manifest.path}: "
                    "fix the cause and rerun the same command to resume"
                ) from exc
            manifest.chunk_done(src, c["index"], piece)
            marked += 1
            if kill_after is not None and marked >= int(kill_after):
                os.kill(os.getpid(), signal.SIGKILL)
            done_frames += c["stop"] - c["start"]
            progress.update(c["stop"] - c["start"])
            _finish_if_complete(manifest, src, options, report_dir)
            if todo:
                submit(actor)
    finally:
        progress.close()
        for ref in running:
            ray.cancel(ref, force=False)
        for actor in actors:
            ray.kill(actor)
    return done_frames


def _piece_path(manifest: Manifest, src: str, index: int) -> Path:
    """A chunk's piece, without the extension the worker gives it (`execute.piece_path`)."""
    entry = manifest.files[src]
    return manifest.path.parent / f"{input_stem(src)}-{entry['sha256'][:8]}" / f"chunk-{index:05d}"


def tracks_path(manifest: Manifest, src: str) -> Path:
    """Where the driver keeps a whole-frame file's face tracks for its chunks."""
    entry = manifest.files[src]
    return manifest.path.parent / "tracks" / f"{input_stem(src)}-{entry['sha256'][:8]}.json"


def _finish_if_complete(manifest: Manifest, src: str, options: dict, report_dir: Path | None) -> None:
    entry = manifest.files[src]
    if any(c["state"] != "done" for c in entry["chunks"]):
        return
    assemble(src, [c["piece"] for c in entry["chunks"]], Path(entry["output"]), options,
             woven_fields=entry.get("unit") == "fields")
    manifest.file_done(src)
    shutil.rmtree(Path(entry["chunks"][0]["piece"]).parent, ignore_errors=True)
    if not options["aligned"]:
        tracks = tracks_path(manifest, src)
        if report_dir is not None:  # with the tracks the chunks were restored with, before they go
            from ..report import build_report
            from ..wholeframe.platecolour import plate_colour

            build_report(src, entry["output"], report_dir / input_stem(src), tracks_file=tracks,
                         faces=options["faces"], min_face=options["min_face"],
                         colour=plate_colour(options["colorspace"], options["ocio"]),
                         allow_interlaced=options.get("allow_interlaced", False))
        tracks.unlink(missing_ok=True)
        if not any(tracks.parent.iterdir()):
            tracks.parent.rmdir()


def _progress(total: int, quiet: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="frame", file=sys.stderr, disable=quiet, dynamic_ncols=True, desc="batch")
