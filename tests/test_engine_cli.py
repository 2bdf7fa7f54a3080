"""`dvface restore --aligned` and `dvface bench cache` end to end on synthetic clips."""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest
from tiny_models import save_tiny

from dvface_plugin.cli import main
from dvface_plugin.commands.restore import StreamedCrops
from dvface_plugin.engine import restore_track
from dvface_plugin.errors import InputError
from dvface_plugin.faces import apply_strength
from dvface_plugin.media import MediaWriter, open_media
from dvface_plugin.model import folders
from dvface_plugin.runtime.base import GRAIN_RADIUS
from dvface_plugin.runtime.pixels import to_model
from dvface_plugin.runtime.stabilise import prefilter
from dvface_plugin.runtime.torch_restorer import Restorer

CROP = 32


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("model"), CROP)


def write_clip(path, frames, bits, fps=Fraction(24000, 1001)):
    with MediaWriter(path, fps=fps, width=frames.shape[2], height=frames.shape[1], bit_depth=bits) as w:
        for frame in frames:
            w.write(frame)


@pytest.mark.parametrize("dtype,bits", [(np.uint16, 16), (np.uint8, 8)])
def test_restore_aligned_keeps_count_rate_and_depth_and_matches_the_engine(tmp_path, model_dir, dtype, bits):
    rng = np.random.default_rng(bits)
    clip = rng.integers(0, np.iinfo(dtype).max, (31, CROP, CROP, 3), dtype=dtype)
    src, out = tmp_path / "in.mkv", tmp_path / "out.mkv"
    write_clip(src, clip, bits)
    assert main(["restore", "--aligned", str(src), "-o", str(out), "--model", str(model_dir), "--quiet",
                 "--strength", "0.7"]) == 0
    restored = open_media(out)
    frames = np.stack(list(restored))
    assert (restored.frame_count, restored.fps, frames.dtype) == (31, Fraction(24000, 1001), np.dtype(dtype))
    decoded = np.stack(list(open_media(src)))
    full = restore_track(Restorer.load(model_dir, device="cpu"), decoded)
    assert np.array_equal(frames, apply_strength(decoded, full, 0.7))  # 70 % of the way from input to restored
    assert not np.array_equal(frames, decoded) and not np.array_equal(frames, full)


def test_restore_aligned_at_strength_0_writes_the_input_back_bit_identical(tmp_path, model_dir):
    clip = np.random.default_rng(3).integers(0, 255, (9, CROP, CROP, 3), dtype=np.uint8)
    src, out = tmp_path / "in.mkv", tmp_path / "out.mkv"
    write_clip(src, clip, 8)
    assert main(["restore", "--aligned", str(src), "-o", str(out), "--model", str(model_dir), "--quiet",
                 "--strength", "0", "--frames", "2-6"]) == 0
    assert np.array_equal(np.stack(list(open_media(out))), np.stack(list(open_media(src)))[2:7])


def test_strength_outside_0_1_is_refused_before_any_work(tmp_path, model_dir, capsys):
    src, out = tmp_path / "in.mkv", tmp_path / "out.mkv"
    write_clip(src, np.zeros((3, CROP, CROP, 3), np.uint8), 8)
    assert main(["restore", "--aligned", str(src), "-o", str(out), "--model", str(model_dir),
                 "--strength", "1.5"]) == 2
    err = capsys.readouterr().err
    assert "--strength must be in [0, 1]" in err and "Traceback" not in err and not out.exists()


def test_missing_bundled_model_names_the_folder_and_the_fix(tmp_path, capsys, monkeypatch):
    src, out = tmp_path / "in.mkv", tmp_path / "out.mkv"
    write_clip(src, np.zeros((3, CROP, CROP, 3), np.uint8), 8)
    assert main(["restore", "--aligned", str(src), "-o", str(out), "--model", "no-such-model"]) == 3
    err = capsys.readouterr().err
    assert "models/no-such-model" in err and "--model FOLDER" in err
    monkeypatch.setattr(folders, "MODELS_DIR", tmp_path / "models")  # an install without models/
    assert main(["restore", "--aligned", str(src), "-o", str(out)]) == 3
    err = capsys.readouterr().err
    assert "models/dvface-tiny" in err and "full checkout" in err
    assert not out.exists()


