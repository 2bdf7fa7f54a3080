"""`dvface batch`: chunk planning, the resumable manifest, and Ray runs bit-identical to `dvface restore`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from fractions import Fraction
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import torch

from tiny_models import save_tiny

from dvface_plugin.batch.execute import CRASH_ONCE_ENV, DRIVER_KILL_AFTER_ENV, FAIL_AFTER_ENV
from dvface_plugin.batch.manifest import Manifest
from dvface_plugin.batch.plan import plan_chunks
from dvface_plugin.cli import main
from dvface_plugin.engine import WindowGrid
from dvface_plugin.media import MediaWriter, open_media
from dvface_plugin.wholeframe.synthetic import synthetic_frames

CROP = 32


@pytest.mark.parametrize("n,window,overlap,quantum,chunk", [
    (31, 5, 1, 4, 4), (31, 5, 1, 4, 9), (100, 17, 4, 4, 30), (7, 5, 1, 4, 2), (5, 5, 1, 4, 1), (64, 9, 2, 1, 10)])
def test_chunks_tile_the_clip_on_window_starts_and_read_their_windows(n, window, overlap, quantum, chunk):
    grid = WindowGrid(n, window, overlap, quantum)
    chunks = plan_chunks(grid, chunk)
    starts = {w.start for w in grid.windows}
    assert chunks[0].start == 0 and chunks[-1].stop == n
    assert all(a.stop == b.start for a, b in pairwise(chunks))
    assert all(c.start in starts for c in chunks)
    assert all(c.frames >= chunk for c in chunks[:-1])
    for c in chunks:
        wins = [w for w in grid.windows if w.start < c.stop and w.stop > c.start]
        assert (c.read_start, c.read_stop) == (wins[0].start, wins[-1].stop)
    if len(grid.windows) > 1 and chunk <= grid.stride:
        # small chunks: one per window start, but a short end-anchored tail joins the chunk before it
        assert len(grid.windows) - 1 <= len(chunks) <= len(grid.windows)


def test_manifest_saves_atomically_and_restarts_a_changed_file(tmp_path):
    grid = WindowGrid(13, 5, 1, 4)
    chunks = plan_chunks(grid, 4)
    path = tmp_path / "job" / "manifest.json"
    m = Manifest.open(path, {"strength": 1.0})
    m.add_file("a.mkv", "aa", str(tmp_path / "a.mkv"), 13, chunks)
    piece = tmp_path / "piece0.mkv"
    piece.write_bytes(b"x")
    m.chunk_done("a.mkv", 0, str(piece))
    assert [p.name for p in path.parent.iterdir()] == ["manifest.json"]  # no temp file left
    again = Manifest.open(path, {"strength": 1.0})
    entry = again.add_file("a.mkv", "aa", str(tmp_path / "a.mkv"), 13, chunks)
    assert [c["state"] for c in entry["chunks"]][:2] == ["done", "pending"] and entry["chunks"][0]["runs"] == 1
    piece.unlink()  # a done chunk whose piece vanished is pending again
    assert Manifest.open(path, {"strength": 1.0}).add_file(
        "a.mkv", "aa", str(tmp_path / "a.mkv"), 13, chunks)["chunks"][0]["state"] == "pending"
    piece.write_bytes(b"x")
    changed = Manifest.open(path, {"strength": 1.0}).add_file("a.mkv", "bb", str(tmp_path / "a.mkv"), 13, chunks)
    assert all(c["state"] == "pending" for c in changed["chunks"])
    assert Manifest.open(path, {"strength": 0.5}).files == {}  # other settings: another job


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("model"), CROP, window=5, overlap=1)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(3)
    made = []
    for name, n, dtype, bits in (("alpha", 14, np.uint8, 8), ("beta", 11, np.uint16, 16)):
        frames = rng.integers(0, np.iinfo(dtype).max, (n, CROP, CROP, 3), dtype=dtype)
        path = folder / f"{name}.mkv"
        with MediaWriter(path, fps=Fraction(25), width=CROP, height=CROP, bit_depth=bits) as w:
            for frame in frames:
                w.write(frame)
        made.append(path)
    return made


@pytest.fixture(scope="module")
def references(clips, model_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("whole")
    refs = {}
    for clip in clips:
        out = folder / clip.name
        assert main(["restore", "--aligned", str(clip), "-o", str(out), "--model", str(model_dir), "--quiet",
                     "--strength", "0.8", "--stabilise", "1", "--grain", "0.5"]) == 0
        refs[clip.stem] = np.stack(list(open_media(out)))
    plain = folder / "plain.mkv"  # the model's own radius is 0: batch must pass --stabilise and --grain on
    assert main(["restore", "--aligned", str(clips[0]), "-o", str(plain), "--model", str(model_dir), "--quiet",
                 "--strength", "0.8"]) == 0
    assert not np.array_equal(np.stack(list(open_media(plain))), refs[clips[0].stem])
    return refs


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def batch_args(clips, model_dir, outdir, *extra):
    return ["batch", *map(str, clips), "-o", str(outdir), "--aligned", "--model", str(model_dir), "--quiet",
            "--strength", "0.8", "--stabilise", "1", "--grain", "0.5", "--chunk-frames", "3", "--workers", "2",
            # the whole-clip reference ran with this process's torch threads: float sums depend on them
            "--threads-per-worker", str(torch.get_num_threads()), *extra]


def job_manifest(outdir):
    (path,) = (outdir / ".dvface-batch").glob("*/manifest.json")
    return json.loads(path.read_text())


def test_batch_outputs_are_bit_identical_to_whole_clip_restores(ray_local, clips, model_dir, references, tmp_path):
    outdir = tmp_path / "out"
    assert main(batch_args(clips, model_dir, outdir)) == 0
    for clip in clips:
        out = open_media(outdir / clip.name)
        assert out.fps == Fraction(25)
        assert np.array_equal(np.stack(list(out)), references[clip.stem])
    files = job_manifest(outdir)["files"]
    assert all(e["state"] == "done" and len(e["chunks"]) >= 2 for e in files.values())  # every clip was split
    assert all(c["runs"] == 1 for e in files.values() for c in e["chunks"])
    assert sorted(p.name for p in outdir.iterdir()) == [".dvface-batch", "alpha.mkv", "beta.mkv"]
    assert [p.name for p in next((outdir / ".dvface-batch").iterdir()).iterdir()] == ["manifest.json"]


def test_interrupted_job_resumes_without_redoing_chunks(ray_local, clips, model_dir, references, tmp_path,
                                                        monkeypatch, capsys):
    outdir = tmp_path / "out"
    monkeypatch.setenv(FAIL_AFTER_ENV, "2")  # each worker fails on its third chunk
    assert main(batch_args(clips, model_dir, outdir)) == 2
    assert "rerun the same command" in capsys.readouterr().err
    first = job_manifest(outdir)["files"]
    done_before = {(s, c["index"]) for s, e in first.items() for c in e["chunks"] if c["state"] == "done"}
    total = sum(len(e["chunks"]) for e in first.values())
    assert 0 < len(done_before) < total
    # a file's output exists exactly when the manifest says it is done, and one is unfinished
    assert any(e["state"] != "done" for e in first.values())
    assert all(Path(e["output"]).exists() == (e["state"] == "done") for e in first.values())
    assert sorted(p.name for p in outdir.iterdir() if not p.name.startswith(".")) == sorted(
        Path(e["output"]).name for e in first.values() if e["state"] == "done")
    assert main(batch_args(clips, model_dir, outdir, "--dry-run")) == 0
    shown = capsys.readouterr().out
    for entry in first.values():
        done = sum(c["state"] == "done" for c in entry["chunks"])
        assert f"{len(entry['chunks'])} chunks, {done} done, file {entry['state']}" in shown
    monkeypatch.delenv(FAIL_AFTER_ENV)
    assert main(batch_args(clips, model_dir, outdir)) == 0
    files = job_manifest(outdir)["files"]
    assert all(c["runs"] == 1 and c["state"] == "done" for e in files.values() for c in e["chunks"])
    for clip in clips:
        assert np.array_equal(np.stack(list(open_media(outdir / clip.name))), references[clip.stem])


def test_a_killed_worker_is_restarted_and_the_job_completes(ray_local, clips, model_dir, references, tmp_path,
                                                             monkeypatch):
    outdir, marker = tmp_path / "out", tmp_path / "crashed"
    monkeypatch.setenv(CRASH_ONCE_ENV, str(marker))  # a worker process dies in the middle of the job
    assert main(batch_args(clips, model_dir, outdir)) == 0
    assert marker.exists()
    files = job_manifest(outdir)["files"]
    assert all(c["runs"] == 1 and c["state"] == "done" for e in files.values() for c in e["chunks"])
    for clip in clips:
        assert np.array_equal(np.stack(list(open_media(outdir / clip.name))), references[clip.stem])


def test_a_killed_driver_resumes_on_rerun_without_restoring_a_done_chunk_again(clips, model_dir, references,
                                                                              tmp_path):
    """The driver process dies by SIGKILL mid-job (no cleanup at all); the same command then finishes."""
    outdir = tmp_path / "out"
    command = [sys.executable, "-m", "dvface_plugin.cli", *batch_args(clips, model_dir, outdir)]
    env = {**os.environ, DRIVER_KILL_AFTER_ENV: "3"}
    killed = subprocess.run(command, env=env, capture_output=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    first = job_manifest(outdir)["files"]
    done_before = {(s, c["index"]) for s, e in first.items() for c in e["chunks"] if c["state"] == "done"}
    assert len(done_before) == 3 and any(e["state"] != "done" for e in first.values())
    assert all(Path(e["output"]).exists() == (e["state"] == "done") for e in first.values())
    resumed = subprocess.run(command, capture_output=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr.decode()[-2000:]
    files = job_manifest(outdir)["files"]
    assert all(c["runs"] == 1 and c["state"] == "done" for e in files.values() for c in e["chunks"])
    for clip in clips:
        assert np.array_equal(np.stack(list(open_media(outdir / clip.name))), references[clip.stem])


def test_batch_without_ray_says_how_to_install_it(clips, model_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)
    assert main(batch_args(clips, model_dir, tmp_path / "out")) == 2
    assert 'pip install "dvface-plugin[batch]"' in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_whole_frame_batch_is_bit_identical_to_dvface_restore(ray_local, tmp_path, monkeypatch):
    """Faces are tracked once per file before the split; a face entering mid-clip and two faces with
    their own window grids cross chunk boundaries, and every pixel still matches the whole-clip run."""
    monkeypatch.setenv("DVFACE_CACHE_DIR", str(tmp_path / "cache"))
    model = save_tiny(tmp_path / "model", 64, window=5, overlap=1)
    shots = {
        "two": list(synthetic_frames(11, 320, 200, faces=2, face_px=110)),
        "enters": list(synthetic_frames(3, 320, 240, faces=0)) + list(synthetic_frames(9, 320, 240, faces=1,
                                                                                         face_px=150)),
    }
    sources, refs = [], {}
    for name, frames in shots.items():
        src = tmp_path / f"{name}.mkv"
        if name == "two":  # as cameras write: H.264 in YUV 4:2:0, which the output keeps
            import av

            with av.open(str(src), "w") as container:
                stream = container.add_stream("libx264", rate=Fraction(24000, 1001))
                stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
                for i, frame in enumerate(frames):
                    video = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="yuv420p")
                    video.pts = i
                    for packet in [*stream.encode(video), *(stream.encode() if i == len(frames) - 1 else [])]:
                        container.mux(packet)
        else:
            with MediaWriter(src, fps=Fraction(24000, 1001), width=frames[0].shape[1],
                             height=frames[0].shape[0]) as w:
                for frame in frames:
                    w.write(frame)
        ref = tmp_path / f"ref-{name}.mkv"
        assert main(["restore", str(src), "-o", str(ref), "--model", str(model), "--quiet"]) == 0
        refs[name] = np.stack(list(open_media(ref)))
        assert not np.array_equal(refs[name], np.stack(frames))  # faces were found and restored
        sources.append(src)
    outdir = tmp_path / "out"
    assert main(["batch", *map(str, sources), "-o", str(outdir), "--model", str(model), "--quiet",
                 "--chunk-frames", "4", "--workers", "2", "--threads-per-worker", str(torch.get_num_threads()),
                 "--report", str(tmp_path / "qc")]) == 0
    for name in shots:
        out = open_media(outdir / f"{name}.mkv")
        assert out.fps == Fraction(24000, 1001)
        assert np.array_equal(np.stack(list(out)), refs[name]), name
        assert out.pix_fmt == open_media(tmp_path / f"ref-{name}.mkv").pix_fmt  # yuv420p for the H.264 shot
    files = job_manifest(outdir)["files"]
    assert all(e["state"] == "done" and len(e["chunks"]) >= 3 for e in files.values())
    assert all(c["runs"] == 1 for e in files.values() for c in e["chunks"])
    assert [p.name for p in next((outdir / ".dvface-batch").iterdir()).iterdir()] == ["manifest.json"]
    # a lossy output in the source's format (H.264 4:2:0 here) is encoded from the pieces' own samples
    # (joining them used to be refused), as `dvface restore` encodes its frames
    assert main(["restore", str(sources[0]), "-o", str(tmp_path / "ref-two.mp4"), "--model", str(model),
                 "--quiet"]) == 0
    assert main(["batch", str(sources[0]), "-o", str(tmp_path / "mp4"), "--ext", "mp4", "--model", str(model),
                 "--quiet", "--chunk-frames", "4", "--workers", "2",
                 "--threads-per-worker", str(torch.get_num_threads())]) == 0
    out = open_media(tmp_path / "mp4" / "two.mp4")
    assert out.pix_fmt == "yuv420p" and out.frame_count == len(shots["two"])
    assert np.array_equal(np.stack(list(out)), np.stack(list(open_media(tmp_path / "ref-two.mp4"))))
    for name, faces in (("two", 2), ("enters", 1)):  # --report: a QC page per file, from the job's own tracks
        report = json.loads((tmp_path / "qc" / name / "report.json").read_text())
        assert len(report["tracks"]) == faces and all(t["restored"] for t in report["tracks"])
    assert json.loads((tmp_path / "qc" / "enters" / "report.json").read_text())["frames_without_restored_face"] == \
        [{"first": 0, "last": 2, "why": "no face detected"}]


def test_a_scan_sequence_keeps_its_frame_names_depth_and_pixels(ray_local, tmp_path, monkeypatch):
    """Film scans on a farm: a folder of 16-bit numbered frames is one input; its output is a folder of
    frames with the same names and numbers, each equal to `dvface restore`'s."""
    monkeypatch.setenv("DVFACE_CACHE_DIR", str(tmp_path / "cache"))
    model = save_tiny(tmp_path / "model", 64, window=5, overlap=1)
    reel = tmp_path / "reel1"
    reel.mkdir()
    frames = [f.astype(np.uint16) * 257 for f in synthetic_frames(9, 320, 200, faces=1, face_px=130)]
    with MediaWriter(reel / "reel1_%04d.png", width=320, height=200, bit_depth=16, start_number=1001) as writer:
        for frame in frames:
            writer.write(frame)
    (tmp_path / "ref").mkdir()
    assert main(["restore", str(reel / "reel1_%04d.png"), "-o", str(tmp_path / "ref" / "reel1_%04d.png"),
                 "--model", str(model), "--quiet"]) == 0
    outdir = tmp_path / "out"
    assert main(["batch", str(reel), "-o", str(outdir), "--model", str(model), "--quiet", "--chunk-frames", "3",
                 "--workers", "2", "--threads-per-worker", str(torch.get_num_threads())]) == 0
    names = [f"reel1_{n:04d}.png" for n in range(1001, 1010)]
    assert sorted(p.name for p in (outdir / "reel1").iterdir()) == names
    restored = [open_media(outdir / "reel1" / name).read(0) for name in names]
    assert restored[0].dtype == np.uint16 and not np.array_equal(np.stack(restored), np.stack(frames))
    assert all(np.array_equal(a, open_media(tmp_path / "ref" / name).read(0)) for a, name in zip(restored, names))
    assert len(job_manifest(outdir)["files"][str(reel)]["chunks"]) >= 3


