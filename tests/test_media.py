"""Media I/O: exact rates and counts, bit-exact lossless round trips, untouched audio,
seek-safe reads, atomic writes and clear errors. Clips are synthesized with PyAV."""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from cineon_scans import LABEL, cineon_scan

from dvface_plugin.errors import DVFaceError, InputError
from dvface_plugin.media import MediaWarning, MediaWriter, first_field, open_media, output_spec, parse_fps
from dvface_plugin.media.matroska import set_display_aspect
from dvface_plugin.media.pixels import rgb_to_dtype

W, H = 64, 48
NTSC = Fraction(24000, 1001)


def random_frames(n: int, dtype=np.uint8, size=(H, W), seed=0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    if dtype == np.float32:
        return [(rng.standard_normal((*size, 3)) * 3).astype(np.float32) for _ in range(n)]
    peak = np.iinfo(dtype).max
    return [rng.integers(0, peak + 1, (*size, 3), dtype=dtype) for _ in range(n)]


def gradient_frames(n: int) -> list[np.ndarray]:
    """Smooth moving content that lossy codecs keep close, with a per-frame signature."""
    yy, xx = np.mgrid[0:H, 0:W]
    return [np.stack([(xx * 3 + i * 7) % 256, (yy * 4 + i * 3) % 256,
                      np.full_like(xx, (i * 37) % 256)], -1).astype(np.uint8) for i in range(n)]


def make_clip(path: Path, frames: list[np.ndarray], rate: Fraction, codec: str = "libx264",
              pix_fmt: str = "yuv420p", audio: str | None = None, gop: int | None = None,
              timecode: str | None = None, bt2020_pq: bool = False, sar: Fraction | None = None,
              rotation: int = 0, options: dict | None = None, edit=None, field_order: int = 0) -> Path:
    """Encode a clip with plain PyAV (independent of the code under test); `edit(frame)` changes each
    frame in `pix_fmt` before it is encoded; `field_order` tags it (FFmpeg's: 2 top first, 5 bottom first)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, options=options or {})
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = pix_fmt
        if gop:
            stream.codec_context.gop_size = gop
        if timecode:
            stream.metadata["timecode"] = timecode
        ctx = stream.codec_context
        if sar:
            ctx.sample_aspect_ratio = sar
        if rotation:
            stream.set_display_rotation(rotation)
        ctx.field_order = field_order
        if bt2020_pq:  # HDR10 tags: BT.2020 primaries and matrix, PQ transfer
            ctx.color_primaries, ctx.color_trc, ctx.colorspace, ctx.color_range = 9, 16, 9, 1
        convert = {"dst_colorspace": "BT2020", "dst_color_range": "MPEG"} if bt2020_pq else {}
        src_fmt = "rgb24" if frames[0].dtype == np.uint8 else "rgb48le"
        for i, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(array, format=src_fmt).reformat(format=pix_fmt,
                                                                               **convert)
            if edit is not None:
                edit(frame)
            frame.pts = i
            frame.time_base = 1 / rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    if audio:
        _add_audio(path, audio, float(len(frames) / rate))
    return path


def _add_audio(path: Path, codec: str, seconds: float) -> None:
    """Rewrite `path` with an extra audio track (sine), video packets copied."""
    tmp = path.with_name("with_audio" + path.suffix)
    with av.open(str(path)) as src, av.open(str(tmp), "w") as out:
        v_in = src.streams.video[0]
        v_out = out.add_stream_from_template(v_in)
        a_out = out.add_stream(codec, rate=48000)
        a_out.layout = "stereo"
        a_out.format = "fltp" if codec == "aac" else "s16"
        for packet in src.demux(v_in):
            if packet.dts is not None:
                packet.stream = v_out
                out.mux(packet)
        samples = int(48000 * seconds)
        t = np.arange(samples) / 48000
        signal = 0.3 * np.sin(2 * np.pi * 440 * t)
        for start in range(0, samples, 1024):
            chunk = signal[start:start + 1024]
            if codec == "aac":
                data = np.stack([chunk, chunk]).astype(np.float32)
            else:
                data = (np.repeat(chunk, 2)[None] * 32767).astype(np.int16)
            frame = av.AudioFrame.from_ndarray(data, format=a_out.format.name, layout="stereo")
            frame.sample_rate, frame.pts = 48000, start
            for packet in a_out.encode(frame):
                out.mux(packet)
        for packet in a_out.encode(None):
            out.mux(packet)
    tmp.replace(path)


def audio_packets(path: Path) -> list[tuple[bytes, Fraction | None]]:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return [(bytes(p), p.pts * p.time_base if p.pts is not None else None)
                for p in container.demux(stream) if p.size]


def write_all(path: Path, frames: list[np.ndarray], **kwargs) -> Path:
    with MediaWriter(path, width=frames[0].shape[1], height=frames[0].shape[0], **kwargs) as w:
        for frame in frames:
            w.write(frame)
    return path


# -- timing ----------------------------------------------------------------------------------

@pytest.mark.parametrize("rate", [NTSC, Fraction(25)])
@pytest.mark.parametrize("out_ext", [".mov", ".mkv", ".mp4"])
def test_rational_fps_and_frame_count_survive_read_and_write(tmp_path, rate, out_ext):
    src_path = make_clip(tmp_path / "src.mp4", gradient_frames(17), rate)
    src = open_media(src_path)
    assert src.fps == rate and isinstance(src.fps, Fraction)
    assert src.frame_count == 17
    out = write_all(tmp_path / f"out{out_ext}", list(src), fps=src.fps, bit_depth=src.source_bits)
    result = open_media(out)
    assert result.fps == rate
    assert result.frame_count == 17
    assert sum(1 for _ in result) == 17


def test_parse_fps_keeps_ntsc_rates_exact():
    assert parse_fps(23.976) == NTSC
    assert parse_fps(29.97) == Fraction(30000, 1001)
    assert parse_fps("24000/1001") == NTSC
    assert parse_fps(25.0) == 25
    with pytest.raises(InputError):
        parse_fps("fast")


# -- audio and metadata ----------------------------------------------------------------------

@pytest.mark.parametrize("codec, src_ext, out_ext", [("aac", ".mov", ".mp4"), ("pcm_s16le", ".mov", ".mov"),
                                                     ("aac", ".mp4", ".mkv")])
def test_audio_packets_are_copied_untouched(tmp_path, codec, src_ext, out_ext):
    src_path = make_clip(tmp_path / f"src{src_ext}", gradient_frames(25), Fraction(25), audio=codec)
    src = open_media(src_path)
    assert src.has_audio
    out = write_all(tmp_path / f"out{out_ext}", list(src), fps=src.fps, streams_from=src)
    before, after = audio_packets(src_path), audio_packets(out)
    assert [payload for payload, _ in after] == [payload for payload, _ in before]
    tolerance = Fraction(1, 1000) if out_ext == ".mkv" else 0  # Matroska stores milliseconds
    shift = after[0][1] - before[0][1] if out_ext == ".mkv" else 0  # mkv drops the AAC priming offset
    assert all(abs(a - b - shift) <= tolerance for (_, b), (_, a) in zip(before, after, strict=True))
    with av.open(str(out)) as container:
        assert container.streams.audio[0].codec_context.name == codec


def _dvd_vob(path: Path, frames: list[np.ndarray]) -> Path:
    """A DVD's MPEG-2 program stream: its clock starts half a second in, the audio a little before the video."""
    with av.open(str(path), "w", format="vob") as container:
        video = container.add_stream("mpeg2video", rate=25)
        video.width, video.height, video.pix_fmt = W, H, "yuv420p"
        sound = container.add_stream("mp2", rate=48000)
        sound.layout = "stereo"
        for i, array in enumerate(frames):
            picture = av.VideoFrame.from_ndarray(array, format="rgb24").reformat(format="yuv420p")
            picture.pts = i
            for packet in video.encode(picture):
                container.mux(packet)
        for j in range(len(frames) * 48000 // 25 // 1152):
            samples = av.AudioFrame.from_ndarray(np.full((1, 2 * 1152), j, np.int16), format="s16", layout="stereo")
            samples.sample_rate, samples.pts = 48000, j * 1152
            for packet in sound.encode(samples):
                container.mux(packet)
        for stream in (video, sound):
            for packet in stream.encode(None):
                container.mux(packet)
    return path


@pytest.mark.parametrize("out_ext, trim", [(".mkv", None), (".mov", None), (".mov", (5, 15))])
def test_audio_stays_in_sync_when_the_sources_clock_does_not_start_at_zero(tmp_path, out_ext, trim):
    """A DVD or broadcast stream's first frame is shown at some later time: the output starts at 0 with
    that frame, so its audio moves back by as much (it stayed where it was: half a second late)."""
    src = open_media(_dvd_vob(tmp_path / "dvd.vob", gradient_frames(20)))
    start = src.metadata["start"]
    assert start > Fraction(1, 4)  # FFmpeg's program stream muxer starts the clock late
    first, stop = trim or (0, src.frame_count)
    out = write_all(tmp_path / f"out{out_ext}", list(src.frames(first, stop)), fps=src.fps, streams_from=src,
                    metadata=src.metadata, trim=trim)
    begin, end = start + Fraction(first, 25), start + Fraction(stop, 25)
    expected = [t - begin for _, t in audio_packets(src.path) if begin <= t < end]
    moved = [t for _, t in audio_packets(out)]
    assert len(moved) == len(expected) >= 5
    assert all(abs(a - b) <= Fraction(1, 1000) for a, b in zip(moved, expected))  # Matroska: milliseconds
    with av.open(str(out)) as container:
        assert container.streams.video[0].start_time == 0


def test_pcm_audio_into_mp4_is_refused_before_writing(tmp_path):
    src_path = make_clip(tmp_path / "src.mov", gradient_frames(5), Fraction(25), audio="pcm_s16le")
    with pytest.raises(InputError, match=r"\.mov or \.mkv"):
        MediaWriter(tmp_path / "out.mp4", fps=25, width=W, height=H, streams_from=src_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src.mov"]


@pytest.mark.parametrize("out_ext", [".mov", ".mkv"])
def test_timecode_and_tags_carried_over(tmp_path, out_ext):
    src_path = make_clip(tmp_path / "src.mov", gradient_frames(4), NTSC, timecode="01:00:10:05")
    src = open_media(src_path)
    assert src.metadata["timecode"] == "01:00:10:05"
    metadata = {**src.metadata, "tags": {"comment": "restored"}}
    out = write_all(tmp_path / f"out{out_ext}", list(src), fps=src.fps, metadata=metadata)
    result = open_media(out)
    assert result.metadata["timecode"] == "01:00:10:05"
    assert result.metadata["tags"]["comment"] == "restored"


@pytest.mark.parametrize("out_ext, codec", [(".mkv", None), (".mkv", "h264"), (".mov", None), (".mp4", None)])
def test_non_square_pixels_stay_non_square(tmp_path, out_ext, codec):
    """An anamorphic source (64:45, 16:9 PAL) keeps its pixel aspect in every container, or the
    restored clip plays squeezed; .mkv's FFV1 carries none of its own, so its header says it,
    and its frames are the same bytes as without."""
    anamorphic = Fraction(64, 45)
    src = open_media(make_clip(tmp_path / "src.mp4", gradient_frames(4), Fraction(25), sar=anamorphic))
    assert src.metadata["pixel_aspect"] == anamorphic
    out = write_all(tmp_path / f"out{out_ext}", list(src), fps=src.fps, metadata=src.metadata, codec=codec)
    assert open_media(out).metadata["pixel_aspect"] == anamorphic
    square = {k: v for k, v in src.metadata.items() if k != "pixel_aspect"}
    plain = write_all(tmp_path / f"plain{out_ext}", list(src), fps=src.fps, metadata=square, codec=codec)
    assert "pixel_aspect" not in open_media(plain).metadata
    if out_ext == ".mkv" and codec is None:
        assert np.array_equal(np.stack(list(open_media(out))), np.stack(list(open_media(plain))))


@pytest.mark.parametrize("out_ext", [".mkv", ".mov", ".mp4"])
def test_a_phone_clip_stored_on_its_side_plays_upright_after(tmp_path, out_ext):
    """The display rotation is kept on video outputs (the samples stay as stored); image files have
    no such tag, so their pictures are turned upright."""
    frames = gradient_frames(3)
    src = open_media(make_clip(tmp_path / "src.mp4", frames, Fraction(25), rotation=-90))
    assert src.metadata["rotation"] == -90
    out = open_media(write_all(tmp_path / f"out{out_ext}", list(src), fps=src.fps, metadata=src.metadata))
    assert out.metadata["rotation"] == -90 and (out.width, out.height) == (W, H)
    write_all(tmp_path / "seq_%02d.png", list(src), metadata=src.metadata)
    pictures = open_media(tmp_path / "seq_%02d.png")
    assert (pictures.width, pictures.height) == (H, W)
    np.testing.assert_array_equal(pictures.read(1), np.rot90(src.read(1), -1))


@pytest.mark.parametrize("name", ["plate.####.exr", "plate_%04d.png", "plate_%04d.tif", "still.jpg"])
def test_anamorphic_image_files_keep_their_pixel_aspect(tmp_path, name):
    """A 2:1 anamorphic scan read as a sequence says so, and the restored sequence records it too."""
    frames = random_frames(2 if "%" in name or "#" in name else 1)
    (tmp_path / "in").mkdir()
    src = open_media(write_all(tmp_path / "in" / name, frames, metadata={"pixel_aspect": Fraction(2)}))
    assert src.metadata["pixel_aspect"] == 2
    out = write_all(tmp_path / name, list(src), metadata=src.metadata)
    assert open_media(out).metadata["pixel_aspect"] == 2


def test_a_phone_photo_with_an_exif_orientation_is_written_upright(tmp_path):
    """Viewers turn a photo by its EXIF orientation; the restored picture, which has none, is
    written turned the same way, so it looks as the original does."""
    from PIL import Image

    stored = random_frames(1)[0]
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display", as phones write portraits
    Image.fromarray(stored).save(tmp_path / "phone.jpg", exif=exif.tobytes(), quality=100)
    src = open_media(tmp_path / "phone.jpg")
    assert src.metadata["rotation"] == -90
    out = open_media(write_all(tmp_path / "out.png", list(src), metadata=src.metadata))
    assert (out.width, out.height) == (H, W)
    np.testing.assert_array_equal(out.read(0), np.rot90(src.read(0), -1))


def test_a_pixel_aspect_that_cannot_be_recorded_is_an_error_naming_the_fix(tmp_path):
    bogus = tmp_path / "not.mkv"
    bogus.write_bytes(b"\x1a\x45\xdf\xa3\x80" + bytes(64))
    with pytest.raises(DVFaceError, match=r"64:45 pixel aspect in not\.mkv .*write \.mov"):
        set_display_aspect(bogus, 720, 576, Fraction(64, 45))


def test_hdr_colour_tags_and_matrix_follow_the_source(tmp_path):
    frames = [f.astype(np.uint16) * 257 for f in gradient_frames(3)]
    src = open_media(make_clip(tmp_path / "hdr.mkv", frames, Fraction(25), codec="ffv1",
                               pix_fmt="yuv444p10le", bt2020_pq=True))
    assert src.metadata["color"] == {"colorspace": 9, "color_range": 1, "color_primaries": 9,
                                     "color_trc": 16}
    decoded = list(src)
    out = write_all(tmp_path / "out.mov", decoded, fps=src.fps, bit_depth=src.source_bits,
                    metadata=src.metadata)
    result = open_media(out)
    assert result.metadata["color"]["color_primaries"] == 9
    assert result.metadata["color"]["color_trc"] == 16
    assert result.metadata["color"]["colorspace"] == 9
    for before, after in zip(decoded, result, strict=True):  # same matrix both ways: no colour shift
        assert np.abs(after.astype(int) - before).mean() < 200


@pytest.mark.parametrize("out_ext", [".mp4", ".mov", ".mkv"])
def test_untagged_colour_stays_untagged_and_decodes_to_the_same_colours(tmp_path, out_ext):
    """An untagged source must not come out claiming BT.709: at SD size players would then use
    another matrix than the one the source decodes with, and shift every colour."""
    frames = gradient_frames(3)
    src = open_media(make_clip(tmp_path / "sd.mp4", frames, Fraction(25)))
    assert set(src.metadata["color"].values()) <= {0, 2}  # nothing tagged
    decoded = list(src)
    out = write_all(tmp_path / f"out{out_ext}", decoded, fps=src.fps, metadata=src.metadata)
    with av.open(str(out)) as container:
        ctx = container.streams.video[0].codec_context
        tags = (ctx.color_primaries, ctx.color_trc, ctx.colorspace)
    assert tags[:2] == (2, 2) and tags[2] in (0, 2)  # unspecified, or RGB for an RGB codec
    for before, after in zip(decoded, open_media(out), strict=True):  # ProRes comes back 16-bit
        after = after.astype(np.float64) / (257 if after.dtype == np.uint16 else 1)
        assert np.abs(after - before).mean() < 3


# -- depth and lossless round trips ----------------------------------------------------------

@pytest.mark.parametrize("dtype, bits", [(np.uint8, 8), (np.uint16, 16)])
def test_ffv1_mkv_round_trip_is_bit_exact(tmp_path, dtype, bits):
    frames = random_frames(5, dtype, size=(21, 37))  # odd size: FFV1 takes any
    out = write_all(tmp_path / "out.mkv", frames, fps=NTSC, bit_depth=bits)
    src = open_media(out)
    assert (src.bit_depth, src.dtype, src.source_bits) == (bits, np.dtype(dtype), bits)
    decoded = list(src)
    assert len(decoded) == 5
    for original, back in zip(frames, decoded, strict=True):
        assert back.dtype == dtype and back.shape == (21, 37, 3)
        np.testing.assert_array_equal(back, original)


@pytest.mark.parametrize("pix_fmt", ["yuv420p10le", "yuv444p10le"])
def test_ten_bit_source_is_read_as_full_range_uint16(tmp_path, pix_fmt):
    yy, xx = np.mgrid[0:H, 0:W]
    colour = np.stack([xx / (W - 1), 0.5 + 0.4 * np.sin(xx / 5.0) * np.cos(yy / 7.0), yy / (H - 1)], -1)
    frames = [np.rint(colour * 65535).astype(np.uint16)] * 3
    src = open_media(make_clip(tmp_path / "ten.mkv", frames, Fraction(25), codec="ffv1",
                               pix_fmt=pix_fmt))
    assert (src.bit_depth, src.source_bits, src.dtype) == (16, 10, np.dtype(np.uint16))
    frame = src.read(1)
    assert frame[..., 0].max() > 64000 and frame[..., 0].min() < 1500  # scaled to 16-bit range
    error = np.abs(frame.astype(int) - frames[1]).mean()
    assert error < 300, f"mean error {error:.0f}/65535 after 10-bit {pix_fmt} decode"


@pytest.mark.parametrize("name", ["shot_%04d.png", "shot.####.tif"])
def test_16bit_image_sequence_round_trip_is_bit_exact(tmp_path, name):
    frames = random_frames(4, np.uint16, seed=3)
    write_all(tmp_path / name, frames, bit_depth=16, start_number=1001)
    ext = Path(name).suffix
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == [name.replace("%04d", f"{n:04d}").replace("####", f"{n:04d}")
                       for n in range(1001, 1005)]
    for source in (open_media(tmp_path / name), open_media(tmp_path)):  # pattern and folder
        assert source.frame_count == 4 and source.dtype == np.uint16
        assert source.metadata["first_frame"] == 1001 and source.metadata["fps_assumed"]
        for original, back in zip(frames, source, strict=True):
            np.testing.assert_array_equal(back, original)
    assert ext in (".png", ".tif")


def test_exr_float_round_trip_keeps_values_above_one(tmp_path):
    frames = random_frames(3, np.float32, seed=5)
    frames[0][0, 0] = [12.5, -3.0, 1e-6]
    write_all(tmp_path / "lin_%03d.exr", frames, bit_depth=32)
    src = open_media(tmp_path / "lin_%03d.exr")
    assert src.dtype == np.float32 and src.bit_depth == 32
    for original, back in zip(frames, src, strict=True):
        np.testing.assert_array_equal(back, original)
    assert src.read(0)[0, 0, 0] == np.float32(12.5)


def test_half_exr_is_rounded_to_nearest_and_needs_permission(tmp_path):
    frames = random_frames(1, np.float32, seed=6)
    with pytest.raises(InputError, match="float"):
        output_spec(tmp_path / "h_%03d.exr", "half", 32)
    with pytest.warns(MediaWarning):
        write_all(tmp_path / "h_%03d.exr", frames, bit_depth=32, codec="half",
                  allow_bit_depth_loss=True)
    back = open_media(tmp_path / "h_%03d.exr").read(0)
    np.testing.assert_array_equal(back, frames[0].astype(np.float16).astype(np.float32))


def test_photo_in_photo_out(tmp_path):
    image = random_frames(1, np.uint8, size=(33, 50), seed=7)[0]
    write_all(tmp_path / "face.png", [image])
    photo = open_media(tmp_path / "face.png")
    assert photo.is_photo and photo.fps == 0 and photo.frame_count == 1
    np.testing.assert_array_equal(photo.read(0), image)
    with MediaWriter(tmp_path / "again.png", width=50, height=33) as writer:
        writer.write(image)
        with pytest.raises(InputError, match="single photo"):
            writer.write(image)


def test_jpeg_photo_uses_full_range_bt601(tmp_path):
    yy, xx = np.mgrid[0:96, 0:128]
    smooth = np.stack([128 + 100 * np.sin(xx / 15), 128 + 100 * np.cos(yy / 11),
                       (xx + yy) / 224 * 255], -1).astype(np.uint8)
    write_all(tmp_path / "face.jpg", [smooth])
    back = open_media(tmp_path / "face.jpg").read(0)
    # a range or matrix mismatch shifts colours by several levels; JPEG noise stays ~1
    assert np.abs(back.astype(float) - smooth).mean() < 2.0
    assert np.abs((back.astype(float) - smooth).mean(axis=(0, 1))).max() < 1.5


def test_depth_conversions_are_exact_and_clip_floats():
    frame8 = np.arange(256, dtype=np.uint8).reshape(16, 16, 1).repeat(3, 2)
    frame16 = rgb_to_dtype(frame8, np.uint16)
    assert frame16.max() == 65535
    np.testing.assert_array_equal(rgb_to_dtype(frame16, np.uint8), frame8)
    floats = np.array([[[-0.5, 0.5, 2.0]]], dtype=np.float32)
    np.testing.assert_array_equal(rgb_to_dtype(floats, np.uint8), [[[0, 128, 255]]])


# -- seeking ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name, codec, pix_fmt", [("gop.mp4", "libx264", "yuv420p"),
                                                  ("gop.mkv", "libx264", "yuv420p"),
                                                  ("lossless.mkv", "ffv1", "bgr0")])
def test_read_n_equals_nth_iterated_frame(tmp_path, name, codec, pix_fmt):
    src = open_media(make_clip(tmp_path / name, gradient_frames(40), NTSC, codec=codec,
                               pix_fmt=pix_fmt, gop=8))
    iterated = list(src)
    assert len(iterated) == src.frame_count == 40
    order = [37, 3, 4, 5, 20, 0, 39, 19, 19, 8, 31]
    for n in order:
        np.testing.assert_array_equal(src.read(n), iterated[n], err_msg=f"frame {n}")
    tail = list(src.frames(start=25, stop=30))
    assert len(tail) == 5
    for offset, frame in enumerate(tail):
        np.testing.assert_array_equal(frame, iterated[25 + offset])
    src.close()


def test_concurrent_reads_return_the_requested_frames(tmp_path):
    src = open_media(make_clip(tmp_path / "clip.mp4", gradient_frames(30), Fraction(25), gop=6))
    iterated = list(src)
    requests = np.random.default_rng(2).integers(0, 30, 48).tolist()

    def fetch(n: int) -> tuple[int, np.ndarray]:
        return n, src.read(n)

    with ThreadPoolExecutor(max_workers=4) as pool:
        for n, frame in pool.map(fetch, requests):
            np.testing.assert_array_equal(frame, iterated[n], err_msg=f"frame {n}")


# -- atomic writes and refusals --------------------------------------------------------------

@pytest.mark.parametrize("target", ["out.mp4", "out.mkv", "seq_%04d.png", "still.png"])
@pytest.mark.parametrize("exc_type", [RuntimeError, KeyboardInterrupt])
def test_failed_write_leaves_no_partial_output(tmp_path, target, exc_type):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    frames = gradient_frames(3)
    with pytest.raises(exc_type):
        with MediaWriter(out_dir / target, fps=25, width=W, height=H) as writer:
            for frame in frames[: 1 if target == "still.png" else 3]:
                writer.write(frame)
            raise exc_type("injected")
    assert list(out_dir.iterdir()) == []


def test_partials_of_a_killed_run_of_the_same_output_are_removed_and_no_others(tmp_path):
    import os

    dead = 999_999_999  # above any pid_max: no such process
    killed = tmp_path / f".out.partial-{dead}-0a1b.mkv"
    live = tmp_path / f".out.partial-{os.getpid()}-2c3d.mkv"  # another writer of out.mkv, still running
    other = tmp_path / f".other.partial-{dead}-4e5f.mkv"  # a killed run of another output
    killed_frames = tmp_path / f".seq_dvface.partial-{dead}-6a7b"
    for path in (killed, live, other):
        path.write_bytes(b"half a clip")
    killed_frames.mkdir()
    (killed_frames / "seq_0001.png").write_bytes(b"half a frame")
    write_all(tmp_path / "out.mkv", gradient_frames(2), fps=25)
    assert not killed.exists() and live.exists() and other.exists()
    with MediaWriter(tmp_path / "seq_%04d.png", fps=25, width=W, height=H) as writer:
        writer.write(gradient_frames(1)[0])
    assert not killed_frames.exists() and (tmp_path / "seq_0001.png").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name, "out.mkv", "seq_0001.png"])