def test_wrong_crop_size_is_refused_and_leaves_no_output(tmp_path, model_dir, capsys):
    src, out = tmp_path / "in.mkv", tmp_path / "out.mkv"
    write_clip(src, np.zeros((3, 48, 48, 3), np.uint8), 8)
    assert main(["restore", "--aligned", str(src), "-o", str(out), "--model", str(model_dir)]) == 2
    err = capsys.readouterr().err
    assert "48x48" in err and "32x32" in err
    assert list(tmp_path.iterdir()) == [src]


def test_grain_puts_the_inputs_grain_back_and_a_bad_amount_leaves_no_output(tmp_path, model_dir, capsys):
    rng = np.random.default_rng(5)
    clip = np.clip(128 + rng.normal(0, 12, (9, CROP, CROP, 3)), 0, 255).astype(np.uint8)  # a grey card with grain
    src, out = tmp_path / "in.mkv", tmp_path / "out.mkv"
    write_clip(src, clip, 8)
    assert main(["restore", "--aligned", str(src), "-o", str(out), "--model", str(model_dir), "--quiet",
                 "--grain", "1"]) == 0
    frames, decoded = np.stack(list(open_media(out))), np.stack(list(open_media(src)))
    restorer = Restorer.load(model_dir, device="cpu")
    plain = restore_track(restorer, decoded)
    assert np.array_equal(frames, restore_track(restorer.with_grain(1.0), decoded))
    added = frames.astype(np.float32) - plain  # what --grain changed, in 8-bit levels
    residual = (to_model(decoded) - prefilter(to_model(decoded), GRAIN_RADIUS)) * 127.5  # the input's grain
    assert np.std(added) > 5 and np.corrcoef(added.ravel(), residual.ravel())[0, 1] > 0.9
    out.unlink()
    assert main(["restore", "--aligned", str(src), "-o", str(out), "--model", str(model_dir), "--grain", "1.5"]) == 2
    assert "--grain must be in [0, 1]" in capsys.readouterr().err and not out.exists()


def test_stabilise_overrides_the_model_and_a_bad_radius_leaves_no_output(tmp_path, model_dir, capsys):
    rng = np.random.default_rng(3)
    clip = rng.integers(0, 256, (9, CROP, CROP, 3), dtype=np.uint8)
    src, out = tmp_path / "in.mkv", tmp_path / "out.mkv"
    write_clip(src, clip, 8)
    assert main(["restore", "--aligned", str(src), "-o", str(out), "--model", str(model_dir), "--quiet",
                 "--stabilise", "2"]) == 0
    frames = np.stack(list(open_media(out)))
    restorer = Restorer.load(model_dir, device="cpu")
    plain = restore_track(restorer, np.stack(list(open_media(src))))
    steady = restorer.with_stabilise(2)
    assert steady.model is restorer.model and restorer.config.stabilise == 0  # a copy, the model shared
    assert steady.identity != restorer.identity and restorer.with_stabilise(0) is restorer
    assert np.array_equal(frames, restore_track(steady, np.stack(list(open_media(src)))))
    assert not np.array_equal(frames, plain)
    out.unlink()
    assert main(["restore", "--aligned", str(src), "-o", str(out), "--model", str(model_dir),
                 "--stabilise", "-1"]) == 2
    assert "stabilise must be a whole number of frames >= 0" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [src]


def test_streamed_crops_detect_frame_count_mismatch_and_keep_a_bounded_buffer():
    frames = (np.full((2, 2, 3), i, np.uint8) for i in range(10))
    crops = StreamedCrops(frames, 12, keep=4, name="clip.mkv")
    assert crops(5)[0, 0, 0] == 5 and crops(2)[0, 0, 0] == 2
    with pytest.raises(InputError, match="asked again"):
        crops(1)
    with pytest.raises(InputError, match="clip.mkv ended after 10 frames but reports 12"):
        crops(11)
    longer = StreamedCrops((np.zeros((2, 2, 3), np.uint8) for _ in range(5)), 4, keep=4, name="c")
    longer(3)
    with pytest.raises(InputError, match="more frames than the 4"):
        longer.check_exhausted()