def test_a_half_float_exr_plate_is_restored_in_float_pieces_as_dvface_restore_does(ray_local, tmp_path,
                                                                                   monkeypatch):
    """Plates on a farm: a half-float EXR sequence with highlights above 1.0 goes through float
    pieces (FFV1 holds no float), and comes back half, each frame equal to `dvface restore`'s, every
    value outside the faces the plate's own."""
    monkeypatch.setenv("DVFACE_CACHE_DIR", str(tmp_path / "cache"))
    model = save_tiny(tmp_path / "model", 64, window=5, overlap=1)
    plate = tmp_path / "plate"
    plate.mkdir()
    frames = []
    for frame in synthetic_frames(9, 320, 200, faces=1, face_px=130):
        linear = (frame.astype(np.float32) / 255) ** 2.2
        linear[:12, :40] = 6.5  # a practical light, far above display white
        frames.append(linear.astype(np.float16).astype(np.float32))
    with MediaWriter(plate / "sh010_%04d.exr", width=320, height=200, bit_depth=32, start_number=1001,
                     metadata={"pix_fmt": "gbrpf16le"}) as writer:  # a half plate, written half
        for frame in frames:
            writer.write(frame)
    (tmp_path / "ref").mkdir()
    assert main(["restore", str(plate / "sh010_%04d.exr"), "-o", str(tmp_path / "ref" / "sh010_%04d.exr"),
                 "--model", str(model), "--quiet"]) == 0
    outdir = tmp_path / "out"
    assert main(["batch", str(plate), "-o", str(outdir), "--model", str(model), "--quiet", "--chunk-frames", "3",
                 "--workers", "2", "--threads-per-worker", str(torch.get_num_threads())]) == 0
    names = [f"sh010_{n:04d}.exr" for n in range(1001, 1010)]
    assert sorted(p.name for p in (outdir / "sh010").iterdir()) == names
    out = open_media(outdir / "sh010" / "sh010_%04d.exr")
    assert "f16" in out.metadata["pix_fmt"]  # written back half, as the plate is
    restored = np.stack(list(out))
    reference = np.stack(list(open_media(tmp_path / "ref" / "sh010_%04d.exr")))
    assert restored.dtype == np.float32 and np.array_equal(restored, reference)
    assert not np.array_equal(restored, np.stack(frames))  # the face was restored
    assert np.all(restored[:, :12, :40] == np.float32(6.5))  # the highlight is the plate's, unclipped
    chunks = job_manifest(outdir)["files"][str(plate)]["chunks"]
    assert len(chunks) >= 3 and not any(c["piece"].endswith(".mkv") for c in chunks)