def test_failed_write_keeps_previous_output_intact(tmp_path):
    target = write_all(tmp_path / "out.mkv", gradient_frames(3), fps=25)
    before = target.read_bytes()
    with pytest.raises(InputError):
        with MediaWriter(target, fps=25, width=W, height=H) as writer:
            writer.write(gradient_frames(1)[0])
            writer.write(np.zeros((H + 2, W, 3), np.uint8))
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mkv"]


def test_16bit_into_mp4_needs_permission(tmp_path):
    with pytest.raises(InputError, match=r"\.mkv"):
        output_spec(tmp_path / "out.mp4", None, 16)
    with pytest.raises(InputError, match="bits"):
        MediaWriter(tmp_path / "out.mp4", fps=25, width=W, height=H, bit_depth=16)
    assert list(tmp_path.iterdir()) == []
    spec = output_spec(tmp_path / "out.mp4", "h264", 10)  # 10-bit H.264 keeps 10-bit sources
    assert (spec.pix_fmt, spec.bit_depth) == ("yuv420p10le", 10)
    with pytest.warns(MediaWarning):
        write_all(tmp_path / "out.mp4", random_frames(2, np.uint16), fps=25, bit_depth=16,
                  allow_bit_depth_loss=True)
    assert open_media(tmp_path / "out.mp4").metadata["pix_fmt"] == "yuv420p10le"