def run_bench(capsys, *args):
    assert main(["bench", "cache", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_bench_cache_sequential_computes_each_window_once(capsys):
    # Two windows is the least that works: a frame in an overlap needs both of its windows.
    result = run_bench(capsys, "--frames", "60", "--pattern", "sequential", "--threads", "2", "--budget-windows", "2")
    assert result["bit_identical"] is True
    assert result["windows_computed"] == result["grid_windows"] == 5
    assert result["windows_per_frame"] == pytest.approx(5 / 60)


def test_bench_cache_split_costs_at_most_one_window_per_split_point(capsys):
    result = run_bench(capsys, "--frames", "100", "--pattern", "split:4", "--threads", "2")
    assert result["bit_identical"] is True
    assert 0 <= result["extra_windows"] <= 3
    with pytest.raises(SystemExit):
        main(["bench"])


def test_fps_times_an_image_sequence_and_a_video_refuses_it(tmp_path, model_dir, capsys):
    rng = np.random.default_rng(0)
    clip = rng.integers(0, 255, (5, CROP, CROP, 3), dtype=np.uint8)
    frames = tmp_path / "crop_%03d.png"
    write_clip(frames, clip, 8)
    out = tmp_path / "out.mkv"
    assert main(["restore", "--aligned", str(frames), "-o", str(out), "--model", str(model_dir), "--quiet",
                 "--fps", "24000/1001"]) == 0
    assert (open_media(out).fps, open_media(out).frame_count) == (Fraction(24000, 1001), 5)
    video = tmp_path / "clip.mkv"
    write_clip(video, clip, 8, fps=Fraction(25))
    again = tmp_path / "again.mkv"
    assert main(["restore", "--aligned", str(video), "-o", str(again), "--model", str(model_dir),
                 "--fps", "30"]) == 2  # a video keeps its own rate: never retimed
    assert "applies only to numbered image sequences" in capsys.readouterr().err
    assert not again.exists()


def test_io_failures_are_one_line_exit_4_and_leave_nothing(tmp_path, model_dir, capsys, monkeypatch):
    import errno

    clip = np.random.default_rng(1).integers(0, 255, (9, CROP, CROP, 3), dtype=np.uint8)
    src = tmp_path / "in.mkv"
    write_clip(src, clip, 8)
    unwritable = "/proc/dvface-out.mkv"  # a folder that exists but takes no new files
    assert main(["restore", "--aligned", str(src), "-o", unwritable, "--model", str(model_dir), "--quiet"]) == 4
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"dvface restore: error: {unwritable}: ")

    writes = []

    def disk_full(self, frame):
        writes.append(frame)
        if len(writes) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.spec.path))

    monkeypatch.setattr(MediaWriter, "write", disk_full)
    out = tmp_path / "out.mkv"
    assert main(["restore", "--aligned", str(src), "-o", str(out), "--model", str(model_dir), "--quiet"]) == 4
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "out.mkv: No space left on device" in err and "Traceback" not in err
    assert [p.name for p in tmp_path.iterdir()] == ["in.mkv"]  # no output, no partial