def test_an_interlaced_file_is_restored_field_by_field_as_dvface_restore_does(ray_local, tmp_path, monkeypatch):
    """Tape: chunks are cut between frames, each restores its fields and weaves them; the joined
    output equals `dvface restore`'s, frame for frame, and stays interlaced; also for log tape
    restored in the model's sRGB (`--colorspace`)."""
    from test_pipeline import interlaced_clip, to_acescct

    monkeypatch.setenv("DVFACE_CACHE_DIR", str(tmp_path / "cache"))
    model = save_tiny(tmp_path / "model", 64, window=5, overlap=1)
    tape = interlaced_clip(tmp_path / "tape.mp4", 7)
    ref = tmp_path / "ref.mkv"
    assert main(["restore", str(tape), "-o", str(ref), "--model", str(model), "--quiet"]) == 0
    reference = np.stack(list(open_media(ref)))
    assert not np.array_equal(reference, np.stack(list(open_media(tape))))  # faces were restored
    outdir = tmp_path / "out"
    args = ["batch", str(tape), "-o", str(outdir), "--model", str(model), "--quiet", "--chunk-frames", "2",
            "--workers", "2", "--threads-per-worker", str(torch.get_num_threads())]
    assert main([*args, "--report", str(tmp_path / "qc")]) == 0
    assert json.loads((tmp_path / "qc" / "tape" / "report.json").read_text())["shot"]["unit"] == "field"
    out = open_media(outdir / "tape.mkv")
    assert out.metadata["interlaced"] == "top field first" and out.frame_count == 7
    assert np.array_equal(np.stack(list(out)), reference)
    (entry,) = job_manifest(outdir)["files"].values()
    chunks = entry["chunks"]
    assert entry["unit"] == "fields" and len(chunks) == 4  # 14 field pictures, cut between frames
    assert all(c["start"] % 2 == 0 and c["stop"] % 2 == 0 for c in chunks)
    log_tape = interlaced_clip(tmp_path / "log_tape.mp4", 7, to_acescct)
    log_ref = tmp_path / "log_ref.mkv"
    assert main(["restore", str(log_tape), "-o", str(log_ref), "--model", str(model), "--quiet",
                 "--colorspace", "ACEScct"]) == 0
    reference = np.stack(list(open_media(log_ref)))
    assert not np.array_equal(reference, np.stack(list(open_media(log_tape))))
    args[1:4] = [str(log_tape), "-o", str(tmp_path / "log_out")]
    assert main([*args, "--colorspace", "ACEScct"]) == 0
    assert np.array_equal(np.stack(list(open_media(tmp_path / "log_out" / "log_tape.mkv"))), reference)