def test_uint16_frames_into_an_8bit_writer_raise(tmp_path):
    with pytest.raises(InputError, match="uint16"):
        write_all(tmp_path / "out.mkv", random_frames(1, np.uint16), fps=25, bit_depth=8)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("path, codec, pix_fmt, bits", [
    ("a.mov", None, "yuv422p10le", 10), ("a.mov", "prores4444", "yuv444p10le", 10),
    ("a.mkv", None, "gbrp16le", 16), ("a.mp4", "h265", "yuv420p12le", 12),
    ("a_%04d.png", None, "rgb48be", 16)])
def test_output_spec_keeps_depth_where_the_format_can(tmp_path, path, codec, pix_fmt, bits):
    spec = output_spec(tmp_path / path, codec, 12 if codec == "h265" else 16 if bits == 16 else 10)
    assert (spec.pix_fmt, spec.bit_depth) == (pix_fmt, bits)


@pytest.mark.parametrize("path, codec, source, pix_fmt, warning", [
    ("a.mp4", None, "yuv422p10le", "yuv422p10le", "10-bit 4:2:2 H.264"),
    ("a.mp4", "h265", "yuv444p", "yuv444p", "4:4:4 H.265"),
    ("a.mp4", None, "yuv420p", "yuv420p", None),
    ("a.mov", None, "yuv444p10le", "yuv444p10le", None),
    ("a.mov", "prores", "yuv444p10le", "yuv422p10le", "halves the source's 4:4:4 chroma")])
def test_output_spec_keeps_the_sources_chroma_or_says_it_does_not(tmp_path, path, codec, source, pix_fmt, warning):
    """A 4:2:2 tape capture written to .mp4 was silently 4:2:0; a 4:4:4 one to .mov, ProRes 422."""
    bits = 10 if "10" in source else 8
    spec = output_spec(tmp_path / path, codec, bits, source_pix_fmt=source)
    assert spec.pix_fmt == pix_fmt and spec.bit_depth == bits
    assert [w for w in spec.warnings if warning and warning in w] or (warning is None and not spec.warnings)


def test_output_spec_rejects_bad_choices_up_front(tmp_path):
    with pytest.raises(InputError, match="cannot hold"):
        output_spec(tmp_path / "a.mp4", "prores", 8)
    with pytest.raises(InputError, match="Unsupported output"):
        output_spec(tmp_path / "a.avi", None, 8)
    with pytest.raises(InputError, match="does not exist"):
        output_spec(tmp_path / "missing" / "a.mkv", None, 8)
    with pytest.raises(InputError, match="even"):
        MediaWriter(tmp_path / "odd.mp4", fps=25, width=W + 1, height=H)
    with pytest.raises(InputError, match="8 bits"):
        output_spec(tmp_path / "a.jpg", None, 16)


# -- bad input -------------------------------------------------------------------------------

def test_garbage_and_missing_files_raise_input_error(tmp_path):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(InputError):
        open_media(garbage)
    with pytest.raises(InputError, match="does not exist"):
        open_media(tmp_path / "nothing.mov")
    bad_png = tmp_path / "broken.png"
    bad_png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    with pytest.raises(InputError):
        open_media(bad_png)


def test_zero_frame_video_raises_input_error(tmp_path):
    empty = tmp_path / "empty.mov"
    with av.open(str(empty), "w") as container:
        stream = container.add_stream("prores_ks", rate=25)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv422p10le"
        container.start_encoding()  # header only, no frames
    with pytest.raises(InputError, match="no video frames"):
        open_media(empty)
    with pytest.raises(InputError, match="No frames were written"):
        with MediaWriter(tmp_path / "none.mkv", fps=25, width=W, height=H):
            pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.mov"]


def test_sequence_gaps_and_empty_patterns_raise(tmp_path):
    write_all(tmp_path / "f_%03d.png", gradient_frames(4))
    (tmp_path / "f_002.png").unlink()
    with pytest.raises(InputError, match="missing frames"):
        open_media(tmp_path / "f_%03d.png")
    with pytest.raises(InputError, match="No frames match"):
        open_media(tmp_path / "g_%03d.png")


def test_size_change_mid_sequence_raises_naming_the_frame(tmp_path):
    frames = gradient_frames(3)
    write_all(tmp_path / "s_%02d.png", frames[:2], start_number=0)
    write_all(tmp_path / "s_02.png", [np.zeros((H, W + 8, 3), np.uint8)])
    src = open_media(tmp_path / "s_%02d.png")
    with pytest.raises(InputError, match="frame 2 is 72x48"):
        list(src)


def test_size_change_mid_video_raises_naming_the_frame(tmp_path):
    small = make_clip(tmp_path / "a.h264", gradient_frames(3), Fraction(25))
    big = make_clip(tmp_path / "b.h264", [np.zeros((H * 2, W * 2, 3), np.uint8)] * 2, Fraction(25))
    joined = tmp_path / "joined.h264"
    joined.write_bytes(small.read_bytes() + big.read_bytes())
    src = open_media(joined)
    with pytest.raises(InputError, match="frame 3 is 128x96"):
        list(src)


