"""`dvface restore IN -o OUT` (whole frames), `dvface track` and `dvface bench pipeline`, end to end.

Synthetic shots: astronaut heads drifting over a textured background (wholeframe.synthetic), written
losslessly (FFV1 .mkv) so "untouched" can be checked bit for bit. A tiny random model with 64 px
crops keeps every job to a few seconds on a CPU.
"""

from __future__ import annotations

import io
import json
import shutil
from contextlib import redirect_stdout
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from cineon_scans import cineon_scan
from tiny_models import save_tiny

from dvface_plugin.cli import main
from dvface_plugin.faces import Tracks
from dvface_plugin.media import MediaWriter, open_media
from dvface_plugin.model import folders
from dvface_plugin.runtime.torch_restorer import Restorer
from dvface_plugin.wholeframe.synthetic import face_positions, synthetic_frames

NTSC = Fraction(24000, 1001)
W, H, N = 640, 360, 12
FACE_PX = 120
CROP = 64
# Two windows per track (5..8 frames overlap) so window cross-fades and look-ahead are exercised.
ENGINE = ["--window", "9", "--overlap", "2"]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """One tracks cache for the module: a clip analysed once is reused (after its digest check)."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def _private_cache(cache_dir, monkeypatch):
    monkeypatch.setenv("DVFACE_CACHE_DIR", str(cache_dir))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny(tmp_path_factory.mktemp("model"), CROP)


def write_video(path: Path, frames, fps=NTSC) -> Path:
    frames = list(frames)
    with MediaWriter(path, fps=fps, width=frames[0].shape[1], height=frames[0].shape[0]) as w:
        for frame in frames:
            w.write(frame)
    return path


def add_audio(path: Path, seconds: float) -> None:
    """Remux `path` with an AAC sine track added (video packets copied)."""
    tmp = path.with_name("audio_" + path.name)
    with av.open(str(path)) as src, av.open(str(tmp), "w") as out:
        v_in = src.streams.video[0]
        v_out = out.add_stream_from_template(v_in)
        a_out = out.add_stream("aac", rate=48000)
        a_out.layout, a_out.format = "stereo", "fltp"
        for packet in src.demux(v_in):
            if packet.dts is not None:
                packet.stream = v_out
                out.mux(packet)
        t = np.arange(int(48000 * seconds)) / 48000
        signal = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for start in range(0, len(signal), 1024):
            chunk = signal[start:start + 1024]
            frame = av.AudioFrame.from_ndarray(np.stack([chunk, chunk]), format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = 48000, start
            for packet in a_out.encode(frame):
                out.mux(packet)
        for packet in a_out.encode(None):
            out.mux(packet)
    tmp.replace(path)


def audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(container.streams.audio[0]) if p.size]


def decoded(path: Path) -> np.ndarray:
    return np.stack(list(open_media(path)))


def restore(src: Path, out: Path, model_dir: Path, *extra: str, capsys=None) -> tuple[int, dict | None]:
    code = main(["restore", str(src), "-o", str(out), "--model", str(model_dir), "--quiet", "--json",
                 *ENGINE, *extra])
    summary = None
    if capsys is not None:
        text = capsys.readouterr().out.strip()
        summary = json.loads(text) if text else None
    return code, summary


def face_region(n: int, k: int) -> tuple[slice, slice]:
    """Rows and columns of the pasted head k in frame n (the synthetic clip's geometry)."""
    x, y = face_positions(n, W, H, 2, FACE_PX)[k]
    return slice(y, y + FACE_PX), slice(x, x + FACE_PX * 240 // 280)


@pytest.fixture(scope="module")
def two_faces(tmp_path_factory):
    folder = tmp_path_factory.mktemp("two_faces")
    path = write_video(folder / "shot.mkv", synthetic_frames(N, W, H, faces=2, face_px=FACE_PX))
    add_audio(path, N / float(NTSC))
    return path


@pytest.fixture(scope="module")
def full_run(two_faces, model_dir, cache_dir, tmp_path_factory):
    """One whole-frame restore of the two-face shot, with its matte and JSON summary."""
    folder = tmp_path_factory.mktemp("full_run")
    out, mask = folder / "out.mkv", folder / "matte.mkv"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DVFACE_CACHE_DIR", str(cache_dir))
        buf = io.StringIO()
        with redirect_stdout(buf):
            code = main(["restore", str(two_faces), "-o", str(out), "--model", str(model_dir), "--quiet",
                         "--json", "--mask-out", str(mask), *ENGINE])
    return code, json.loads(buf.getvalue()), out, mask


def test_output_keeps_size_count_exact_rate_and_audio(full_run, two_faces):
    code, summary, out, _ = full_run
    assert code == 0
    src, res = open_media(two_faces), open_media(out)
    assert (res.width, res.height, res.frame_count) == (W, H, N)
    assert res.fps == NTSC and summary["fps"] == "24000/1001"
    assert res.has_audio
    assert audio_packets(out) == audio_packets(two_faces)
    assert res.bit_depth == src.bit_depth


def test_both_faces_restored_with_stable_track_ids(full_run, two_faces):
    _, summary, out, _ = full_run
    assert [t["id"] for t in summary["tracks"]] == [1, 2]
    assert all(t["restored"] and (t["first_frame"], t["last_frame"]) == (0, N - 1) for t in summary["tracks"])
    assert summary["faces_per_frame"] == [2] * N
    before, after = decoded(two_faces), decoded(out)
    for n in range(N):
        for k in range(2):
            rows, cols = face_region(n, k)
            assert not np.array_equal(before[n, rows, cols], after[n, rows, cols]), (n, k)
    # A track keeps following the same head: its boxes stay in that head's half of the frame.
    tracks = Tracks.load(summary["tracks_cache"])
    sides = {t.id: {bool((f.box[0] + f.box[2]) / 2 < W / 2) for f in t.faces} for t in tracks}
    assert sorted(map(len, sides.values())) == [1, 1] and sides[1] != sides[2]


def test_pixels_outside_the_matte_are_bit_identical(full_run, two_faces):
    _, summary, out, mask = full_run
    before, after, matte = decoded(two_faces), decoded(out), decoded(mask)
    assert matte.dtype == np.uint16 and matte.shape == before.shape
    assert np.array_equal(matte[..., 0], matte[..., 1])
    outside = matte[..., 0] == 0
    assert outside.mean() > 0.5 and (~outside).any()
    assert np.array_equal(before[outside], after[outside])
    assert (before[~outside] != after[~outside]).any()
    assert summary["max_frames_held"] <= 9  # the look-ahead of one window, not the clip


def test_one_track_restores_exactly_like_in_the_full_job(full_run, two_faces, model_dir, tmp_path, capsys):
    """Each face comes from its own session: choosing one face changes nothing about it."""
    _, _, full_out, mask = full_run
    out = tmp_path / "one.mkv"
    code, summary = restore(two_faces, out, model_dir, "--faces", "2", capsys=capsys)
    assert code == 0 and [t["restored"] for t in summary["tracks"]] == [False, True]
    before, one, full = decoded(two_faces), decoded(out), decoded(full_out)
    for n in range(N):
        rows, cols = face_region(n, 1)
        assert np.array_equal(one[n, rows, cols], full[n, rows, cols])
        rows, cols = face_region(n, 0)
        assert np.array_equal(one[n, rows, cols], before[n, rows, cols])


def test_frames_range_is_the_same_frames_of_the_full_job_with_its_audio_and_matte(full_run, two_faces, model_dir,
                                                                                tmp_path, capsys):
    """A --frames preview shows exactly what the whole render will, with the audio of those frames."""
    _, _, full_out, full_mask = full_run
    out, mask = tmp_path / "part.mkv", tmp_path / "part_matte.mkv"
    code, summary = restore(two_faces, out, model_dir, "--frames", "5-8", "--mask-out", str(mask), capsys=capsys)
    assert code == 0 and summary["frames"] == 4 and summary["faces_per_frame"] == [2] * 4
    assert np.array_equal(decoded(out), decoded(full_out)[5:9])
    assert np.array_equal(decoded(mask), decoded(full_mask)[5:9])
    with av.open(str(out)) as container:
        stamps = [p.pts * p.time_base for p in container.demux(container.streams.audio[0]) if p.size]
    assert min(stamps) >= 0 and 4 / NTSC - 0.05 < max(stamps) < 4 / NTSC + 0.03  # cut to the 4 frames' time


def test_strength_mixes_the_faces_and_scales_the_matte_and_0_writes_the_input_back(full_run, two_faces, model_dir,
                                                                                   tmp_path, capsys):
    _, _, full_out, full_mask = full_run
    (half, half_mask), (off, off_mask) = [(tmp_path / f"{s}.mkv", tmp_path / f"{s}_matte.mkv") for s in ("half", "off")]
    for out, mask, strength in ((half, half_mask, "0.5"), (off, off_mask, "0")):
        code, _ = restore(two_faces, out, model_dir, "--frames", "3-6", "--strength", strength, "--mask-out", str(mask),
                          capsys=capsys)
        assert code == 0
    before, full = decoded(two_faces)[3:7].astype(np.int32), decoded(full_out)[3:7].astype(np.int32)
    assert np.array_equal(decoded(off), before) and not decoded(off_mask).any()
    matte = decoded(full_mask)[3:7].astype(np.int64)
    assert np.abs(decoded(half_mask).astype(np.int64) - matte // 2).max() <= 1
    core = matte[..., 0] == 65535
    change = np.abs(decoded(half).astype(np.int32) - before)[core].mean() / np.abs(full - before)[core].mean()
    assert 0.4 < change < 0.6


def test_frames_range_carries_the_timecode_forward(model_dir, tmp_path, capsys):
    src, out = tmp_path / "tc.mov", tmp_path / "tc_out.mov"
    with MediaWriter(src, fps=25, width=W, height=H, codec="prores",
                     metadata={"timecode": "01:00:00:00"}) as w:
        for frame in synthetic_frames(N, W, H, faces=0):
            w.write(frame)
    code, _ = restore(src, out, model_dir, "--frames", "10-", capsys=capsys)
    assert code == 0
    with open_media(out) as restored:
        assert restored.frame_count == 2 and restored.metadata["timecode"] == "01:00:00:10"


def test_progress_counts_face_crops_through_the_model_and_names_the_backend(two_faces, model_dir, tmp_path, capsys):
    """The restore bar counts model work over both tracks and ends full; the backend is named."""
    import re

    out = tmp_path / "progress.mkv"
    assert main(["restore", str(two_faces), "-o", str(out), "--model", str(model_dir), *ENGINE]) == 0
    err = capsys.readouterr().err
    assert "dvface restore: 2 of 2 face tracks, on torch on cpu (fp32)" in err
    counts = [(int(a), int(b)) for a, b in re.findall(r"restoring:[^|]*\|[^|]*\| *(\d+)/(\d+) \[", err)]
    done, total = counts[-1]
    assert done == total >= 2 * N and {b for _, b in counts} == {total}  # one steady total from the start
    assert "crop/s" in err or "s/crop" in err
    written = [(int(a), int(b)) for a, b in re.findall(r"writing:[^|]*\|[^|]*\| *(\d+)/(\d+) \[", err)]
    assert written[-1] == (N, N) and {b for _, b in written} == {N}  # frames out, on a bar of their own


def yuv_clip(path: Path, frames, pix_fmt: str = "yuv420p") -> Path:
    """An H.264 clip encoded with plain PyAV, as cameras and web video come: YUV 4:2:0, lossy."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = W, H, pix_fmt
        for i, frame in enumerate(frames):
            video = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format=pix_fmt)
            video.pts = i
            for packet in stream.encode(video):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def planes(path: Path) -> list[list[np.ndarray]]:
    """Every frame's samples, plane by plane, as the decoder gives them (no RGB conversion)."""
    with av.open(str(path)) as container:
        return [[np.frombuffer(p, np.uint8).reshape(p.height, -1)[:, :p.width].copy() for p in frame.planes]
                for frame in container.decode(video=0)]


def test_a_yuv_source_keeps_its_format_and_every_sample_outside_the_mattes(model_dir, tmp_path, capsys):
    """The plate must come back as the source decodes: same pixel format, same samples around the faces."""
    import cv2

    src = yuv_clip(tmp_path / "camera.mp4", synthetic_frames(N, W, H, faces=2, face_px=FACE_PX))
    out, mask = tmp_path / "out.mkv", tmp_path / "matte.mkv"
    code, summary = restore(src, out, model_dir, "--mask-out", str(mask), capsys=capsys)
    assert code == 0 and sum(summary["faces_per_frame"]) > 0
    with av.open(str(src)) as a, av.open(str(out)) as b:
        source, output = a.streams.video[0].codec_context, b.streams.video[0].codec_context
        assert output.pix_fmt == "yuv420p"
        assert output.color_range == source.color_range == 0  # untagged stays untagged, nothing invented
    before, after, matte = planes(src), planes(out), decoded(mask)[..., 0] > 0
    assert len(before) == len(after) == N
    for n in range(N):
        luma_outside = ~matte[n]
        chroma_outside = ~matte[n].reshape(H // 2, 2, W // 2, 2).any(axis=(1, 3))
        for k, outside in enumerate((luma_outside, chroma_outside, chroma_outside)):
            assert np.array_equal(before[n][k][outside], after[n][k][outside]), (n, k)
        assert not np.array_equal(before[n][0][~luma_outside], after[n][0][~luma_outside])
    # and decoded to RGB, the plate is the source's too: the output says its chroma sits where
    # H.264's does ("left"), so a converter interpolates the same samples the same way
    with open_media(src) as a, open_media(out) as b:
        for n, (x, y) in enumerate(zip(a, b, strict=True)):
            far = ~cv2.dilate(matte[n].astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
            assert np.array_equal(x[far], y[far]), n
    rgb = tmp_path / "rgb.mkv"  # RGB stays available
    assert restore(src, rgb, model_dir, "--codec", "ffv1rgb", capsys=capsys)[0] == 0
    with av.open(str(rgb)) as container:
        assert container.streams.video[0].codec_context.pix_fmt == "bgr0"
    tape = yuv_clip(tmp_path / "tape.mkv", synthetic_frames(N, W, H, faces=2, face_px=FACE_PX), "yuv422p")
    review = tmp_path / "review.mp4"  # a lossy copy keeps a 4:2:2 source's chroma too (it was 4:2:0)
    assert restore(tape, review, model_dir, capsys=capsys)[0] == 0
    with av.open(str(review)) as container:
        assert container.streams.video[0].codec_context.pix_fmt == "yuv422p"


def test_report_shows_every_track_with_its_crops_plots_and_toggle(full_run, two_faces, model_dir, tmp_path, capsys):
    """`dvface report`: a static page and its JSON, from the shot and its restoration."""
    import re

    _, _, out, _ = full_run
    folder = tmp_path / "qc"
    assert main(["report", str(two_faces), str(out), "-o", str(folder), "--crop-size", str(CROP)]) == 0
    report = json.loads((folder / "report.json").read_text())
    assert report["shot"]["frames"] == N and report["frames_without_restored_face"] == []
    assert [(t["id"], t["first_frame"], t["last_frame"], t["restored"]) for t in report["tracks"]] == \
        [(1, 0, N - 1, True), (2, 0, N - 1, True)]
    for track in report["tracks"]:
        assert len(track["detail"]) == N and len(track["flicker_restored"]) == len(track["flicker_input"]) == N - 1
        assert [p["frame"] for p in track["thumbs"]] == [0, 3, 6, 8, 11] and track["full"]["frame"] == (N - 1) // 2
    page = (folder / "index.html").read_text()
    assert "<script" not in page and page.count("<svg") >= 4 and "Track 2: frames 0-11, restored" in page
    images = re.findall(r'src="([^"]+)"', page)
    assert len(images) == 2 * (2 * 5 + 3) and all((folder / name).is_file() for name in images)
    with open_media(folder / report["tracks"][0]["full"]["matte"]) as matte:  # the faces, and nothing else
        assert 0.01 < (matte.read(0)[..., 0] > 0).mean() < 0.3
    # a shot where only face 2 was restored says so, frame by frame
    one = tmp_path / "one.mkv"
    assert restore(two_faces, one, model_dir, "--faces", "2", capsys=capsys)[0] == 0
    assert main(["report", str(two_faces), str(one), "-o", str(folder), "--crop-size", str(CROP)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["report", str(two_faces), str(one), "-o", str(folder), "--crop-size", str(CROP), "-y"]) == 0
    report = json.loads((folder / "report.json").read_text())
    assert [t["restored"] for t in report["tracks"]] == [False, True]
    assert "Track 1: frames 0-11, <span class=\"warn\">not restored</span>" in (folder / "index.html").read_text()
    # and straight from the restore
    code, summary = restore(two_faces, tmp_path / "with_qc.mkv", model_dir, "--report", str(tmp_path / "qc2"),
                            capsys=capsys)
    shot = json.loads((tmp_path / "qc2" / "report.json").read_text())["shot"]
    assert code == 0 and shot["frames"] == N and shot["backend"] == "torch" and shot["faces"] == "all"
    assert shot["restore_seconds"] == summary["seconds"]["wall"]


def test_report_of_a_range_names_skipped_tracks_and_marks_interpolated_frames(full_run, two_faces, model_dir,
                                                                               tmp_path, capsys):
    """`restore --frames --faces --report`: the page covers the range, says why a face was left out,
    and marks the frames where a track was interpolated rather than detected."""
    code, _ = restore(two_faces, tmp_path / "part.mkv", model_dir, "--frames", "3-8", "--faces", "2",
                      "--report", str(tmp_path / "qc"), capsys=capsys)
    report = json.loads((tmp_path / "qc" / "report.json").read_text())
    assert code == 0 and report["shot"]["frame_range"] == "3-8" and report["shot"]["frames"] == 6
    assert [(t["id"], t["first_frame"], t["last_frame"], t["restored"], t["left_out"]) for t in report["tracks"]] \
        == [(1, 3, 8, False, "not chosen by faces=2"), (2, 3, 8, True, "")]
    assert all(len(t["detail"]) == 6 and t["thumbs"][0]["frame"] == 3 for t in report["tracks"])
    assert "not restored</span>: not chosen by faces=2" in (tmp_path / "qc" / "index.html").read_text()
    # a tracks file where detection failed on frames 4-5 of face 1: the plots mark them
    tracks_file = tmp_path / "tracks.json"
    assert main(["track", str(two_faces), "-o", str(tracks_file), "--quiet"]) == 0
    data = json.loads(tracks_file.read_text())
    for face in data["tracks"][0]["faces"]:
        if face["frame"] in (4, 5):
            face["score"] = None
    tracks_file.write_text(json.dumps(data))
    _, _, out, _ = full_run
    assert main(["report", str(two_faces), str(out), "-o", str(tmp_path / "qc2"), "--crop-size", str(CROP),
                 "--tracks", str(tracks_file), "--min-face", "1"]) == 0
    report = json.loads((tmp_path / "qc2" / "report.json").read_text())
    assert [t["lost"] for t in report["tracks"]] == [[4, 5], []]
    page = (tmp_path / "qc2" / "index.html").read_text()
    plots = 3 if report["shot"]["identity_measured"] else 2  # detail, flicker (and identity): both frames in each
    assert page.count('class="lost"') == 2 * plots and "2 frames where the face was not detected" in page and "(4-5)" in page
    # the restored clip must match the range it is said to hold
    assert main(["report", str(two_faces), str(out), "-o", str(tmp_path / "qc3"), "--frames", "3-8"]) == 2
    assert "--frames it was restored with" in capsys.readouterr().err


def test_an_acescg_exr_plate_is_restored_in_the_models_srgb_and_keeps_every_other_value(model_dir, tmp_path,
                                                                                        capsys):
    """`restore --colorspace ACEScg`: faces are found and restored as the model sees them (OCIO to
    sRGB); outside the mattes every float is the plate's own, highlights above 1 included; inside
    them the result is the same restoration as that of the sRGB clip, converted back with OCIO."""
    ocio = pytest.importorskip("PyOpenColorIO")
    config = ocio.Config.CreateFromFile("ocio://studio-config-latest")

    def convert(rgb, source, target):
        out = np.array(rgb, np.float32, order="C")
        config.getProcessor(source, target).getOptimizedCPUProcessor(ocio.OPTIMIZATION_LOSSLESS).applyRGB(out)
        return out

    srgb_frames = [f.astype(np.float32) / 255 for f in synthetic_frames(N, W, H, faces=2, face_px=FACE_PX)]
    plates = [convert(f, "sRGB Encoded Rec.709 (sRGB)", "ACEScg") for f in srgb_frames]
    for plate in plates:
        plate[:20, :40] = [6.0, 3.5, -0.25]  # a highlight and a negative: no display shows them
    for name, frames in (("srgb", srgb_frames), ("aces", plates)):
        with MediaWriter(tmp_path / f"{name}_%04d.exr", width=W, height=H, bit_depth=32) as writer:
            for frame in frames:
                writer.write(frame)
    tracks = tmp_path / "tracks.json"  # found as the model sees the plate, and its digest is of those frames
    assert main(["track", str(tmp_path / "aces_%04d.exr"), "-o", str(tracks), "--colorspace", "ACEScg",
                 "--quiet", "--crop-size", str(CROP)]) == 0
    capsys.readouterr()
    code, summary = restore(tmp_path / "aces_%04d.exr", tmp_path / "out_%04d.exr", model_dir, "--colorspace",
                            "ACEScg", "--tracks", str(tracks), "--mask-out", str(tmp_path / "matte_%04d.png"),
                            capsys=capsys)
    assert code == 0 and len(summary["tracks"]) == 2 and all(t["restored"] for t in summary["tracks"])
    assert restore(tmp_path / "srgb_%04d.exr", tmp_path / "ref_%04d.exr", model_dir, "--tracks", str(tracks),
                   "--force-tracks", capsys=capsys)[0] == 0  # the same faces, from the sRGB clip
    with open_media(tmp_path / "out_%04d.exr") as out, open_media(tmp_path / "ref_%04d.exr") as ref, \
            open_media(tmp_path / "matte_%04d.png") as mattes:
        for plate, restored, reference, matte in zip(plates, out, ref, mattes, strict=True):
            matte = matte[..., 0]
            assert restored[matte == 0].tobytes() == plate[matte == 0].tobytes()
            full = matte == 65535
            assert full.sum() > 1000 and np.abs(restored - plate)[full].max() > 1e-2  # the faces changed
            np.testing.assert_allclose(restored[full], convert(reference, "sRGB Encoded Rec.709 (sRGB)",
                                                               "ACEScg")[full], rtol=1e-4, atol=1e-4)
    assert main(["restore", str(tmp_path / "aces_%04d.exr"), "-o", str(tmp_path / "x_%04d.exr"),
                 "--colorspace", "ACES CG"]) == 2
    err = capsys.readouterr().err
    assert "'ACES CG' is not in the OCIO config" in err and "ACEScg, " in err and "Traceback" not in err
    assert not list(tmp_path.glob("x_*"))


def test_a_10_bit_dpx_scan_is_restored_to_10_bit_dpx_with_every_code_outside_the_faces_its_own(model_dir, tmp_path,
                                                                                                capsys):
    """Film scans: `dvface restore scan_%04d.dpx -o out_%04d.dpx` keeps 10 bits, each code value
    outside the mattes, and the scan's header (its transfer here)."""
    grain = np.random.default_rng(3).integers(0, 4, (H, W, 3))
    for n, frame in enumerate(synthetic_frames(N, W, H, faces=2, face_px=FACE_PX)):
        codes = (frame.astype(np.int64) * 4 + grain).clip(0, 1023)  # 10 bits used, not 8 shifted
        picture = av.VideoFrame(W, H, "gbrp10le")
        for plane, channel in zip(picture.planes, (1, 2, 0)):
            np.frombuffer(plane, "<u2").reshape(H, -1)[:, :W] = codes[..., channel]
        codec = av.CodecContext.create("dpx", "w")
        codec.width, codec.height, codec.pix_fmt, codec.time_base = W, H, "gbrp10le", Fraction(1, 24)
        data = bytearray(b"".join(bytes(p) for p in (*codec.encode(picture), *codec.encode())))
        data[801] = 3  # logarithmic
        (tmp_path / f"scan_{n:04d}.dpx").write_bytes(bytes(data))
    code, summary = restore(tmp_path / "scan_%04d.dpx", tmp_path / "out_%04d.dpx", model_dir,
                            "--mask-out", str(tmp_path / "matte_%04d.png"), capsys=capsys)
    assert code == 0 and len(summary["tracks"]) == 2
    with open_media(tmp_path / "matte_%04d.png") as mattes:
        for n, matte in enumerate(mattes):
            scan, out = (next(av.open(str(tmp_path / f"{name}_{n:04d}.dpx")).decode(video=0)) for name in ("scan", "out"))
            assert out.format.name == "gbrp10le" and (tmp_path / f"out_{n:04d}.dpx").read_bytes()[801] == 3
            planes = [[np.frombuffer(p, "<u2").reshape(H, -1)[:, :W] for p in f.planes] for f in (scan, out)]
            outside, face = matte[..., 0] == 0, matte[..., 0] == 65535
            assert all(np.array_equal(a[outside], b[outside]) for a, b in zip(*planes))
            assert face.sum() > 1000 and any(not np.array_equal(a[face], b[face]) for a, b in zip(*planes))


def test_a_cineon_scan_is_restored_to_cineon_with_its_header_and_every_code_outside_the_faces(model_dir, tmp_path,
                                                                                                capsys):
    """Archive scans in Kodak's Cineon format: `dvface restore scan_%04d.cin -o out_%04d.cin`."""
    grain = np.random.default_rng(4).integers(0, 4, (H, W, 3))
    for n, frame in enumerate(synthetic_frames(N, W, H, faces=2, face_px=FACE_PX)):
        cineon_scan(tmp_path / f"scan_{n:04d}.cin", (frame.astype(np.int64) * 4 + grain).clip(0, 1023))
    code, summary = restore(tmp_path / "scan_%04d.cin", tmp_path / "out_%04d.cin", model_dir,
                            "--mask-out", str(tmp_path / "matte_%04d.png"), capsys=capsys)
    assert code == 0 and len(summary["tracks"]) == 2
    with open_media(tmp_path / "matte_%04d.png") as mattes, open_media(tmp_path / "scan_%04d.cin") as scans, \
            open_media(tmp_path / "out_%04d.cin") as outs:
        assert outs.source_bits == 10
        for n, (matte, scan, out) in enumerate(zip(mattes, scans, outs, strict=True)):
            assert (tmp_path / f"out_{n:04d}.cin").read_bytes()[:1024] == (tmp_path / f"scan_{n:04d}.cin").read_bytes()[:1024]
            outside, face = matte[..., 0] == 0, matte[..., 0] == 65535
            assert np.array_equal(scan[outside], out[outside])
            assert face.sum() > 1000 and not np.array_equal(scan[face], out[face])


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="chromium is not installed: `apt-get install chromium` (Debian; .ci/run does it) to render the report")
def test_report_page_renders_every_image_in_a_browser(full_run, two_faces, tmp_path):
    """Headless Chromium opens index.html from disk; each thumbnail is found on the screenshot."""
    import subprocess

    import cv2

    _, _, out, _ = full_run
    folder = tmp_path / "qc"
    assert main(["report", str(two_faces), str(out), "-o", str(folder), "--crop-size", str(CROP)]) == 0
    shot = tmp_path / "page.png"
    run = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                          "--force-device-scale-factor=1", "--window-size=1280,3000", f"--screenshot={shot}",
                          "--enable-logging=stderr", "--v=0", (folder / "index.html").as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    assert "CONSOLE" not in run.stderr and "Uncaught" not in run.stderr
    page = cv2.imread(str(shot))
    report = json.loads((folder / "report.json").read_text())
    names = [p[k] for t in report["tracks"] for p in t["thumbs"] for k in ("input", "restored")]
    found = {}
    for name in names:
        thumb = cv2.resize(cv2.imread(str(folder / name)), (128, 128), interpolation=cv2.INTER_AREA)
        _, score, _, where = cv2.minMaxLoc(cv2.matchTemplate(page, thumb, cv2.TM_CCOEFF_NORMED))
        assert score > 0.9, (name, score)
        found[name] = where
    # each in a place of its own: a missing image's best match would be a neighbouring thumbnail's
    assert len(set(found.values())) == len(names)


def test_tracks_are_cached_and_reanalysed_when_the_input_changes(model_dir, tmp_path, capsys):
    src = write_video(tmp_path / "shot.mkv", synthetic_frames(5, 320, 240, faces=1, face_px=150))
    code, first = restore(src, tmp_path / "a.mkv", model_dir, capsys=capsys)
    code2, second = restore(src, tmp_path / "b.mkv", model_dir, "--strength", "0.5", capsys=capsys)
    assert (code, code2) == (0, 0)
    assert (first["tracks_source"], second["tracks_source"]) == ("analysis", "cache")
    assert second["seconds"]["detect"] == 0.0 < first["seconds"]["detect"]
    assert second["faces_per_frame"] == first["faces_per_frame"] == [1] * 5
    write_video(src, synthetic_frames(5, 320, 240, faces=1, face_px=150, seed=7))  # same path, new pixels
    code3, third = restore(src, tmp_path / "c.mkv", model_dir, capsys=capsys)
    assert code3 == 0 and third["tracks_source"] == "analysis"
    code4, fourth = restore(src, tmp_path / "d.mkv", model_dir, "--no-cache", capsys=capsys)
    assert code4 == 0 and fourth["tracks_source"] == "analysis"


def test_edited_tracks_file_is_used(two_faces, model_dir, tmp_path, capsys):
    tracks_file = tmp_path / "tracks.json"
    assert main(["track", str(two_faces), "-o", str(tracks_file), "--quiet"]) == 0
    listing = capsys.readouterr().out
    assert "track 1:" in listing and "track 2:" in listing
    data = json.loads(tracks_file.read_text())
    data["tracks"] = [t for t in data["tracks"] if t["id"] != 1]  # an artist deletes a face
    tracks_file.write_text(json.dumps(data))
    out = tmp_path / "out.mkv"
    code, summary = restore(two_faces, out, model_dir, "--tracks", str(tracks_file), capsys=capsys)
    assert code == 0 and summary["tracks_source"] == "file"
    assert [t["id"] for t in summary["tracks"]] == [2]
    left = 0 if Tracks.load(tracks_file).tracks[0].faces[0].box[0] > W / 2 else 1  # the deleted head
    before, after = decoded(two_faces), decoded(out)
    for n in range(N):
        rows, cols = face_region(n, left)
        assert np.array_equal(before[n, rows, cols], after[n, rows, cols])
        rows, cols = face_region(n, 1 - left)
        assert not np.array_equal(before[n, rows, cols], after[n, rows, cols])


def test_track_preview_shows_each_id_with_its_face(two_faces, tmp_path, capsys):
    import cv2

    from dvface_plugin.faces import warp_to_crop

    tracks_file, previews = tmp_path / "tracks.json", tmp_path / "previews"
    assert main(["track", str(two_faces), "-o", str(tracks_file), "--quiet", "--preview", str(previews)]) == 0
    tracks = Tracks.load(tracks_file)
    assert sorted(p.name for p in previews.iterdir()) == [f"track_{t.id}.png" for t in tracks]
    frames = decoded(two_faces)
    for track in tracks:
        face = track.faces[len(track.faces) // 2]
        expected = warp_to_crop(frames[face.frame], face.affine * (256 / tracks.crop_size), 256)
        shown = cv2.imread(str(previews / f"track_{track.id}.png"))[..., ::-1]
        assert shown.shape == (256, 256, 3) and np.array_equal(shown, expected)
    assert main(["track", str(two_faces), "-o", str(tmp_path / "t2.json"), "--preview", str(previews)]) == 2
    assert "already holds track previews" in capsys.readouterr().err


def test_tracks_file_of_other_pixels_is_refused_unless_forced(two_faces, model_dir, tmp_path, capsys):
    other = write_video(tmp_path / "other.mkv", synthetic_frames(N, W, H, faces=2, face_px=FACE_PX, seed=3))
    tracks_file = tmp_path / "other.json"
    assert main(["track", str(other), "-o", str(tracks_file), "--quiet"]) == 0
    capsys.readouterr()
    out = tmp_path / "out.mkv"
    code, _ = restore(two_faces, out, model_dir, "--tracks", str(tracks_file), capsys=capsys)
    assert code == 2 and not out.exists()
    code, _ = restore(two_faces, out, model_dir, "--tracks", str(tracks_file), "--faces", "1")
    err = capsys.readouterr().err
    assert code == 2 and "digest" in err and "--force-tracks" in err
    code, summary = restore(two_faces, out, model_dir, "--tracks", str(tracks_file), "--force-tracks",
                            capsys=capsys)
    assert code == 0 and out.exists() and summary["tracks_source"] == "file"


def test_face_entering_mid_clip_leaves_the_frames_before_it_untouched(model_dir, tmp_path, capsys):
    empty = list(synthetic_frames(4, 320, 240, faces=0))
    with_face = list(synthetic_frames(7, 320, 240, faces=1, face_px=150))
    src = write_video(tmp_path / "enter.mkv", empty + with_face)
    out = tmp_path / "out.mkv"
    code, summary = restore(src, out, model_dir, "--window", "5", "--overlap", "1", capsys=capsys)
    assert code == 0
    assert summary["faces_per_frame"] == [0] * 4 + [1] * 7
    assert [(t["first_frame"], t["last_frame"]) for t in summary["tracks"]] == [(4, 10)]
    before, after = decoded(src), decoded(out)
    assert np.array_equal(before[:4], after[:4])
    assert all(not np.array_equal(before[n], after[n]) for n in range(4, 11))


def test_clip_without_faces_comes_out_unchanged_with_a_warning(model_dir, tmp_path, capsys):
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (96, 128, 3), dtype=np.uint8) for _ in range(5)]
    src = write_video(tmp_path / "empty.mkv", frames)
    out = tmp_path / "out.mkv"
    code = main(["restore", str(src), "-o", str(out), "--model", str(model_dir), "--quiet"])
    assert code == 0
    assert "warning" in capsys.readouterr().err.lower()
    assert np.array_equal(decoded(src), decoded(out))
    assert open_media(out).fps == NTSC


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()], ids=["error", "interrupt"])
def test_failure_mid_run_leaves_no_output(two_faces, model_dir, tmp_path, monkeypatch, exc):
    calls = []
    decode = Restorer.decode

    def failing(self, state, prior_scale=1.0):
        calls.append(1)
        if len(calls) > 2:  # after the first window of each track: frames are already written
            raise exc
        return decode(self, state, prior_scale)

    monkeypatch.setattr(Restorer, "decode", failing)
    out, mask = tmp_path / "out.mkv", tmp_path / "matte_%04d.png"
    argv = ["restore", str(two_faces), "-o", str(out), "--model", str(model_dir), "--quiet",
            "--mask-out", str(mask), *ENGINE]
    if isinstance(exc, KeyboardInterrupt):
        assert main(argv) == 130
    else:
        with pytest.raises(RuntimeError, match="boom"):
            main(argv)
    assert len(calls) == 3
    assert list(tmp_path.iterdir()) == []


def test_unreadable_input_and_unwritable_output_fail_cleanly(two_faces, model_dir, tmp_path, capsys):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).bytes(4096))
    assert main(["restore", str(garbage), "-o", str(tmp_path / "o.mkv"), "--model", str(model_dir)]) == 2
    assert "garbage.mp4" in capsys.readouterr().err
    missing = tmp_path / "no" / "such" / "folder" / "o.mkv"
    assert main(["restore", str(two_faces), "-o", str(missing), "--model", str(model_dir)]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and str(missing.parent) in err
    assert main(["restore", str(two_faces), "-o", str(tmp_path / "o.txt"), "--model", str(model_dir)]) == 2
    assert "Unsupported output" in capsys.readouterr().err
    assert main(["restore", str(two_faces), "-o", str(two_faces), "--model", str(model_dir)]) == 2
    assert "OUT is IN" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["garbage.mp4"]


def test_an_existing_output_is_refused_unless_overwrite(two_faces, model_dir, tmp_path, capsys):
    out, mask, frames = tmp_path / "out.mkv", tmp_path / "matte.mkv", tmp_path / "f_%04d.png"
    out.write_bytes(b"an earlier render")
    for argv in (["--aligned"], []):  # both paths refuse before opening the model or the input
        assert main(["restore", str(two_faces), "-o", str(out), "--model", str(tmp_path / "none"), *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "out.mkv already exists" in err and "--overwrite (-y)" in err
    (tmp_path / "f_0007.png").write_bytes(b"an earlier frame")
    assert main(["restore", str(two_faces), "-o", str(frames), "--model", str(model_dir)]) == 2
    assert "1 frames of" in capsys.readouterr().err
    mask.write_bytes(b"an earlier matte")
    assert main(["restore", str(two_faces), "-o", str(tmp_path / "new.mkv"), "--mask-out", str(mask),
                 "--model", str(model_dir)]) == 2
    assert "matte.mkv already exists" in capsys.readouterr().err
    assert out.read_bytes() == b"an earlier render" and mask.read_bytes() == b"an earlier matte"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f_0007.png", "matte.mkv", "out.mkv"]
    code, summary = restore(two_faces, out, model_dir, "-y", "--faces", "1", capsys=capsys)
    assert code == 0 and summary["frames"] == N and open_media(out).frame_count == N


def test_a_faces_typo_fails_before_any_decoding(tmp_path, model_dir, capsys, monkeypatch):
    import dvface_plugin.media as media

    def never(*args, **kwargs):
        raise AssertionError("the input was opened before --faces was checked")

    monkeypatch.setattr(media, "open_media", never)
    out = tmp_path / "o.mkv"
    assert main(["restore", str(tmp_path / "in.mkv"), "-o", str(out), "--faces", "1,two",
                 "--model", str(model_dir)]) == 2
    assert "not one of all, largest, center" in capsys.readouterr().err
    assert main(["restore", str(tmp_path / "in.mkv"), "-o", str(out), "--faces", ",",
                 "--model", str(model_dir)]) == 2
    assert "names no track ids" in capsys.readouterr().err
    assert not out.exists()


def test_streams_are_checked_before_any_decoding_and_refused_on_torch(two_faces, model_dir, tmp_path, capsys,
                                                                       monkeypatch):
    out = tmp_path / "o.mkv"
    assert main(["restore", str(two_faces), "-o", str(out), "--streams", "0", "--model", str(model_dir)]) == 2
    assert "--streams must be at least 1" in capsys.readouterr().err
    assert main(["restore", str(two_faces), "-o", str(out), "--streams", "2", "--backend", "torch",
                 "--model", str(model_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "torch backend runs one model call at a time" in err
    assert not out.exists()


def test_missing_model_exits_3_naming_the_fix(two_faces, tmp_path, capsys, monkeypatch):
    out = tmp_path / "o.mkv"
    monkeypatch.setattr(folders, "MODELS_DIR", tmp_path / "models")  # an install without models/
    assert main(["restore", str(two_faces), "-o", str(out)]) == 3
    err = capsys.readouterr().err
    assert "dvface-tiny" in err and "--model" in err
    assert main(["restore", str(two_faces), "-o", str(out), "--model", str(tmp_path / "nope")]) == 3
    assert list(tmp_path.iterdir()) == []  # not even a partial file


def test_frames_changing_size_fail_with_nothing_written(model_dir, tmp_path, capsys):
    frames = list(synthetic_frames(3, 160, 120, faces=1))
    for n, frame in enumerate(frames[:2]):
        write_video(tmp_path / f"s_{n:02d}.png", [frame])
    write_video(tmp_path / "s_02.png", [np.zeros((128, 160, 3), np.uint8)])
    out = tmp_path / "out.mkv"
    code = main(["restore", str(tmp_path / "s_%02d.png"), "-o", str(out), "--model", str(model_dir), "--quiet"])
    assert code == 2 and "frame 2" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob(".*partial*"))


def test_photo_in_photo_out(model_dir, tmp_path, capsys):
    frame = next(synthetic_frames(1, 320, 240, faces=1, face_px=160))
    src = write_video(tmp_path / "face.png", [frame])
    out, mask = tmp_path / "restored.png", tmp_path / "matte.png"
    code, summary = restore(src, out, model_dir, "--mask-out", str(mask), capsys=capsys)
    assert code == 0 and summary["faces_per_frame"] == [1]
    res = open_media(out)
    assert res.is_photo and (res.width, res.height) == (320, 240)
    after, matte = decoded(out)[0], decoded(mask)[0][..., 0]
    outside = matte == 0
    assert np.array_equal(frame[outside], after[outside])
    assert (frame[~outside] != after[~outside]).any()


def test_bench_pipeline_reports_every_stage(capsys):
    code = main(["bench", "pipeline", "--frames", "5", "--size", "256x192", "--faces", "1", "--crop", "32",
                 "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    seconds = result["seconds"]
    assert set(seconds) == {"decode", "detect", "track", "align", "model", "paste", "encode"}
    assert result["tracks"] == 1 and result["face_frames"] == 5
    assert all(seconds[k] > 0 for k in ("decode", "detect", "model", "encode"))
    ratio = (sum(seconds.values()) - seconds["model"]) / seconds["model"]
    assert result["non_model_over_model"] == pytest.approx(ratio, rel=1e-2, abs=1e-3)


def to_acescct(picture: np.ndarray) -> np.ndarray:
    """An 8-bit display-sRGB picture as a log (ACEScct) camera would record it, in 8 bits."""
    import PyOpenColorIO as ocio

    log = np.array(picture.astype(np.float32) / 255, order="C")
    ocio.Config.CreateFromFile("ocio://studio-config-latest").getProcessor(
        "sRGB Encoded Rec.709 (sRGB)", "ACEScct").getOptimizedCPUProcessor(ocio.OPTIMIZATION_LOSSLESS).applyRGB(log)
    return np.rint(np.clip(log, 0, 1) * 255).astype(np.uint8)


def interlaced_clip(path: Path, n: int, encode=None) -> Path:
    """Tape-like H.264, coded interlaced and top field first: frame k weaves moments 2k and 2k + 1
    (each first passed through `encode`, e.g. into a log curve, when given)."""
    moments = list(synthetic_frames(2 * n, W, H, faces=1, face_px=FACE_PX))
    moments = moments if encode is None else [encode(m) for m in moments]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"flags": "+ildct+ilme", "x264-params": "tff=1"})
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for k in range(n):
            woven = moments[2 * k].copy()
            woven[1::2] = moments[2 * k + 1][1::2]
            container.mux(stream.encode(av.VideoFrame.from_ndarray(woven, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def test_interlaced_video_is_restored_field_by_field_and_stays_interlaced(model_dir, tmp_path, capsys):
    src = interlaced_clip(tmp_path / "tape.mp4", 6)
    out, mask = tmp_path / "out.mkv", tmp_path / "matte.mkv"
    code, summary = restore(src, out, model_dir, "--mask-out", str(mask), capsys=capsys)
    assert code == 0 and summary["frames"] == 6 and summary["interlaced"] == "top field first"
    assert len(summary["faces_per_frame"]) == 12 and all(summary["faces_per_frame"])  # one face per field
    restored = open_media(out)
    assert restored.frame_count == 6 and restored.metadata["interlaced"] == "top field first"
    before, after, matte = planes(src), planes(out), decoded(mask)[..., 0] > 0
    for n in range(6):
        assert np.array_equal(before[n][0][~matte[n]], after[n][0][~matte[n]]), n  # the plate's own samples
        for field in (0, 1):  # both fields' faces were restored
            rows = matte[n][field::2]
            assert not np.array_equal(before[n][0][field::2][rows], after[n][0][field::2][rows]), (n, field)
    tracks = tmp_path / "tracks.json"  # `dvface track` tracks the fields too, so its file and ids fit
    assert main(["track", str(src), "-o", str(tracks), "--quiet"]) == 0 and Tracks.load(tracks).frame_count == 12
    as_pictures = tmp_path / "frames.json"  # what `restore --allow-interlaced` would take
    assert main(["track", str(src), "-o", str(as_pictures), "--quiet", "--allow-interlaced"]) == 0
    assert Tracks.load(as_pictures).frame_count == 6
    capsys.readouterr()
    code, again = restore(src, tmp_path / "again.mkv", model_dir, "--tracks", str(tracks), capsys=capsys)
    assert code == 0 and again["tracks_source"] != summary["tracks_source"]
    assert np.array_equal(decoded(tmp_path / "again.mkv"), decoded(out))
    # the QC page measures it as it was restored, field by field, and says so
    code = main(["report", str(src), str(out), "-o", str(tmp_path / "qc")])
    assert code == 0
    report = json.loads((tmp_path / "qc" / "report.json").read_text())
    assert report["shot"]["unit"] == "field" and report["shot"]["frames"] == 6 and report["shot"]["fields"] == 12
    assert Fraction(report["shot"]["fps"]) == restored.fps  # the clip's frame rate, not the field rate
    (track,) = report["tracks"]
    assert track["restored"] and (track["first_frame"], track["last_frame"]) == (0, 11)
    assert "numbers count fields" in (tmp_path / "qc" / "index.html").read_text()


def test_a_log_interlaced_clip_is_restored_field_by_field_in_the_models_srgb(model_dir, tmp_path, capsys):
    """`--colorspace` on tape: each field is seen in display sRGB and only its face's change goes
    back into its own lines. The output stays interlaced with the plate's samples around the faces,
    and a --frames range is the same frames of the whole run (fields counted from the range's start)."""
    src = interlaced_clip(tmp_path / "log.mp4", 6, to_acescct)
    out, mask = tmp_path / "out.mkv", tmp_path / "matte.mkv"
    code, summary = restore(src, out, model_dir, "--colorspace", "ACEScct", "--mask-out", str(mask), capsys=capsys)
    assert code == 0 and summary["interlaced"] == "top field first"
    assert len(summary["faces_per_frame"]) == 12 and all(summary["faces_per_frame"])  # one face per field
    assert open_media(out).metadata["interlaced"] == "top field first"
    before, after, matte = planes(src), planes(out), decoded(mask)[..., 0] > 0
    for n in range(6):
        assert np.array_equal(before[n][0][~matte[n]], after[n][0][~matte[n]]), n
        for field in (0, 1):
            rows = matte[n][field::2]
            assert not np.array_equal(before[n][0][field::2][rows], after[n][0][field::2][rows]), (n, field)
    code, _ = restore(src, tmp_path / "plain.mkv", model_dir, capsys=capsys)
    assert code == 0 and not np.array_equal(decoded(tmp_path / "plain.mkv"), decoded(out))  # what the model saw
    code, _ = restore(src, tmp_path / "part.mkv", model_dir, "--colorspace", "ACEScct", "--frames", "2-4",
                      capsys=capsys)
    assert code == 0 and np.array_equal(decoded(tmp_path / "part.mkv"), decoded(out)[2:5])
    seen = {}  # the QC page measures the fields as the model saw them, in display sRGB
    for name, extra in (("display", ["--colorspace", "ACEScct"]), ("log", [])):
        assert main(["report", str(src), str(out), "-o", str(tmp_path / name), *extra]) == 0
        seen[name] = json.loads((tmp_path / name / "report.json").read_text())
        assert seen[name]["shot"]["unit"] == "field" and len(seen[name]["tracks"]) == 1
    assert seen["display"]["tracks"][0]["flicker_input"] != seen["log"]["tracks"][0]["flicker_input"]


@pytest.mark.parametrize("pixel_aspect, rotation", [(Fraction(2), 0), (Fraction(1), -90)])
def test_anamorphic_and_turned_clips_are_restored_as_displayed_and_play_as_before(
        model_dir, tmp_path, capsys, pixel_aspect, rotation):
    """A 2:1 squeezed clip, and a phone clip stored on its side: faces are found in every frame as
    displayed, and the output plays as the source does (pixel aspect and rotation kept)."""
    import cv2

    upright = list(synthetic_frames(6, W, H, faces=1, face_px=FACE_PX))
    stored = [np.ascontiguousarray(np.rot90(cv2.resize(f, (int(W / pixel_aspect), H), interpolation=cv2.INTER_AREA),
                                            -rotation // 90)) for f in upright]
    src = tmp_path / "src.mp4"
    with av.open(str(src), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = stored[0].shape[1], stored[0].shape[0], "yuv420p"
        stream.codec_context.sample_aspect_ratio = pixel_aspect
        stream.set_display_rotation(rotation)
        for frame in stored:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    out = tmp_path / "out.mkv"
    code, summary = restore(src, out, model_dir, capsys=capsys)
    assert code == 0 and summary["faces_per_frame"] == [1] * 6
    assert (summary["pixel_aspect"], summary["rotation"]) == (float(pixel_aspect), rotation % 360)
    restored = open_media(out)
    assert restored.metadata.get("pixel_aspect", 1) == pixel_aspect and restored.metadata.get("rotation", 0) == rotation
    assert (restored.width, restored.height) == (stored[0].shape[1], stored[0].shape[0])