def test_a_log_encoded_batch_is_restored_in_the_models_srgb_as_dvface_restore_does(ray_local, tmp_path, monkeypatch,
                                                                                    capsys):
    """`batch --colorspace`: faces are found and restored in display sRGB and only their change goes
    back into the log plate, chunk by chunk, exactly as `restore --colorspace` does in one piece."""
    ocio = pytest.importorskip("PyOpenColorIO")
    monkeypatch.setenv("DVFACE_CACHE_DIR", str(tmp_path / "cache"))
    model = save_tiny(tmp_path / "model", 64, window=5, overlap=1)
    to_log = ocio.Config.CreateFromFile("ocio://studio-config-latest").getProcessor(
        "sRGB Encoded Rec.709 (sRGB)", "ACEScct").getOptimizedCPUProcessor(ocio.OPTIMIZATION_LOSSLESS)
    src = tmp_path / "log.mkv"
    with MediaWriter(src, fps=Fraction(24), width=320, height=200, bit_depth=16) as writer:
        for frame in synthetic_frames(11, 320, 200, faces=2, face_px=110):
            log = np.array(frame.astype(np.float32) / 255, order="C")
            to_log.applyRGB(log)
            writer.write(np.rint(np.clip(log, 0, 1) * 65535).astype(np.uint16))
    refs = {}
    for name, extra in (("log", ["--colorspace", "ACEScct"]), ("plain", [])):
        out = tmp_path / f"ref-{name}.mkv"
        assert main(["restore", str(src), "-o", str(out), "--model", str(model), "--quiet", *extra]) == 0
        refs[name] = np.stack(list(open_media(out)))
    assert not np.array_equal(refs["log"], refs["plain"])  # the colour space changes what the model sees
    assert main(["batch", str(src), "-o", str(tmp_path / "out"), "--model", str(model), "--quiet",
                 "--colorspace", "ACEScct", "--chunk-frames", "4", "--workers", "2",
                 "--threads-per-worker", str(torch.get_num_threads())]) == 0
    assert np.array_equal(np.stack(list(open_media(tmp_path / "out" / "log.mkv"))), refs["log"])
    capsys.readouterr()
    for extra, message in ((["--colorspace", "NoSuchSpace"], "NoSuchSpace"),
                           (["--ocio", "ocio://studio-config-latest"], "--ocio names the config")):
        assert main(["batch", str(src), "-o", str(tmp_path / "refused"), "--model", str(model), *extra]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "refused").exists()