def test_frames_of_another_size_are_refused_by_the_writer(tmp_path):
    with pytest.raises(InputError, match="frame 1 has shape"):
        write_all(tmp_path / "out.mkv", [np.zeros((H, W, 3), np.uint8),
                                         np.zeros((H, W // 2, 3), np.uint8)], fps=25)
    assert list(tmp_path.iterdir()) == []


def test_image_output_warns_when_source_audio_cannot_follow(tmp_path):
    src_path = make_clip(tmp_path / "src.mov", gradient_frames(2), Fraction(25), audio="aac")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        MediaWriter(tmp_path / "x_%04d.png", width=W, height=H, streams_from=src_path).abort()
    assert any("audio" in str(w.message) for w in caught)


# -- real media, when the research data folder is present ------------------------------------

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "realworld" / "whole"


@pytest.mark.parametrize("name", ["old_movie_2.mp4", "selfie_320x568.mp4"])
def test_real_clips_report_the_frames_and_rate_they_decode_to(name):
    """old_movie_2 has an edit list that discards 15 of 63 samples; the selfie's average
    rate is 345000000/11500001 although it is 30 fps."""
    path = SHARED / name
    if not path.is_file():
        pytest.skip("research media not present")
    src = open_media(path)
    assert src.fps.denominator in (1, 1001) or src.metadata.get("variable_frame_rate")
    assert src.frame_count == sum(1 for _ in src)
    last = src.frame_count - 1
    np.testing.assert_array_equal(src.read(last), list(src.frames(start=last))[0])


@pytest.mark.parametrize("bits,dtype", [(8, np.uint8), (16, np.uint16)])
def test_ffv1_pieces_are_joined_without_re_encoding(tmp_path, bits, dtype):
    """`dvface batch` joins its lossless pieces by copying packets: same frames, the pieces' exact bytes."""
    frames = np.random.default_rng(bits).integers(0, np.iinfo(dtype).max, (7, 24, 40, 3), dtype=dtype)
    pieces = []
    for i, (a, b) in enumerate([(0, 3), (3, 7)]):
        pieces.append(tmp_path / f"piece{i}.mkv")
        with MediaWriter(pieces[-1], fps=24, width=40, height=24, bit_depth=bits, codec="ffv1") as w:
            for frame in frames[a:b]:
                w.write(frame)
    out = tmp_path / "joined.mkv"
    with MediaWriter(out, fps=Fraction(24000, 1001), width=40, height=24, bit_depth=bits) as w:
        assert [w.append_video_from(p) for p in pieces] == [True, True]
    media = open_media(out)
    assert media.fps == Fraction(24000, 1001) and np.array_equal(np.stack(list(media)), frames)

    def payloads(path):
        with av.open(str(path)) as c:
            return [bytes(p) for p in c.demux(video=0) if p.size]

    assert payloads(out) == payloads(pieces[0]) + payloads(pieces[1])
    # a writer whose encoding differs (other codec or size) takes nothing and says so
    with MediaWriter(tmp_path / "other.mp4", fps=24, width=40, height=24, allow_bit_depth_loss=True) as w:
        assert not w.append_video_from(pieces[0])
        w.write(frames[0].astype(np.uint8) if dtype == np.uint8 else (frames[0] >> 8).astype(np.uint8))
    with MediaWriter(tmp_path / "wide.mkv", fps=24, width=42, height=24, bit_depth=bits) as w:
        assert not w.append_video_from(pieces[0])
        w.write(np.zeros((24, 42, 3), dtype))


def test_chroma_siting_is_read_from_how_frames_decode(tmp_path):
    """H.264 4:2:0 sits its chroma left, also when tagged BT.709 below HD (a web clip's 360p, whose
    untagged frames would convert as BT.601); FFV1 says nothing; flat frames cannot tell."""
    from dvface_plugin.media.pixels import chroma_siting

    rng = np.random.default_rng(0)
    textured = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    flat = np.full((48, 64, 3), 90, np.uint8)

    def decoded(codec: str, images: list[np.ndarray], colorspace: int = 2) -> list[av.VideoFrame]:
        path = tmp_path / f"{codec}-{len(images)}-{colorspace}.mkv"
        with av.open(str(path), "w") as container:
            stream = container.add_stream(codec, rate=25)
            stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
            stream.codec_context.colorspace = colorspace  # 2: unspecified, 1: BT.709
            for image in images:
                frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
                frame.colorspace = colorspace
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        with av.open(str(path)) as container:
            return list(container.decode(video=0))

    assert chroma_siting(decoded("libx264", [flat, textured])) == "left"  # the flat frame is passed over
    bt709 = decoded("libx264", [textured], colorspace=1)
    assert bt709[0].colorspace == 1 and chroma_siting(bt709) == "left"
    assert chroma_siting(decoded("ffv1", [textured])) is None
    assert chroma_siting(decoded("libx264", [flat])) is None


@pytest.mark.parametrize("field_order", [2, 3])  # FFmpeg's TT and BB
@pytest.mark.parametrize("out, codec", [("out.mp4", "h264"), ("out.mov", "prores")])
def test_interlaced_clips_are_coded_interlaced_in_their_field_order(tmp_path, field_order, out, codec):
    """H.264 and ProRes code the two fields of an interlaced clip apart, with their order in the bitstream:
    an .mp4 has no field order tag, and H.264 coded progressive read back progressive."""
    src = open_media(make_clip(tmp_path / "tape.mkv", gradient_frames(4), Fraction(25), "ffv1", "yuv420p",
                               field_order=field_order))
    write_all(tmp_path / out, list(src.frames()), fps=src.fps, codec=codec, metadata=src.metadata)
    with av.open(str(tmp_path / out)) as container:
        assert next(container.decode(video=0)).interlaced_frame
    assert first_field(open_media(tmp_path / out).metadata) == first_field(src.metadata) == field_order - 2
    with pytest.raises(InputError, match=r"interlaced 4:2:0 H.264 needs a height .* multiple of 4\), not 50"):
        MediaWriter(tmp_path / "odd.mp4", fps=25, width=W, height=50, metadata=src.metadata)
    with pytest.warns(MediaWarning, match=r"H.265 codes whole frames, so this interlaced clip reads back progressive"):
        MediaWriter(tmp_path / "h265.mp4", fps=25, width=W, height=H, codec="h265", metadata=src.metadata).abort()


def test_woven_fields_get_each_fields_own_chroma_in_4_2_0(tmp_path):
    """Interlaced 4:2:0 keeps a chroma row per field: a red top field and a blue bottom field must not
    come out as one purple."""
    src = tmp_path / "tape.mkv"
    with av.open(str(src), "w") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "yuv420p"
        container.mux(stream.encode(av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")))
        container.mux(stream.encode())
    woven = np.zeros((16, 16, 3), np.uint8)
    woven[0::2, :, 0] = 200  # top field red
    woven[1::2, :, 2] = 200  # bottom field blue
    chroma = {}
    for fields in (False, True):
        out = tmp_path / f"out_{fields}.mkv"
        with open_media(src) as source, MediaWriter(out, fps=25, width=16, height=16, planes_from=source,
                                                    woven_fields=fields) as writer:
            writer.write(woven, np.ones((16, 16), np.float32))
        with av.open(str(out)) as container:
            frame = next(container.decode(video=0))
            assert frame.format.name == "yuv420p"
            chroma[fields] = np.frombuffer(frame.planes[2], np.uint8).reshape(8, -1)[:, :8].astype(int)  # V
    assert np.ptp(chroma[False][1:-1, 4]) <= 1  # progressive subsampling averages the fields
    assert (chroma[True][0::2, 4] - chroma[True][1::2, 4] > 60).all()  # V: red rows above blue rows


def _dv_clip(path: Path, n: int = 4) -> Path:
    """A raw NTSC DV file (720x480 4:1:1, 30000/1001 fps), as a tape capture stores it."""
    with av.open(str(path), "w", format="dv") as container:
        stream = container.add_stream("dvvideo", rate=Fraction(30000, 1001))
        stream.width, stream.height, stream.pix_fmt = 720, 480, "yuv411p"
        for frame in random_frames(n, size=(480, 720)):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def test_a_dv_capture_reads_at_its_rate_bottom_field_first_and_keeps_its_4_1_1_samples(tmp_path):
    """Raw DV reports its time base (60000) as its average rate and tags no field order: the frames'
    even timestamps give 30000/1001, and SD DV is bottom field first by its standard. FFV1 keeps its
    4:1:1 samples, so those outside a face stay the source's."""
    src = open_media(_dv_clip(tmp_path / "tape.dv"))
    assert src.fps == Fraction(30000, 1001) and not src.metadata.get("variable_frame_rate")
    assert src.metadata["interlaced"] == "bottom field first" and src.pix_fmt == "yuv411p"
    matte = np.zeros((480, 720), np.float32)
    matte[100:200, 300:400] = 1
    out = tmp_path / "out.mkv"
    with MediaWriter(out, fps=src.fps, width=720, height=480, planes_from=src, metadata=src.metadata) as writer:
        for frame in src.frames():
            writer.write(255 - frame, matte)
    restored = open_media(out)
    assert restored.pix_fmt == "yuv411p" and restored.metadata["interlaced"] == "bottom field first"
    for a, b in zip(src.decoded_frames(), restored.decoded_frames(), strict=True):
        luma_a, luma_b = (np.frombuffer(f.planes[0], np.uint8).reshape(480, -1)[:, :720] for f in (a, b))
        outside = np.ones((480, 720), bool)
        outside[100:200, 300:400] = False
        assert np.array_equal(luma_a[outside], luma_b[outside]) and not np.array_equal(luma_a, luma_b)


def _dpx_scan(path: Path, codes: np.ndarray, pix_fmt: str = "gbrp10le") -> Path:
    """One DPX file of the (H, W, 3) RGB `codes` in `pix_fmt` (10 or 12 bits), as FFmpeg writes it."""
    frame = av.VideoFrame(codes.shape[1], codes.shape[0], pix_fmt)
    order = ">u2" if pix_fmt.endswith("be") else "<u2"
    for plane, channel in zip(frame.planes, (1, 2, 0)):  # g, b, r
        np.frombuffer(plane, order).reshape(plane.height, -1)[:, :codes.shape[1]] = codes[..., channel]
    codec = av.CodecContext.create("dpx", "w")
    codec.width, codec.height, codec.pix_fmt, codec.time_base = codes.shape[1], codes.shape[0], pix_fmt, Fraction(1, 24)
    path.write_bytes(b"".join(bytes(p) for p in (*codec.encode(frame), *codec.encode())))
    return path


def _dpx_codes(path: Path) -> np.ndarray:
    frame = next(av.open(str(path)).decode(video=0))
    order = ">u2" if frame.format.name.endswith("be") else "<u2"
    g, b, r = (np.frombuffer(p, order).reshape(p.height, -1)[:, :frame.width] for p in frame.planes[:3])
    return np.stack([r, g, b], axis=-1)


@pytest.mark.parametrize("pix_fmt,bits", [("gbrp10le", 10), ("gbrp12le", 12)])
def test_dpx_scans_are_written_back_at_their_depth_every_code_exact(tmp_path, pix_fmt, bits):
    """A 10- or 12-bit DPX scan goes through 16 bits and back to DPX with every code value it had
    (swscale's own scaling moved a third of the 10-bit codes by one), and to a 16-bit TIFF as the
    exactly scaled code."""
    codes = np.random.default_rng(bits).integers(0, 1 << bits, (6, 1 << (bits - 4), 3)).astype(np.uint16)
    codes[0, :16, 0] = np.arange(16)  # the smallest codes, where rounding slips first
    scan = _dpx_scan(tmp_path / "scan_0001.dpx", codes, pix_fmt)
    src = open_media(tmp_path / "scan_%04d.dpx")
    assert src.source_bits == bits
    picture = src.read(0)
    assert np.array_equal(picture, (codes.astype(np.uint32) * 131070 + (1 << bits) - 1) // (2 * ((1 << bits) - 1)))
    with MediaWriter(tmp_path / "out_%04d.dpx", width=codes.shape[1], height=6, bit_depth=bits,
                     metadata=src.metadata, planes_from=src) as writer:
        writer.write(picture)
    assert np.array_equal(_dpx_codes(tmp_path / "out_0001.dpx"), codes) and scan.is_file()


def test_a_restored_dpx_keeps_its_scans_header(tmp_path):
    """Transfer, reference codes, edge code, frame position and timecode come from the scan of the
    same frame, turned from the scan's big-endian order into the output's."""
    import struct

    for n in (11, 12):
        path = _dpx_scan(tmp_path / f"scan_{n:04d}.dpx", np.full((4, 8, 3), 500, np.uint16), "gbrp10be")
        data = bytearray(path.read_bytes())
        offset = struct.unpack(">I", data[4:8])[0]
        header, pixels = data[:offset].ljust(2048, b"\0"), data[offset:]
        header[801:803] = bytes([1, 1])  # printing density
        header[784:800] = struct.pack(">IfIf", 95, 0.0, 685, 2.048)  # Cineon black and white codes
        header[1664:1680] = b"KODAK5219\0\0\0\0\0\0\0"
        header[1712:1716] = struct.pack(">I", 86400 + n)  # frame position
        header[1920:1924] = struct.pack(">I", 0x01000000 + n)  # timecode 01:00:00:nn (BCD)
        header[1940:1944] = struct.pack(">f", 24.0)
        for at, value in ((4, 2048), (16, 2048 + len(pixels)), (28, 384), (808, 2048)):
            header[at:at + 4] = struct.pack(">I", value)
        path.write_bytes(bytes(header) + pixels)
    src = open_media(tmp_path / "scan_%04d.dpx")
    with MediaWriter(tmp_path / "out_%04d.dpx", width=8, height=4, bit_depth=10, metadata=src.metadata,
                     planes_from=src, trim=(1, 2)) as writer:
        writer.write(src.read(1))
    out = (tmp_path / "out_0012.dpx").read_bytes()
    assert out[:4] == b"XPDS" and out[801:803] == bytes([1, 1])
    assert struct.unpack("<IfIf", out[784:800]) == (95, 0.0, 685, pytest.approx(2.048))
    assert out[1664:1673] == b"KODAK5219" and struct.unpack("<I", out[1712:1716]) == (86412,)
    assert struct.unpack("<I", out[1920:1924]) == (0x01000000 + 12,) and struct.unpack("<f", out[1940:1944]) == (24.0,)
    assert struct.unpack("<I", out[4:8]) == (2048,) and struct.unpack("<I", out[16:20]) == (len(out),)
    assert np.array_equal(_dpx_codes(tmp_path / "out_0012.dpx"), np.full((4, 8, 3), 500))


@pytest.mark.parametrize("order", [">", "<"])
def test_cineon_scans_are_read_as_10_bit_and_written_back_with_their_header_every_code_exact(tmp_path, order):
    """FFmpeg reads no Cineon: media.cineon does, in either byte order, and a restored file is the
    scan's own header (label, transfer, film fields) with the codes packed as they were."""
    codes = np.random.default_rng(7).integers(0, 1024, (2, 6, 40, 3)).astype(np.uint16)
    codes[0, 0, :16, 0] = np.arange(16)
    scans = [cineon_scan(tmp_path / f"scan_{n:04d}.cin", codes[n], order) for n in range(2)]
    src = open_media(tmp_path / "scan_%04d.cin")
    assert (src.source_bits, src.frame_count, src.metadata["codec"]) == (10, 2, "cin")
    picture = src.read(1)
    assert np.array_equal(picture, (codes[1].astype(np.uint32) * 131070 + 1023) // 2046)  # exactly scaled
    with MediaWriter(tmp_path / "out_%04d.cin", width=40, height=6, bit_depth=10, metadata=src.metadata,
                     planes_from=src, trim=(1, 2)) as writer:
        picture[:2, :3] = 0  # a restored corner
        writer.write(picture)
    out, scan = (tmp_path / "out_0001.cin").read_bytes(), scans[1].read_bytes()
    assert len(out) == len(scan) and out[:1024] == scan[:1024] and LABEL in out
    again = open_media(tmp_path / "out_%04d.cin").read(0)
    assert np.array_equal(again[2:], src.read(1)[2:]) and not again[:2, :3].any()


def test_unread_cineon_variants_and_cineon_from_another_format_are_refused_whole(tmp_path):
    codes = np.zeros((4, 8, 3), np.uint16)
    cineon_scan(tmp_path / "grey_0001.cin", codes, channels=1)
    with pytest.raises(InputError, match=r"grey_0001.cin: only 3-channel 10-bit Cineon .*1 channel\(s\).*oiiotool"):
        open_media(tmp_path / "grey_%04d.cin")
    cineon_scan(tmp_path / "bits_0001.cin", codes, packing=0)
    with pytest.raises(InputError, match=r"packing 0.*convert the scans to 10-bit DPX"):
        open_media(tmp_path / "bits_%04d.cin")
    (tmp_path / "junk_0001.cin").write_bytes(b"\0" * 2000)
    with pytest.raises(InputError, match=r"not a Cineon file"):
        open_media(tmp_path / "junk_%04d.cin")
    cineon_scan(tmp_path / "cut_0001.cin", np.zeros((64, 64, 3), np.uint16))
    (tmp_path / "cut_0001.cin").write_bytes((tmp_path / "cut_0001.cin").read_bytes()[:3000])
    with pytest.raises(InputError, match=r"ends before its 64x64 pixels"):
        open_media(tmp_path / "cut_%04d.cin")
    png = MediaWriter(tmp_path / "p_%04d.png", width=8, height=4, bit_depth=8)
    png.write(np.zeros((4, 8, 3), np.uint8))
    png.close()
    with pytest.raises(InputError, match=r"a Cineon file is written only from the Cineon scan .* write .dpx"):
        MediaWriter(tmp_path / "o_%04d.cin", width=8, height=4, bit_depth=8, planes_from=open_media(tmp_path / "p_%04d.png"))
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((".o", "o_"))) == []


def test_a_restored_exr_keeps_its_plates_attributes(tmp_path):
    """Chromaticities, timecode, frame rate and a host's own attributes come from the plate of the
    same frame; FFmpeg's invented gamma does not appear; every float stays as written."""
    OpenEXR = pytest.importorskip("OpenEXR")
    frames = [np.random.default_rng(n).random((8, 12, 3)).astype(np.float32) * 4 for n in range(2)]
    for n, frame in enumerate(frames):
        header = {"compression": OpenEXR.PIZ_COMPRESSION, "type": OpenEXR.scanlineimage,
                  "chromaticities": (0.713, 0.293, 0.165, 0.830, 0.128, 0.044, 0.32168, 0.33767),  # AP1
                  "timeCode": OpenEXR.TimeCode(1, 0, 0, n, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
                  "framesPerSecond": Fraction(24), "nuke/node_hash": f"hash{n}"}
        with OpenEXR.File(header, {c: np.ascontiguousarray(frame[..., i]) for i, c in enumerate("RGB")}) as file:
            file.write(str(tmp_path / f"plate_{n + 1:04d}.exr"))
    src = open_media(tmp_path / "plate_%04d.exr")
    with MediaWriter(tmp_path / "out_%04d.exr", width=12, height=8, bit_depth=32, metadata=src.metadata,
                     planes_from=src, trim=(1, 2)) as writer:
        writer.write(src.read(1))
    with OpenEXR.File(str(tmp_path / "out_0002.exr"), separate_channels=True) as file:
        header = file.header()
        assert header["chromaticities"] == pytest.approx((0.713, 0.293, 0.165, 0.830, 0.128, 0.044, 0.32168, 0.33767))
        assert header["nuke/node_hash"] == "hash1" and header["framesPerSecond"] == 24 and "gamma" not in header
        assert (header["timeCode"].hours, header["timeCode"].frame) == (1, 1)
        restored = np.stack([file.channels()[c].pixels for c in "RGB"], axis=-1)
    assert restored.dtype == np.float32 and np.array_equal(restored, frames[1])


def test_a_half_float_exr_plate_is_written_back_in_half_without_asking(tmp_path):
    """A half plate comes back half (the .exr default for it), every value as it was, with no
    depth-loss refusal; a float plate stays float."""
    OpenEXR = pytest.importorskip("OpenEXR")
    plate = (np.random.default_rng(0).random((8, 12, 3)) * 6 - 1).astype(np.float16)  # above 1, below 0
    for name, dtype in (("half", np.float16), ("full", np.float32)):
        with OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage},
                          {c: np.ascontiguousarray(plate[..., i].astype(dtype)) for i, c in enumerate("RGB")}) as file:
            file.write(str(tmp_path / f"{name}_0001.exr"))
        src = open_media(tmp_path / f"{name}_%04d.exr")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with MediaWriter(tmp_path / f"{name}_out_%04d.exr", width=12, height=8, bit_depth=src.source_bits,
                             metadata=src.metadata, planes_from=src) as writer:
                writer.write(src.read(0))
        with OpenEXR.File(str(tmp_path / f"{name}_out_0001.exr"), separate_channels=True) as file:
            restored = np.stack([file.channels()[c].pixels for c in "RGB"], axis=-1)
        assert restored.dtype == dtype and np.array_equal(restored, plate.astype(dtype))


def _capture(path: Path, woven: str | None, n: int = 12) -> Path:
    """An FFV1 clip that tags no field order, as lossless captures of tape often are: a smooth
    pattern moving 8 pixels a field, its frames woven from two moments (`woven`: which field
    comes first, "top" or "bottom") or shot at one."""
    y, x = np.mgrid[0:48, 0:48]
    pattern = (127 + 100 * np.sin(x / 3.0) * np.cos(y / 4.0)).astype(np.uint8)[..., None].repeat(3, 2)

    def moment(t: int) -> np.ndarray:
        picture = np.full((96, 160, 3), 120, np.uint8)
        picture[24:72, 8 + 4 * t:56 + 4 * t] = pattern
        return picture

    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        for k in range(n):
            frame = moment(2 * k)
            if woven is not None:  # the second field's rows are a field period later
                second = 1 if woven == "top" else 0
                frame[second::2] = moment(2 * k + 1)[second::2]
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def test_a_capture_that_does_not_say_it_is_interlaced_is_found_so_by_its_frames(tmp_path):
    """Untagged woven frames get the field order FFmpeg's idet finds (and restore warns that it
    restores them by fields); progressive frames stay progressive."""
    from dvface_plugin.wholeframe.fields import restore_by_fields

    for woven, first in (("top", 0), ("bottom", 1)):
        src = open_media(_capture(tmp_path / f"{woven}.mkv", woven))
        assert src.metadata["field_order_found"] == 2 + first  # FFmpeg's TT or BB, found, not a tag to keep
        assert first_field(src.metadata) is None and "interlaced" not in src.metadata
        with pytest.warns(MediaWarning, match="does not say it is interlaced, but its frames are"):
            assert restore_by_fields(src.metadata, "tape.mkv", False) == first
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert restore_by_fields(src.metadata, "tape.mkv", False, quiet=True) == first
            assert restore_by_fields(src.metadata, "tape.mkv", True) is None
    for still in (_capture(tmp_path / "progressive.mkv", None), tmp_path / "noise.mkv"):
        if still.name == "noise.mkv":  # small noise frames, which idet reads as woven in most frames
            with MediaWriter(still, fps=25, width=32, height=32) as writer:
                for frame in np.random.default_rng(3).integers(0, 255, (14, 32, 32, 3), dtype=np.uint8):
                    writer.write(frame)
        metadata = open_media(still).metadata
        assert "field_order_found" not in metadata and restore_by_fields(metadata, still.name, False) is None


def _broadcast_mxf(path: Path, frames: list[np.ndarray], rate: Fraction = Fraction(25), audio: str = "pcm_s24le",
                   interlaced: bool = False, pixel_aspect: Fraction = Fraction(4, 3)) -> Path:
    """A 4:2:2 MPEG-2 MXF with timecode, anamorphic 16:9 pixels (by default) and 48 kHz audio, as broadcast
    archives hold XDCAM and IMX (`interlaced`: field-coded, as tape is)."""
    with av.open(str(path), "w") as container:
        options = {"b": "30M", **({"flags": "+ilme+ildct"} if interlaced else {})}
        video = container.add_stream("mpeg2video", rate=rate, options=options)
        video.width, video.height, video.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv422p"
        video.codec_context.sample_aspect_ratio = pixel_aspect
        if interlaced:
            video.codec_context.field_order = 2
        video.metadata["timecode"] = "10:00:00:00"
        sound = container.add_stream(audio, rate=48000)
        sound.layout = "stereo"
        per_frame = int(48000 / rate)
        for i, array in enumerate(frames):
            picture = av.VideoFrame.from_ndarray(array, format="rgb24").reformat(format="yuv422p")
            picture.pts = i
            for packet in video.encode(picture):
                container.mux(packet)
            tone = (np.sin(np.arange(i * per_frame, (i + 1) * per_frame) / 7) * 2e8).astype(np.int32)
            samples = av.AudioFrame.from_ndarray(np.repeat(tone, 2)[None], format="s32", layout="stereo")
            samples.sample_rate, samples.pts = 48000, i * per_frame
            for packet in sound.encode(samples):
                container.mux(packet)
        for stream in (video, sound):
            for packet in stream.encode(None):
                container.mux(packet)
    return path


def _audio_samples(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.concatenate([f.to_ndarray().ravel() for f in container.decode(audio=0)])


def test_an_mxf_is_written_back_as_mxf_with_its_samples_timecode_aspect_and_audio(tmp_path):
    """FFV1 in MXF (the .mxf default) keeps what a broadcast archive's MXF holds: the source's 4:2:2
    samples outside the faces, its timecode, pixel aspect and PCM audio untouched."""
    src = open_media(_broadcast_mxf(tmp_path / "xdcam.mxf", gradient_frames(6)))
    assert src.pix_fmt == "yuv422p" and first_field(src.metadata) is None
    matte = np.zeros((H, W), np.float32)
    matte[10:30, 20:40] = 1
    out = tmp_path / "restored.mxf"
    with MediaWriter(out, fps=src.fps, width=W, height=H, planes_from=src, metadata=src.metadata,
                     streams_from=src) as writer:
        for frame in src.frames():
            writer.write(255 - frame, matte)
    restored = open_media(out)
    with av.open(str(out)) as container:
        assert container.format.name == "mxf" and container.streams.video[0].codec_context.name == "ffv1"
    assert restored.pix_fmt == "yuv422p" and first_field(restored.metadata) is None
    assert restored.metadata["timecode"] == "10:00:00:00" and restored.metadata["pixel_aspect"] == Fraction(4, 3)
    assert (restored.fps, restored.frame_count) == (Fraction(25), 6)
    assert np.array_equal(_audio_samples(out), _audio_samples(tmp_path / "xdcam.mxf"))
    outside = matte == 0
    for a, b in zip(src.decoded_frames(), restored.decoded_frames(), strict=True):
        luma_a, luma_b = (np.frombuffer(f.planes[0], np.uint8).reshape(H, -1)[:, :W] for f in (a, b))
        assert np.array_equal(luma_a[outside], luma_b[outside]) and not np.array_equal(luma_a, luma_b)


@pytest.mark.parametrize("out, pixel_aspect", [("restored.mxf", Fraction(1)), ("restored.mov", Fraction(4, 3))])
def test_dnxhr_gives_an_avid_timeline_the_sources_timecode_aspect_audio_and_plate(tmp_path, out, pixel_aspect):
    """An XDCAM MXF restored for Avid: DNxHR HQ, 4:2:2 as the source, its timecode, pixel aspect and PCM
    kept, and the plate outside the faces within a level or two of the source (DNxHR is lossy)."""
    height, width = 144, 256
    yy, xx = np.mgrid[0:height, 0:width]
    frames = [np.stack([xx // 2 + 40 + i, yy + 50, np.full_like(xx, 90 + 20 * i)], -1).astype(np.uint8) for i in range(4)]
    src = open_media(_broadcast_mxf(tmp_path / "xdcam.mxf", frames, pixel_aspect=pixel_aspect))
    matte = np.zeros((height, width), np.float32)
    matte[40:90, 100:160] = 1
    out = tmp_path / out
    with MediaWriter(out, fps=src.fps, width=width, height=height, codec="dnxhr", planes_from=src,
                     metadata=src.metadata, streams_from=src) as writer:
        for frame in src.frames():
            writer.write(np.where(matte[..., None] == 1, 255 - frame, frame), matte)  # a composite, as restore's
    with av.open(str(out)) as container:
        video = container.streams.video[0].codec_context
        assert (video.name, video.profile) == ("dnxhd", "DNXHR HQ")
    restored = open_media(out)
    assert restored.pix_fmt == "yuv422p" and restored.metadata["timecode"] == "10:00:00:00"
    assert restored.metadata.get("pixel_aspect", 1) == src.metadata.get("pixel_aspect", 1) and restored.frame_count == 4
    assert np.array_equal(_audio_samples(out), _audio_samples(tmp_path / "xdcam.mxf"))
    inside, outside = matte == 1, matte == 0
    for a, b in zip(src.frames(), restored.frames(), strict=True):
        a, b = a.astype(int), b.astype(int)
        assert np.abs(a - b)[outside].mean() < 1.5 and np.abs(255 - a - b)[inside].mean() < 1.5


@pytest.mark.parametrize("source, width, codec, pix_fmt, pixel_aspect", [
    ("master.mov", 1920, "prores_ks", "yuv422p10le", Fraction(1)),  # DNxHD 220x
    ("hdv.mkv", 1440, "mpeg2video", "yuv422p", Fraction(4, 3))])  # DNxHD 145, anamorphic
def test_interlaced_hd_goes_into_mxf_as_interlaced_dnxhd(tmp_path, source, width, codec, pix_fmt, pixel_aspect):
    """A 1080i clip for an Avid timeline in MXF: DNxHD, coded field by field, reads back top field first,
    in the source's depth and pixel aspect, with its audio (FFV1, ProRes and DNxHR in MXF lose the order)."""
    yy, xx = np.mgrid[0:1080, 0:width]
    frames = [np.stack([xx // 8 + 20, yy // 5 + 30, xx * 0 + 60 + 30 * i], -1).astype(np.uint8) for i in range(3)]
    src = open_media(make_clip(tmp_path / source, frames, Fraction(25), codec, pix_fmt, audio="pcm_s16le",
                               field_order=2, sar=None if pixel_aspect == 1 else pixel_aspect))
    assert first_field(src.metadata) == 0
    out = tmp_path / "restored.mxf"
    with MediaWriter(out, fps=src.fps, width=width, height=1080, bit_depth=src.source_bits, codec="dnxhd",
                     planes_from=src, metadata=src.metadata, streams_from=src) as writer:
        for frame in src.frames():
            writer.write(frame)
    with av.open(str(out)) as container:
        video = container.streams.video[0].codec_context
        assert (video.name, video.profile) == ("dnxhd", "DNXHD")
    restored = open_media(out)
    assert restored.pix_fmt == pix_fmt and first_field(restored.metadata) == 0
    assert restored.metadata.get("pixel_aspect", 1) == pixel_aspect
    assert np.array_equal(_audio_samples(out), _audio_samples(tmp_path / source))
    level = 257 if src.source_bits > 8 else 1
    for a, b in zip(src.frames(), restored.frames(), strict=True):
        assert np.abs(a.astype(int) - b).mean() < 1.5 * level


@pytest.mark.parametrize("size, metadata, match", [
    ((1920, 1080), {}, r"DNxHD is written here for interlaced HD only; write this progressive clip as DNxHR"),
    ((1920, 1080), {"field_order": 3}, r"bottom field first, and DNxHD in MXF reads back top field first"),
    ((1280, 720), {"field_order": 2}, r"interlaced DNxHD holds 1920x1080 frames .* these are 1280x720 at 8 bits"),
    ((1440, 1080), {"field_order": 2}, r"DNxHD in MXF reads back as a 16:9 picture, and this clip's pixels \(1\)"),
])
def test_what_dnxhd_cannot_hold_is_refused_up_front(tmp_path, size, metadata, match):
    with pytest.raises(InputError, match=match):
        MediaWriter(tmp_path / "a.mxf", fps=25, width=size[0], height=size[1], codec="dnxhd", metadata=metadata)
    with pytest.raises(InputError, match=r"\.mov cannot hold dnxhd; .* a container that takes dnxhd: \.mxf"):
        output_spec(tmp_path / "a.mov", "dnxhd", 8)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("path, codec, bits, source, pix_fmt, profile", [
    ("a.mov", "dnxhr", 8, "yuv420p", "yuv422p", "dnxhr_hq"),
    ("a.mxf", "dnxhr", 10, "yuv422p10le", "yuv422p10le", "dnxhr_hqx"),
    ("a.mov", "dnxhr444", 10, "yuv444p10le", "yuv444p10le", "dnxhr_444"),
    ("a.mxf", "DNxHR_HQX", 8, None, "yuv422p", "dnxhr_hq")])
def test_dnxhr_takes_the_profile_that_keeps_the_sources_depth_and_chroma(tmp_path, path, codec, bits, source,
                                                                          pix_fmt, profile):
    spec = output_spec(tmp_path / path, codec, bits, source_pix_fmt=source)
    assert (spec.encoder, spec.pix_fmt, spec.bit_depth, spec.options["profile"]) == ("dnxhd", pix_fmt, bits, profile)
    assert not spec.warnings


@pytest.mark.parametrize("out, source, codec, pix_fmt", [
    ("a.mxf", "yuv422p10le", "dnxhr", "yuv422p10le"), ("a.mov", "yuv444p10le", "dnxhr444", "yuv444p10le")])
def test_an_avid_source_is_written_back_in_dnxhr_by_default(tmp_path, out, source, codec, pix_fmt):
    """An editor's DNxHR media restored into .mxf or .mov comes back in DNxHR, which the editor reads,
    not in FFV1 or ProRes; other sources keep the containers' defaults."""
    assert output_spec(tmp_path / out, None, 10, source_pix_fmt=source, source_codec="dnxhd") == \
        output_spec(tmp_path / out, codec, 10, source_pix_fmt=source)
    assert output_spec(tmp_path / out, None, 10, source_pix_fmt=source).encoder in ("ffv1", "prores_ks")
    assert output_spec(tmp_path / "a.mkv", None, 10, source_pix_fmt=source, source_codec="dnxhd").encoder == "ffv1"
    frames = [np.ascontiguousarray(np.tile(f, (3, 4, 1))) for f in gradient_frames(2)]  # 256 x 144
    src = open_media(make_clip(tmp_path / "avid.mov", frames, Fraction(25), "dnxhd", "yuv422p",
                               options={"profile": "dnxhr_hq"}))
    writer = MediaWriter(tmp_path / "back.mxf", fps=25, width=256, height=144, planes_from=src, metadata=src.metadata)
    assert (writer.spec.encoder, writer.spec.options["profile"]) == ("dnxhd", "dnxhr_hq")
    writer.abort()
    yy, xx = np.mgrid[0:1080, 0:1920]  # 1080i DNxHD: back into ProRes in .mov, which keeps it, and DNxHD in .mxf
    hd = [np.stack([xx % 256, yy % 256, xx * 0 + 9 * i], -1).astype(np.uint8) for i in range(2)]
    src = open_media(make_clip(tmp_path / "avid.mxf", hd, NTSC * Fraction(5, 4), "dnxhd", "yuv422p",
                               options={"profile": "dnxhd", "b": "145M", "flags": "+ildct"}))
    assert first_field(src.metadata) == 0
    for back, encoder, profile in (("back.mov", "prores_ks", "hq"), ("back.mxf", "dnxhd", "dnxhd")):
        writer = MediaWriter(tmp_path / back, fps=src.fps, width=1920, height=1080, planes_from=src,
                             metadata=src.metadata)
        assert (writer.spec.encoder, writer.spec.options["profile"]) == (encoder, profile)
        writer.abort()


def test_what_dnxhr_cannot_hold_is_refused_or_said_up_front(tmp_path):
    spec = output_spec(tmp_path / "a.mov", "dnxhr", 8, source_pix_fmt="yuv444p")
    assert spec.pix_fmt == "yuv422p"
    assert spec.warnings == ("a.mov: DNxHR HQ/HQX halves the source's 4:4:4 chroma; use codec dnxhr444 to keep it.",)
    with pytest.raises(InputError, match=r"\.mkv cannot hold dnxhr; .* a container that takes dnxhr: \.mov, \.mxf"):
        output_spec(tmp_path / "a.mkv", "dnxhr", 8)
    with pytest.raises(InputError, match="16-bit; write .mkv"):
        output_spec(tmp_path / "a.mov", "dnxhr", 16)
    with pytest.raises(InputError, match=r"DNxHR needs frames of at least 256x120, these are 255x120; write ProRes"):
        MediaWriter(tmp_path / "b.mov", fps=25, width=255, height=120, codec="dnxhr444")
    with pytest.raises(InputError, match=r"DNxHR would make this interlaced clip read back as progressive .* write "
                                         r"ProRes \(\.mov\) or \.mkv \(FFV1\), which keep the field order"):
        MediaWriter(tmp_path / "c.mov", fps=25, width=256, height=144, codec="dnxhr", metadata={"field_order": 2})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("make, match", [
    (lambda d: make_clip(d / "a.mkv", gradient_frames(4), Fraction(12), "ffv1", "yuv422p"),
     r"only the broadcast frame rates .* not 12 fps; write \.mov or \.mkv"),
    (lambda d: _broadcast_mxf(d / "a.mxf", gradient_frames(4), interlaced=True),
     r"interlaced clip's field order cannot be recorded in MXF .* write \.mkv \(FFV1\) or \.mov"),
    (lambda d: make_clip(d / "a.mkv", gradient_frames(4), Fraction(25), "ffv1", "yuv422p", audio="aac"),
     r"aac audio at 48000 Hz; \.mxf holds only 48 kHz 16- or 24-bit PCM"),
    (lambda d: _broadcast_mxf(d / "a.mxf", [np.ascontiguousarray(np.tile(f, (3, 4, 1))) for f in gradient_frames(2)]),
     r"DNxHR in MXF would read back with square pixels, and this clip's are \d+/\d+ \(anamorphic\); write DNxHR in \.mov"),
])
def test_what_mxf_cannot_hold_is_refused_before_any_frame_and_leaves_nothing(tmp_path, make, match):
    src = open_media(make(tmp_path))
    with pytest.raises(InputError, match=match):
        MediaWriter(tmp_path / "out.mxf", fps=src.fps, width=src.width, height=src.height,
                    codec="dnxhr" if "DNxHR" in match else None, planes_from=src, metadata=src.metadata,
                    streams_from=src)
    assert sorted(p.name for p in tmp_path.iterdir()) == [src.path.name]


def _subtitled(path: Path, frames: list[np.ndarray], lines: dict[int, str]) -> Path:
    """A 25 fps clip with a subtitle track, `lines[n]` shown from frame n for 0.2 s: FFV1 and SubRip
    in .mkv, ProRes and a QuickTime text track (mov_text) in .mov."""
    mov = path.suffix == ".mov"
    with av.open(str(path), "w") as container:
        video = container.add_stream("prores_ks" if mov else "ffv1", rate=25)
        video.width, video.height = frames[0].shape[1], frames[0].shape[0]
        video.pix_fmt = "yuv422p10le" if mov else "yuv420p"
        text = container.add_mux_stream("mov_text" if mov else "subrip")
        text.time_base = Fraction(1, 1000)
        container.start_encoding()
        for i, array in enumerate(frames):
            picture = av.VideoFrame.from_ndarray(array, format="rgb24")
            picture.pts = i
            for packet in video.encode(picture):
                container.mux(packet)
            if i in lines:
                line = lines[i].encode()
                packet = av.Packet(len(line).to_bytes(2, "big") + line if mov else line)
                packet.pts = packet.dts = i * 40
                packet.duration, packet.stream, packet.time_base = 200, text, text.time_base
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
    return path


def _subtitles(path: Path) -> list[tuple[float, bytes]]:
    """(seconds, payload) of each subtitle shown (not the empty samples QuickTime muxers put in gaps)."""
    with av.open(str(path)) as container:
        stream = container.streams.subtitles[0]
        return [(round(float(p.pts * p.time_base), 3), bytes(p)) for p in container.demux(stream)
                if p.size and bytes(p) != b"\x00\x00"]


def _rewrite(src, out: Path, frames: range | None = None, **options) -> Path:
    first, stop = (0, src.frame_count) if frames is None else (frames.start, frames.stop)
    with MediaWriter(out, fps=src.fps, width=W, height=H, bit_depth=src.source_bits, streams_from=src,
                     metadata=src.metadata, trim=None if frames is None else (first, stop), **options) as writer:
        for frame in src.frames(first, stop):
            writer.write(frame)
    return out


def test_subtitles_are_carried_untouched_and_cut_with_a_frame_range(tmp_path):
    """Captions and subtitle tracks are part of what an archive keeps: copied packet for packet,
    shifted with the frames a `--frames` range keeps; where the output's container cannot hold them
    they are refused, naming one that can, unless dropped explicitly."""
    src = open_media(_subtitled(tmp_path / "film.mkv", gradient_frames(10), {0: "one", 5: "two", 8: "three"}))
    assert src.has_subtitles and not src.has_audio
    assert _subtitles(_rewrite(src, tmp_path / "whole.mkv")) == [(0.0, b"one"), (0.2, b"two"), (0.32, b"three")]
    assert _subtitles(_rewrite(src, tmp_path / "part.mkv", range(4, 9))) == [(0.04, b"two"), (0.16, b"three")]
    with pytest.raises(InputError, match=r"film.mkv has srt subtitles, which \.mp4 cannot hold; write \.mkv to keep "
                                         r"them as they are, or drop them explicitly \(--drop-subtitles\)"):
        _rewrite(src, tmp_path / "out.mp4")
    assert not (tmp_path / "out.mp4").exists()
    with av.open(str(_rewrite(src, tmp_path / "out.mp4", drop_subtitles=True))) as container:
        assert not container.streams.subtitles
    with pytest.warns(MediaWarning, match="image files cannot carry audio or subtitles"):
        MediaWriter(tmp_path / "still.png", width=W, height=H, streams_from=src).abort()
    # A QuickTime capture's text track stays in .mov; Matroska cannot hold it, so .mkv names .mov.
    quicktime = open_media(_subtitled(tmp_path / "tape.mov", gradient_frames(6), {2: "caption"}))
    assert _subtitles(_rewrite(quicktime, tmp_path / "restored.mov")) == [(0.08, b"\x00\x07caption")]
    with pytest.raises(InputError, match=r"tape.mov has mov_text subtitles, which \.mkv cannot hold; write \.mov"):
        _rewrite(quicktime, tmp_path / "restored.mkv")
    assert not (tmp_path / "restored.mkv").exists()


def test_chapters_are_carried_and_cut_with_a_frame_range(tmp_path):
    """A tape transfer's chapter marks (mkv/mp4/mov) stay on the restored file, cut and retimed with
    a `--frames` range."""
    path = make_clip(tmp_path / "tape.mkv", gradient_frames(20), Fraction(25), "ffv1", "yuv420p")
    with av.open(str(path)) as src, av.open(str(tmp_path / "marked.mkv"), "w") as out:
        video = out.add_stream_from_template(src.streams.video[0])
        out.set_chapters([{"id": n + 1, "start": 4000 * n, "end": 4000 * (n + 1), "time_base": Fraction(1, 10000),
                           "metadata": {"title": title}} for n, title in enumerate(("Intro", "Interview"))])
        for packet in src.demux(src.streams.video[0]):
            if packet.size:
                packet.stream = video
                out.mux(packet)
    src = open_media(tmp_path / "marked.mkv")

    def chapters(path: Path) -> list[tuple[float, float, str]]:
        with av.open(str(path)) as container:
            return [(round(float(c["start"] * c["time_base"]), 3), round(float(c["end"] * c["time_base"]), 3),
                     c["metadata"]["title"]) for c in container.chapters()]

    assert chapters(_rewrite(src, tmp_path / "whole.mkv")) == [(0.0, 0.4, "Intro"), (0.4, 0.8, "Interview")]
    assert chapters(_rewrite(src, tmp_path / "part.mov", range(5, 15))) == [(0.0, 0.2, "Intro"), (0.2, 0.4, "Interview")]
    assert chapters(_rewrite(src, tmp_path / "late.mkv", range(12, 20))) == [(0.0, 0.32, "Interview")]


def test_audio_and_subtitle_tracks_keep_their_language_title_and_disposition(tmp_path):
    """A multilingual transfer's tracks stay named and chosen as they were (players list and pick
    tracks by these), not 'Track 1' and 'Track 2'."""
    path = tmp_path / "bilingual.mkv"
    with av.open(str(path), "w") as container:
        video = container.add_stream("ffv1", rate=25)
        video.width, video.height, video.pix_fmt = W, H, "yuv420p"
        voices = []
        for lang, default in (("eng", False), ("fra", True)):
            voice = container.add_stream("pcm_s16le", rate=48000)
            voice.layout = "stereo"
            voice.metadata.update({"language": lang, "title": f"{lang} mix"})
            voice.disposition = av.stream.Disposition.default if default else av.stream.Disposition(0)
            voices.append(voice)
        text = container.add_mux_stream("subrip")
        text.time_base = Fraction(1, 1000)
        text.metadata["language"] = "deu"
        text.disposition = av.stream.Disposition.forced
        for i, array in enumerate(gradient_frames(4)):
            picture = av.VideoFrame.from_ndarray(array, format="rgb24")
            picture.pts = i
            for packet in video.encode(picture):
                container.mux(packet)
            for voice in voices:
                sound = av.AudioFrame.from_ndarray(np.zeros((1, 2 * 1920), np.int16), format="s16", layout="stereo")
                sound.sample_rate, sound.pts = 48000, i * 1920
                for packet in voice.encode(sound):
                    container.mux(packet)
        for stream in (video, *voices):
            for packet in stream.encode(None):
                container.mux(packet)

    def tracks(path: Path) -> list[tuple[str, str | None, str | None, int]]:
        with av.open(str(path)) as container:
            return [(s.type, s.metadata.get("language"), s.metadata.get("title"), int(s.disposition))
                    for s in container.streams if s.type != "video"]

    assert tracks(_rewrite(open_media(path), tmp_path / "restored.mkv")) == tracks(path) == [
        ("audio", "eng", "eng mix", 0), ("audio", "fra", "fra mix", int(av.stream.Disposition.default)),
        ("subtitle", "deu", None, int(av.stream.Disposition.forced))]


def test_a_source_alpha_channel_that_is_not_written_is_said(tmp_path):
    """An RGBA plate's alpha cannot go into a JPEG: the writer says so instead of dropping it silently."""
    frame = av.VideoFrame.from_ndarray(np.full((H, W, 4), 200, np.uint8), format="rgba")
    codec = av.CodecContext.create("png", "w")
    codec.width, codec.height, codec.pix_fmt = W, H, "rgba"
    png = b"".join(bytes(p) for p in (*codec.encode(frame), *codec.encode()))
    for n in (1, 2):
        (tmp_path / f"key_{n:04d}.png").write_bytes(png)
    src = open_media(tmp_path / "key_%04d.png")
    with pytest.warns(MediaWarning, match=r"out_%04d.jpg: key_%04d.png has an alpha channel, which this output "
                                          r"does not hold"):
        MediaWriter(tmp_path / "out_%04d.jpg", width=W, height=H, planes_from=src, metadata=src.metadata).abort()
    plain = open_media(make_clip(tmp_path / "plain.mkv", gradient_frames(2), Fraction(25), "ffv1", "yuv420p"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        MediaWriter(tmp_path / "out.mkv", fps=25, width=W, height=H, planes_from=plain, metadata=plain.metadata).abort()


def test_cover_art_is_not_taken_for_the_clip_and_other_video_streams_are_said(tmp_path):
    """A clip whose file lists cover art first is still read as the clip; a second camera angle in the
    same file is not restored or written, and the writer says so."""
    frames = gradient_frames(3)
    path = tmp_path / "angles.mov"
    with av.open(str(path), "w") as container:
        art = container.add_stream("png", rate=1)
        art.width, art.height, art.pix_fmt = 32, 32, "rgb24"
        art.disposition = av.stream.Disposition.attached_pic
        angles = [container.add_stream("prores_ks", rate=25) for _ in range(2)]
        for angle in angles:
            angle.width, angle.height, angle.pix_fmt = W, H, "yuv422p10le"
        cover = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
        for packet in (*art.encode(cover), *art.encode(None)):
            container.mux(packet)
        for i, array in enumerate(frames):
            for k, angle in enumerate(angles):
                picture = av.VideoFrame.from_ndarray(array if k == 0 else 255 - array, format="rgb24")
                picture.pts = i
                for packet in angle.encode(picture):
                    container.mux(packet)
        for angle in angles:
            for packet in angle.encode(None):
                container.mux(packet)
    src = open_media(path)
    assert (src.width, src.height, src.frame_count, src.metadata["other_video_streams"]) == (W, H, 3, 1)
    assert np.abs(src.read(1) / 257 - frames[1]).mean() < 3  # (16-bit) the first angle, not the cover or the second
    with pytest.warns(MediaWarning, match=r"out.mkv: angles.mov has 1 more video stream; only the first is restored"):
        MediaWriter(tmp_path / "out.mkv", fps=25, width=W, height=H, bit_depth=src.source_bits, planes_from=src,
                    metadata=src.metadata).abort()


def _captioned_m2v(path: Path, frames: list[np.ndarray]) -> Path:
    """An MPEG-2 stream whose pictures carry captions as broadcast sends them (ATSC A/53 'GA94' user data
    before each picture's first slice: picture i a CEA-608 pair 0x94, 0x20 + i, and a CEA-708 one),
    made by inserting that user data into plain PyAV output."""
    codec = av.CodecContext.create("mpeg2video", "w")
    codec.width, codec.height, codec.pix_fmt = W, H, "yuv420p"
    codec.framerate, codec.time_base = Fraction(25), Fraction(1, 25)
    codec.gop_size = 1  # decode order = display order: picture i's user data stays with frame i
    stream, i = b"", 0
    for n, array in enumerate([*frames, None]):
        picture = None if array is None else av.VideoFrame.from_ndarray(array, format="rgb24").reformat(format="yuv420p")
        if picture is not None:
            picture.pts = n
        for packet in codec.encode(picture):
            cc_data = b"\x00\x00\x01\xb2GA94\x03" + bytes([0x40 | 2, 0xFF, 0xFC, 0x94, 0x20 + i, 0xFF, 0x03, 0x10, 0xFF])
            data = bytes(packet)
            first_slice = data.find(b"\x00\x00\x01\x01")
            stream += data[:first_slice] + cc_data + data[first_slice:]
            i += 1
    path.write_bytes(stream)
    return path


def _caption_packets(path: Path) -> list[tuple[int, bytes]]:
    with av.open(str(path)) as container:
        track = next(s for s in container.streams if s.codec_context and s.codec_context.codec_tag == "c608")
        return [(p.pts, bytes(p)) for p in container.demux(track) if p.size]


def test_closed_captions_inside_the_video_stream_go_into_a_mov_caption_track_or_are_said_to_be_left_out(tmp_path):
    """Broadcast captures carry their captions in the video stream itself, which re-encoding drops: a .mov
    output keeps their CEA-608 pairs, frame for frame (also for --frames and joined batch pieces), in a
    caption track; an output that cannot hold them says so; a clip without them gets neither."""
    frames = gradient_frames(4)
    src = open_media(_captioned_m2v(tmp_path / "news.m2v", frames))
    assert src.metadata["captions"] and src.frame_count == 4
    # A raw stream's demuxer seeks past the frame asked for: read from the start instead (was frame 3 for 2)
    assert [np.abs(a.astype(int) - b).mean() < 3 for a, b in zip(src.frames(2, 4), frames[2:], strict=True)] == [True] * 2
    with pytest.warns(MediaWarning, match=r"out.mkv: news.m2v carries closed captions \(CEA-608/708\) inside its "
                                          r"video stream, which only a \.mov output keeps here"):
        MediaWriter(tmp_path / "out.mkv", fps=25, width=W, height=H, planes_from=src, metadata=src.metadata).abort()
    pair = lambda i: bytes([0xFC, 0x94, 0x20 + i])  # noqa: E731  (the 708 triplet is not CEA-608)
    with pytest.warns(MediaWarning, match="captions"):  # `dvface batch`'s pieces: FFV1 in the source's format
        pieces = [write_all(tmp_path / f"piece{k}.mkv", frames[k * 2:k * 2 + 2], fps=25, codec="ffv1",
                            planes_from=src, trim=(k * 2, k * 2 + 2)) for k in (0, 1)]
    with warnings.catch_warnings():
        warnings.simplefilter("error", MediaWarning)
        with MediaWriter(tmp_path / "all.mov", fps=25, width=W, height=H, planes_from=src, metadata=src.metadata) as writer:
            for frame in src.frames():
                writer.write(frame)
        with MediaWriter(tmp_path / "part.mov", fps=25, width=W, height=H, planes_from=src, metadata=src.metadata,
                         trim=(1, 3)) as writer:
            for frame in src.frames(1, 3):
                writer.write(frame)
        with MediaWriter(tmp_path / "joined.mov", fps=25, width=W, height=H, codec="h264", planes_from=src,
                         metadata=src.metadata) as writer:
            assert all(writer.append_video_from(piece) for piece in pieces)
    assert _caption_packets(tmp_path / "all.mov") == [(i, pair(i)) for i in range(4)]
    assert _caption_packets(tmp_path / "part.mov") == [(0, pair(1)), (1, pair(2))]
    assert _caption_packets(tmp_path / "joined.mov") == [(i, pair(i)) for i in range(4)]
    plain = open_media(make_clip(tmp_path / "plain.mkv", gradient_frames(2), Fraction(25), "mpeg2video"))
    assert "captions" not in plain.metadata
    with warnings.catch_warnings():
        warnings.simplefilter("error", MediaWarning)
        write_all(tmp_path / "plain.mov", list(plain.frames()), fps=25, planes_from=plain, metadata=plain.metadata)
    with av.open(str(tmp_path / "plain.mov")) as container:
        assert len(container.streams) == 1


@pytest.mark.parametrize("name, codec, pix_fmt", [("camera.avi", "mjpeg", "yuvj420p"), ("phone.mp4", "libx264", "yuvj420p"),
                                                  ("camera422.avi", "mjpeg", "yuvj422p")])
def test_a_full_range_source_keeps_its_samples_and_range(tmp_path, name, codec, pix_fmt):
    """Motion-JPEG camera clips and phones' full-range H.264 decode as JPEG-range YUV: FFV1 stores
    those samples as they are (tagged full range) instead of turning the clip into RGB, and the
    restored faces are converted to the same range."""
    frames = gradient_frames(4)
    src = open_media(make_clip(tmp_path / name, frames, Fraction(25), codec, pix_fmt))
    assert src.pix_fmt == pix_fmt
    matte = np.zeros((H, W), np.float32)
    matte[10:30, 20:40] = 1
    face = np.full((H, W, 3), (200, 120, 60), np.uint8)
    with MediaWriter(tmp_path / "out.mkv", fps=src.fps, width=W, height=H, planes_from=src,
                     metadata=src.metadata) as writer:
        for _ in src.frames():
            writer.write(face, matte)
    with av.open(str(tmp_path / "out.mkv")) as container:
        decoded = list(container.decode(video=0))
    assert decoded[0].format.name == pix_fmt.replace("yuvj", "yuv") and decoded[0].color_range == 2
    outside = matte == 0
    for a, b in zip(src.decoded_frames(), decoded, strict=True):
        luma_a, luma_b = (np.frombuffer(f.planes[0], np.uint8).reshape(H, -1)[:, :W] for f in (a, b))
        assert np.array_equal(luma_a[outside], luma_b[outside])
    restored = open_media(tmp_path / "out.mkv").read(1)
    assert np.abs(restored[12:28, 22:38].astype(int) - face[12:28, 22:38]).max() <= 2  # not range-shifted


@pytest.mark.parametrize("name, pix_fmt, stored", [("capture.mov", "uyvy422", "yuv422p"),
                                                   ("capture.avi", "yuyv422", "yuv422p"), ("capture.avi", "nv12", "yuv420p")])
def test_packed_and_semi_planar_captures_keep_their_samples(tmp_path, name, pix_fmt, stored):
    """Uncompressed 8-bit 4:2:2 captures (QuickTime 2vuy, AVI YUY2) and NV12 decode to packed or
    semi-planar layouts: FFV1 stores the same samples planar instead of turning the clip into RGB."""
    src = open_media(make_clip(tmp_path / name, gradient_frames(3), Fraction(25), "rawvideo", pix_fmt))
    assert src.pix_fmt == pix_fmt
    matte = np.zeros((H, W), np.float32)
    matte[10:30, 20:40] = 1
    with MediaWriter(tmp_path / "out.mkv", fps=src.fps, width=W, height=H, planes_from=src,
                     metadata=src.metadata) as writer:
        for frame in src.frames():
            writer.write(255 - frame, matte)
    with av.open(str(tmp_path / "out.mkv")) as container:
        decoded = list(container.decode(video=0))
    assert decoded[0].format.name == stored
    luma_at = {"uyvy422": (1, 2), "yuyv422": (0, 2), "nv12": (0, 1)}[pix_fmt]  # first luma byte, step
    outside = matte == 0
    for a, b in zip(src.decoded_frames(), decoded, strict=True):
        raw = np.frombuffer(a.planes[0], np.uint8).reshape(H, -1)
        luma_a = raw[:, luma_at[0]::luma_at[1]][:, :W]
        luma_b = np.frombuffer(b.planes[0], np.uint8).reshape(H, -1)[:, :W]
        assert np.array_equal(luma_a[outside], luma_b[outside]) and not np.array_equal(luma_a, luma_b)


@pytest.mark.parametrize("pix_fmt, bits", [("gray", 8), ("gray10le", 10), ("gray16le", 16)])
def test_a_black_and_white_transfer_stays_grey_at_its_depth(tmp_path, pix_fmt, bits):
    """Black-and-white film transfers kept as grey FFV1 come back grey at their depth, every sample
    outside the faces the source's, not as three times the data in RGB."""
    grey = [np.repeat(f[..., :1], 3, axis=-1).astype(np.uint16 if bits > 8 else np.uint8) * (257 if bits > 8 else 1)
            for f in gradient_frames(3)]
    src = open_media(make_clip(tmp_path / "film.mkv", grey, Fraction(24), "ffv1", pix_fmt))
    assert src.pix_fmt == pix_fmt
    matte = np.zeros((H, W), np.float32)
    matte[10:30, 20:40] = 1
    with MediaWriter(tmp_path / "out.mkv", fps=src.fps, width=W, height=H, bit_depth=src.source_bits,
                     planes_from=src, metadata=src.metadata) as writer:
        for frame in src.frames():
            writer.write(frame[::-1].copy(), matte)  # the faces: other (grey) samples
    with av.open(str(tmp_path / "out.mkv")) as container:
        decoded = list(container.decode(video=0))
    assert decoded[0].format.name == pix_fmt
    dtype = np.uint8 if bits == 8 else np.uint16
    outside = matte == 0
    for a, b, frame in zip(src.decoded_frames(), decoded, src.frames(), strict=True):
        luma_a, luma_b = (np.frombuffer(f.planes[0], dtype).reshape(H, -1)[:, :W] for f in (a, b))
        assert np.array_equal(luma_a[outside], luma_b[outside])
        flipped = np.frombuffer(a.planes[0], dtype).reshape(H, -1)[:, :W][::-1]
        assert np.array_equal(luma_b[~outside], flipped[~outside])  # grey in, the same grey out, exactly


@pytest.mark.parametrize("ext, pix_fmt, dtype", [(".png", "gray", "u1"), (".png", "gray16be", ">u2"),
                                                 (".tif", "gray16le", "<u2"), (".exr", "grayf32le", "<f4")])
def test_black_and_white_scans_are_written_back_grey(tmp_path, ext, pix_fmt, dtype):
    """A sequence of grey scans comes back grey at its depth (float stays float), each sample where
    it was, instead of three identical RGB channels."""
    codec = av.CodecContext.create({".png": "png", ".tif": "tiff", ".exr": "exr"}[ext], "w")
    codec.width, codec.height, codec.pix_fmt = W, H, pix_fmt
    rng = np.random.default_rng(0)
    planes = []
    for n in (1, 2):
        frame = av.VideoFrame(W, H, pix_fmt)
        samples = np.frombuffer(frame.planes[0], dtype).reshape(H, -1)[:, :W]
        samples[...] = rng.random((H, W)) * 2 if dtype == "<f4" else rng.integers(0, np.iinfo(dtype).max, (H, W))
        planes.append(samples.copy())
        (tmp_path / f"scan_{n:04d}{ext}").write_bytes(b"".join(bytes(p) for p in (*codec.encode(frame), *codec.encode())))
        codec = av.CodecContext.create(codec.name, "w")
        codec.width, codec.height, codec.pix_fmt = W, H, pix_fmt
    src = open_media(tmp_path / f"scan_%04d{ext}")
    with MediaWriter(tmp_path / f"out_%04d{ext}", width=W, height=H, bit_depth=src.source_bits, planes_from=src,
                     metadata=src.metadata) as writer:
        for frame in src.frames():
            writer.write(frame[::-1].copy())
    for n, samples in zip((1, 2), planes):
        with av.open(str(tmp_path / f"out_{n:04d}{ext}")) as container:
            out = next(container.decode(video=0))
        assert out.format.name == pix_fmt
        assert np.array_equal(np.frombuffer(out.planes[0], dtype).reshape(H, -1)[:, :W], samples[::-1])


@pytest.mark.parametrize("ext, pix_fmt, dtype", [(".png", "rgba", "u1"), (".png", "rgba64be", ">u2"),
                                                 (".tif", "rgba64le", "<u2"), (".exr", "gbrapf32le", "<f4")])
def test_a_keyed_plate_keeps_its_alpha(tmp_path, ext, pix_fmt, dtype):
    """An RGBA sequence (a keyed plate, a scan with a matte) is written back with its alpha as it was,
    in its own format and depth; only the colour is restored."""
    rng = np.random.default_rng(1)
    alphas = []
    for n in (1, 2):
        frame = av.VideoFrame(W, H, pix_fmt)
        if pix_fmt.startswith("gbrap"):
            for plane in frame.planes:
                np.frombuffer(plane, dtype).reshape(H, -1)[:, :W] = rng.random((H, W))
            alpha = np.frombuffer(frame.planes[3], dtype).reshape(H, -1)[:, :W]
        else:
            packed = np.frombuffer(frame.planes[0], dtype).reshape(H, -1)[:, :4 * W].reshape(H, W, 4)
            packed[...] = rng.integers(0, np.iinfo(dtype).max, (H, W, 4))
            alpha = packed[..., 3]
        alphas.append(alpha.copy())
        codec = av.CodecContext.create({".png": "png", ".tif": "tiff", ".exr": "exr"}[ext], "w")
        codec.width, codec.height, codec.pix_fmt = W, H, pix_fmt
        (tmp_path / f"key_{n:04d}{ext}").write_bytes(b"".join(bytes(p) for p in (*codec.encode(frame), *codec.encode())))
    src = open_media(tmp_path / f"key_%04d{ext}")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is left out, so nothing is said
        with MediaWriter(tmp_path / f"out_%04d{ext}", width=W, height=H, bit_depth=src.source_bits, planes_from=src,
                         metadata=src.metadata) as writer:
            for frame in src.frames():
                writer.write(frame[::-1].copy())
    for n, alpha, frame in zip((1, 2), alphas, src.frames()):
        with av.open(str(tmp_path / f"out_{n:04d}{ext}")) as container:
            out = next(container.decode(video=0))
        assert out.format.name == pix_fmt
        if pix_fmt.startswith("gbrap"):
            got = np.frombuffer(out.planes[3], dtype).reshape(H, -1)[:, :W]
        else:
            got = np.frombuffer(out.planes[0], dtype).reshape(H, -1)[:, :4 * W].reshape(H, W, 4)[..., 3]
        assert np.array_equal(got, alpha)
        assert np.array_equal(open_media(tmp_path / f"out_{n:04d}{ext}").read(0), frame[::-1])


@pytest.mark.parametrize("name, codec, pix_fmt, out_name, exact", [
    ("key.mkv", "ffv1", "yuva420p", "out.mkv", True),          # FFV1 with alpha: everything exact
    ("key.mov", "prores_ks", "yuva444p10le", "out.mov", False),  # ProRes 4444 with alpha: lossy colour
])
def test_a_video_with_alpha_keeps_it(tmp_path, name, codec, pix_fmt, out_name, exact):
    """Graphics and keyed shots delivered with alpha (ProRes 4444, FFV1 YUVA) come back with the
    source's alpha everywhere, faces included; only the colour is restored."""
    rng = np.random.default_rng(2)

    def random_alpha(frame: av.VideoFrame) -> None:
        alpha = np.frombuffer(frame.planes[3], np.uint8 if pix_fmt == "yuva420p" else "<u2")
        alpha[...] = rng.integers(0, 255 if pix_fmt == "yuva420p" else 1023, alpha.size)

    options = {"profile": "4444", "alpha_bits": "16"} if codec == "prores_ks" else {}
    src = open_media(make_clip(tmp_path / name, gradient_frames(3), Fraction(25), codec, pix_fmt, options=options,
                               edit=random_alpha))
    assert src.pix_fmt.startswith("yuva") and src.metadata["alpha"]
    matte = np.zeros((H, W), np.float32)
    matte[10:30, 20:40] = 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is left out, so nothing is said
        # ProRes decodes at 12 bits and codes at 10: the colour's loss is allowed (and said), the alpha's is not
        warnings.filterwarnings("ignore", message=".*prores_ks keeps 10 bits", category=MediaWarning)
        with MediaWriter(tmp_path / out_name, fps=src.fps, width=W, height=H, bit_depth=src.source_bits,
                         planes_from=src, metadata=src.metadata, allow_bit_depth_loss=not exact) as writer:
            for frame in src.frames():
                writer.write(frame[::-1].copy(), matte)
    restored = open_media(tmp_path / out_name)
    assert restored.pix_fmt == src.pix_fmt
    dtype = np.uint8 if src.pix_fmt == "yuva420p" else np.uint16
    for a, b in zip(src.decoded_frames(), restored.decoded_frames(), strict=True):
        alpha_a, alpha_b = (np.frombuffer(f.planes[3], dtype).reshape(H, -1)[:, :W] for f in (a, b))
        assert np.array_equal(alpha_a, alpha_b)
        luma_a, luma_b = (np.frombuffer(f.planes[0], dtype).reshape(H, -1)[:, :W] for f in (a, b))
        assert not np.array_equal(luma_a[10:30, 20:40], luma_b[10:30, 20:40])
        if exact:
            assert np.array_equal(luma_a[matte == 0], luma_b[matte == 0])


def test_hdr10_metadata_goes_into_h265_outputs_and_is_said_elsewhere(tmp_path):
    """An HDR10 master's mastering display and light levels reach an H.265 output (as SEI, where
    players read them); an output that cannot carry them says so."""
    params = ("log-level=error:hdr10=1:master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)"
              "L(10000000,1):max-cll=1000,400")
    src = open_media(make_clip(tmp_path / "hdr.mkv", gradient_frames(3), Fraction(25), "libx265", "yuv420p10le",
                               bt2020_pq=True, options={"x265-params": params, "crf": "20"}))
    assert src.metadata["hdr"] == {"primaries": [[0.68, 0.32], [0.265, 0.69], [0.15, 0.06]], "white": [0.3127, 0.329],
                                   "luminance": [0.0001, 1000.0], "max_cll": 1000, "max_fall": 400}
    with MediaWriter(tmp_path / "out.mp4", fps=25, width=W, height=H, bit_depth=10, codec="h265", planes_from=src,
                     metadata=src.metadata) as writer:
        for frame in src.frames():
            writer.write(frame)
    assert open_media(tmp_path / "out.mp4").metadata["hdr"] == src.metadata["hdr"]
    with pytest.warns(MediaWarning, match=r"out.mkv: hdr.mkv carries HDR10 mastering metadata .* --codec h265"):
        MediaWriter(tmp_path / "out.mkv", fps=25, width=W, height=H, bit_depth=10, planes_from=src,
                    metadata=src.metadata).abort()