def variable_rate_clip(path, n=12):
    """An mp4 whose frames last 40 ms, then 100 ms: variable frame timing."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width = stream.height = CROP
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, 1000)
        t = 0
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(np.full((CROP, CROP, 3), 10 * i, np.uint8), format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, 1000)
            t += 40 if i < n // 2 else 100
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def test_variable_frame_rate_is_refused_not_retimed_unless_allowed(tmp_path, model_dir, capsys):
    src = variable_rate_clip(tmp_path / "vfr.mp4")
    assert open_media(src).metadata.get("variable_frame_rate")
    out = tmp_path / "out.mkv"
    argv = ["restore", "--aligned", str(src), "-o", str(out), "--model", str(model_dir), "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "variable frame timing" in err and "--allow-retime" in err and err.count("\n") == 1
    assert not out.exists()
    frames = tmp_path / "f_%03d.png"  # a sequence has no timing to lose
    assert main(["restore", "--aligned", str(src), "-o", str(frames), "--model", str(model_dir), "--quiet"]) == 0
    assert main([*argv, "--allow-retime"]) == 0 and open_media(out).frame_count == 12


def interlaced_clip(path, n=9):
    """An H.264 clip coded as interlaced, top field first (as from broadcast tape)."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"flags": "+ildct+ilme", "x264-params": "tff=1"})
        stream.width = stream.height = CROP
        stream.pix_fmt = "yuv420p"
        for i in range(n):
            woven = np.full((CROP, CROP, 3), 10 * i, np.uint8)
            woven[1::2] += 5  # the second field, shot later
            container.mux(stream.encode(av.VideoFrame.from_ndarray(woven, format="rgb24")))
        container.mux(stream.encode())
    return path


def test_interlaced_video_is_refused_unless_allowed_and_then_keeps_its_field_order(tmp_path, model_dir, capsys):
    src = interlaced_clip(tmp_path / "tape.mp4")
    assert open_media(src).metadata["interlaced"] == "top field first"
    progressive = tmp_path / "prog.mkv"
    write_clip(progressive, np.zeros((3, CROP, CROP, 3), np.uint8), 8)
    assert "interlaced" not in open_media(progressive).metadata
    out = tmp_path / "out.mkv"
    # aligned crops have no fields to restore apart (whole frames do: test_pipeline), refused before any work
    assert main(["restore", "--aligned", str(src), "-o", str(out), "--model", str(model_dir), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "tape.mp4 is interlaced (top field first)" in err and "deinterlace" in err
    assert "--allow-interlaced" in err and err.count("\n") == 1
    assert not out.exists()
    argv = ["restore", "--aligned", str(src), "-o", str(out), "--model", str(model_dir), "--quiet", "--allow-interlaced"]
    assert main(argv) == 0
    restored = open_media(out)
    assert restored.frame_count == 9 and restored.metadata["interlaced"] == "top field first"  # the tag is kept


def test_frames_range_equals_the_same_frames_of_a_whole_run_on_sequence_numbers(tmp_path, model_dir, capsys):
    """--frames names an image sequence's frames by its file numbers; the preview is the final render's."""
    clip = np.random.default_rng(5).integers(0, 256, (23, CROP, CROP, 3), dtype=np.uint8)
    folder = tmp_path / "seq"
    folder.mkdir()
    with MediaWriter(folder / "face_%04d.png", width=CROP, height=CROP, start_number=1001) as w:
        for frame in clip:
            w.write(frame)
    src = str(folder / "face_%04d.png")
    whole, part = tmp_path / "whole.mkv", tmp_path / "part" / "p_%04d.png"
    part.parent.mkdir()
    assert main(["restore", "--aligned", src, "-o", str(whole), "--model", str(model_dir), "--quiet"]) == 0
    assert main(["restore", "--aligned", src, "-o", str(part), "--model", str(model_dir), "--quiet",
                 "--frames", "1009-1013"]) == 0
    assert sorted(p.name for p in part.parent.iterdir()) == [f"p_{n}.png" for n in range(1009, 1014)]
    got = np.stack(list(open_media(part.parent)))
    assert np.array_equal(got, np.stack(list(open_media(whole)))[8:13])
    for bad, why in [("1013-1009", "comes after"), ("990-1000", "frames are 1001-1023"), ("9", "not a range")]:
        out = tmp_path / f"bad_{bad}.mkv"
        assert main(["restore", "--aligned", src, "-o", str(out), "--model", str(model_dir), "--quiet",
                     "--frames", bad]) == 2
        err = capsys.readouterr().err
        assert why in err and err.count("\n") == 1 and not out.exists()