def test_batch_refuses_face_choice_for_aligned_clips_and_shared_stems(clips, model_dir, tmp_path, capsys):
    assert main(batch_args(clips, model_dir, tmp_path / "out", "--faces", "largest")) == 2
    assert "--faces and --min-face choose faces in whole frames" in capsys.readouterr().err
    assert main(batch_args(clips, model_dir, tmp_path / "out", "--stabilise", "-1")) == 2
    assert "--stabilise must be a whole number of frames >= 0" in capsys.readouterr().err
    assert main(batch_args(clips, model_dir, tmp_path / "out", "--colorspace", "ACEScg")) == 2
    assert "--colorspace needs whole frames" in capsys.readouterr().err
    twin = tmp_path / "alpha.mkv"
    twin.write_bytes(clips[0].read_bytes())
    assert main(batch_args([clips[0], twin], model_dir, tmp_path / "out")) == 2
    assert "separate jobs" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_folder_of_captures_gives_its_video_files_whatever_their_container(tmp_path):
    """Archives keep tape and disc captures in .mxf, .avi, .dv, .mpg, .vob or .ts: a folder given to
    `dvface batch` restores them all, in name order, and nothing else in it."""
    from dvface_plugin.commands.batch import expand_inputs

    names = ["a.MXF", "b.avi", "c.dv", "d.mpg", "e.vob", "f.m2ts", "g.mov", "notes.txt", "still.png", "tracks.json"]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    assert [Path(p).name for p in expand_inputs([str(tmp_path)])] == names[:7]


def test_batch_refuses_a_variable_frame_rate_input_before_any_work(clips, model_dir, tmp_path, capsys):
    from test_engine_cli import variable_rate_clip

    vfr = variable_rate_clip(tmp_path / "vfr.mp4")
    assert main(batch_args([clips[0], vfr], model_dir, tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert "vfr.mp4 has variable frame timing" in err and "--allow-retime" in err
    assert not list((tmp_path / "out").glob("*.mkv"))  # not even the constant-rate clip was restored


def test_batch_refuses_an_output_that_cannot_hold_an_input_before_any_work(clips, model_dir, tmp_path, capsys):
    """What the joined output could not hold (here a SubRip track in .mp4) is said before any chunk is
    rendered, not hours later when the pieces are joined."""
    from test_media import _subtitled

    subbed = _subtitled(tmp_path / "subbed.mkv", [np.full((CROP, CROP, 3), 90, np.uint8)] * 6, {1: "hello"})
    assert main(batch_args([clips[0], subbed], model_dir, tmp_path / "out", "--ext", "mp4")) == 2
    err = capsys.readouterr().err
    assert "subbed.mkv has srt subtitles, which .mp4 cannot hold" in err and "--drop-subtitles" in err
    assert not (tmp_path / "out").exists()
    assert main(batch_args([clips[0], subbed], model_dir, tmp_path / "out", "--ext", "mp4", "--drop-subtitles",
                           "--dry-run")) == 0


def test_batch_refuses_an_interlaced_input_before_any_work(clips, model_dir, tmp_path, capsys):
    from test_engine_cli import interlaced_clip

    tape = interlaced_clip(tmp_path / "tape.mp4")
    assert main(batch_args([clips[0], tape], model_dir, tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert "tape.mp4 is interlaced" in err and "--allow-interlaced" in err
    assert not list((tmp_path / "out").glob("*.mkv"))
