"""Output format choice: which encoder, pixel format and bit depth an output path gets.

`output_spec` runs before any processing, so a CLI or host panel fails on a bad choice
(lossy bit depth, codec the container cannot hold, unwritable folder) instead of after a
long restore; `check_video_output` then refuses what the encoder or container cannot hold of
the clip itself (its frame size, rate, field order, pixel shape).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ..errors import InputError
from .pixels import DTYPE_BY_DEPTH, depth_class
from .sequences import FramePattern, parse_pattern

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".mxf")
# What a folder of source clips is searched for (anything FFmpeg reads works when named): the
# outputs' containers plus tape, disc and broadcast captures.
SOURCE_VIDEO_EXTENSIONS = VIDEO_EXTENSIONS + (".avi", ".dv", ".mpg", ".mpeg", ".m2v", ".vob", ".ts", ".m2ts",
                                              ".mts", ".m4v", ".webm", ".y4m")
# The frame rates FFmpeg's MXF muxer writes (its table of SMPTE content package rates); it refuses others.
MXF_RATES = frozenset(Fraction(r) for r in ("24000/1001", "24", "25", "30000/1001", "30", "48000/1001", "48", "50",
                                            "60000/1001", "60", "72", "75", "90", "96", "100", "120000/1001", "120"))
IMAGE_EXTENSIONS = (".png", ".tif", ".tiff", ".exr", ".dpx", ".cin", ".jpg", ".jpeg")

# codec alias -> (encoder, [(max input bits, pix_fmt, bits kept)], lossless)
_VIDEO_CODECS: dict[str, tuple[str, list[tuple[int, str, int]], bool]] = {
    "h264": ("libx264", [(8, "yuv420p", 8), (99, "yuv420p10le", 10)], False),
    "h265": ("libx265", [(8, "yuv420p", 8), (10, "yuv420p10le", 10), (99, "yuv420p12le", 12)], False),
    "prores": ("prores_ks", [(99, "yuv422p10le", 10)], False),
    "prores4444": ("prores_ks", [(99, "yuv444p10le", 10)], False),
    "dnxhr": ("dnxhd", [(8, "yuv422p", 8), (99, "yuv422p10le", 10)], False),  # Avid: DNxHR HQ, HQX at 10 bits
    "dnxhr444": ("dnxhd", [(99, "yuv444p10le", 10)], False),
    "dnxhd": ("dnxhd", [(8, "yuv422p", 8), (99, "yuv422p10le", 10)], False),  # Avid's interlaced HD (1080i)
    "ffv1": ("ffv1", [(8, "bgr0", 8), (99, "gbrp16le", 16)], True),
    "ffv1rgb": ("ffv1", [(8, "bgr0", 8), (99, "gbrp16le", 16)], True),
}
# Planar YUV and grey formats FFV1 stores as they are: a source decoded to one of these is written
# in it (codec ffv1, the .mkv default), so samples outside the faces can be copied bit for bit.
# `ffv1rgb` writes RGB instead.
FFV1_SOURCE_FORMATS = {f"yuv{s}p{d}": bits for s in ("420", "422", "444")
                       for d, bits in (("", 8), ("10le", 10), ("12le", 12), ("16le", 16))}
FFV1_SOURCE_FORMATS["yuv411p"] = 8  # NTSC DV and DVCPRO
FFV1_SOURCE_FORMATS.update(gray=8, gray10le=10, gray12le=12, gray16le=16)  # black-and-white film transfers
FFV1_SOURCE_FORMATS.update({f"yuva{s}p{d}": bits for s in ("420", "422", "444")  # with alpha: ProRes 4444, keys
                            for d, bits in (("", 8), ("10le", 10), ("12le", 12), ("16le", 16))})
_CODEC_ALIASES = {"hevc": "h265", "x265": "h265", "avc": "h264", "x264": "h264",
                  "prores_hq": "prores", "prores422": "prores", "rgb": "ffv1rgb",
                  "dnxhr_hq": "dnxhr", "dnxhr_hqx": "dnxhr", "dnxhr_444": "dnxhr444"}
_CONTAINER_CODECS = {
    ".mp4": ("h264", ("h264", "h265")),
    ".mov": ("prores", ("prores", "prores4444", "dnxhr", "dnxhr444", "h264", "h265")),
    ".mkv": ("ffv1", ("ffv1", "ffv1rgb", "h264", "h265", "prores", "prores4444")),  # FFmpeg's muxer takes no DNxHR
    ".mxf": ("ffv1", ("ffv1", "ffv1rgb", "prores", "prores4444", "dnxhr", "dnxhr444", "dnxhd")),  # FFV1: SMPTE RDD 48
}
# extension -> (encoder, [(max input bits, pix_fmt, bits kept)])
_IMAGE_CODECS: dict[str, tuple[str, list[tuple[int, str, int]]]] = {
    ".png": ("png", [(8, "rgb24", 8), (99, "rgb48be", 16)]),
    ".tif": ("tiff", [(8, "rgb24", 8), (99, "rgb48le", 16)]),
    ".jpg": ("mjpeg", [(99, "yuvj444p", 8)]),
    ".exr": ("exr", [(99, "gbrpf32le", 32)]),
    ".dpx": ("dpx", [(8, "rgb24", 8), (10, "gbrp10le", 10), (12, "gbrp12le", 12), (99, "rgb48le", 16)]),
    ".cin": ("cin", [(99, "gbrp10le", 10)]),  # media.cineon, not FFmpeg: only from a Cineon scan, with its header
}
# The image formats above, with the alpha channel a source's frames had (keyed plates).
_WITH_ALPHA = {"rgb24": "rgba", "rgb48be": "rgba64be", "rgb48le": "rgba64le", "gbrpf32le": "gbrapf32le"}
# extension -> [(max input bits, pix_fmt, bits kept)] for a grey source (black-and-white scans).
_GREY_IMAGE_FORMATS = {
    ".png": [(8, "gray", 8), (99, "gray16be", 16)],
    ".tif": [(8, "gray", 8), (99, "gray16le", 16)],
    ".dpx": [(8, "gray", 8), (99, "gray16le", 16)],
    ".exr": [(99, "grayf32le", 32)],
}
_ENCODER_OPTIONS = {
    "libx264": {"crf": "14", "preset": "medium"},
    "libx265": {"crf": "16", "preset": "medium", "x265-params": "log-level=error"},
    "prores_ks": {"vendor": "apl0"},
    "ffv1": {"level": "3", "slicecrc": "1", "g": "1"},
    "tiff": {"compression_algo": "deflate"},
    "exr": {"compression": "zip16"},
}
# 4:2:2 codecs and their 4:4:4 siblings: (name, the 4:4:4 codec)
_FULL_CHROMA = {"prores": ("ProRes 422", "prores4444"), "dnxhr": ("DNxHR HQ/HQX", "dnxhr444")}
# DNxHR codes whole 8x8 blocks of at least 32 x 15 of them (FFmpeg refuses smaller frames).
DNXHR_MIN_SIZE = (256, 120)
# Interlaced DNxHD's frame sizes and bit depths -> the bit rate naming its best profile (Mb/s at 29.97
# frames/s, which FFmpeg takes for any rate): 220 and 220x (10-bit) at 1920 x 1080, 145 at 1440 x 1080.
DNXHD_INTERLACED_RATES = {(1920, 1080, 8): "220M", (1920, 1080, 10): "220M", (1440, 1080, 8): "145M"}
_DEPTH_KEEPERS = ".mkv (FFV1, lossless 16-bit) or a 16-bit .tif/.png sequence"


@dataclass(frozen=True)
class OutputSpec:
    """Everything the writer needs to know about an output path, resolved up front."""

    path: Path
    kind: str  # "video", "sequence" or "photo"
    encoder: str  # FFmpeg encoder name
    pix_fmt: str
    bit_depth: int  # significant bits per channel kept in the file (8, 10, 12, 16 or 32)
    dtype: np.dtype  # frames are converted to this dtype before encoding
    lossless: bool
    options: dict[str, str] = field(default_factory=dict)
    pattern: FramePattern | None = None
    warnings: tuple[str, ...] = ()

    @property
    def alpha(self) -> bool:
        """Whether the output holds an alpha channel (a source's, written back as it was)."""
        return len(av.VideoFormat(self.pix_fmt).components) == 4


def parse_fps(value: Fraction | int | float | str) -> Fraction:
    """Exact frame rate from a Fraction, int, '24000/1001' string or float.

    Floats near an NTSC rate (23.976, 29.97, 59.94) snap to n*1000/1001, since those
    rates are what a rounded float means in practice.
    """
    if isinstance(value, float):
        ntsc = Fraction(round(value * 1.001) * 1000, 1001)
        if ntsc and abs(float(ntsc) - value) < 5e-3 and value != round(value):
            return ntsc
        rate = Fraction(value).limit_denominator(1001)
    else:
        try:
            rate = Fraction(value)
        except (TypeError, ValueError, ZeroDivisionError) as exc:
            raise InputError(f"Frame rate {value!r} is not a number; use e.g. 25 or 24000/1001.") from exc
    if rate <= 0:
        raise InputError(f"Frame rate must be positive, got {value!r}.")
    return rate


def _pick(table: list[tuple[int, str, int]], bits: int) -> tuple[str, int]:
    for max_bits, pix_fmt, kept in table:
        if bits <= max_bits:
            return pix_fmt, kept
    raise AssertionError("format tables end with a catch-all entry")


def _codec_name(codec: str | None) -> str | None:
    if codec is None:
        return None
    name = codec.strip().lower().replace("-", "")
    return _CODEC_ALIASES.get(name, name)


def _check_writable(folder: Path) -> None:
    if not folder.is_dir():
        raise InputError(f"Output folder {folder} does not exist; create it first.")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"Output folder {folder} is not writable; choose another output path "
                         f"or fix its permissions.")


def output_spec(path: str | Path, codec: str | None = None, input_bit_depth: int = 8, *,
                allow_bit_depth_loss: bool = False, source_pix_fmt: str | None = None,
                half_float: bool = False, grey: bool = False, alpha: bool = False,
                source_codec: str | None = None, interlaced: bool = False) -> OutputSpec:
    """Validate an output choice and resolve encoder, pixel format and depth.

    `input_bit_depth` is the number of significant bits of the frames to be written
    (8, 10, 12, 16, or 32 for float). Choices that would keep fewer bits raise
    `InputError` naming a format that keeps them, unless `allow_bit_depth_loss` is set,
    in which case the spec carries a warning instead. `source_pix_fmt`: the source's decoded
    format, kept by codec ffv1 when it is one of `FFV1_SOURCE_FORMATS`; H.264 and H.265 keep its
    chroma subsampling, and the .mov default turns ProRes 4444 for a 4:4:4 source. `half_float`:
    the frames are half floats (an EXR plate in half), which .exr writes as half by default, whole.
    `grey`: the source is grey (a black-and-white scan), which image formats that hold grey keep.
    `alpha`: an image source has an alpha channel, which image formats that hold one keep; a video
    source's alpha (YUVA) is kept by FFV1 and ProRes 4444 (`spec.alpha` says whether it is).
    `source_codec`: the source's decoder; an Avid DNxHD/DNxHR source gets DNxHR by default in .mov and .mxf,
    which its editor reads back, or DNxHD in .mxf where it is `interlaced` (DNxHR codes whole frames).
    """
    path = Path(path)
    chroma_warning = None
    if not (1 <= input_bit_depth <= 16 or input_bit_depth == 32):
        raise InputError(f"input_bit_depth must be 1..16 or 32 (float), got {input_bit_depth}.")
    ext = path.suffix.lower()
    ext = {".tiff": ".tif", ".jpeg": ".jpg"}.get(ext, ext)
    name = _codec_name(codec)
    pattern = parse_pattern(path)
    options: dict[str, str] = {}

    if ext in _CONTAINER_CODECS:
        if pattern is not None:
            raise InputError(f"{path.name}: frame numbers (%04d / ####) only apply to image "
                             f"sequences, not {ext} video.")
        default, allowed = _CONTAINER_CODECS[ext]
        avid_codec = "dnxhd" if interlaced else "dnxhr"
        if source_codec == "dnxhd" and avid_codec in allowed:
            default = avid_codec
        name = name or default
        if name not in _VIDEO_CODECS:
            raise InputError(f"Unknown codec {codec!r}; choose one of {', '.join(_VIDEO_CODECS)}.")
        if name not in allowed:
            raise InputError(f"{ext} cannot hold {name}; use {', '.join(allowed)} in {ext}, or a "
                             f"container that takes {name}: "
                             f"{', '.join(e for e, (_, a) in _CONTAINER_CODECS.items() if name in a)}.")
        planar_yuv = source_pix_fmt.replace("yuva", "yuv", 1) if source_pix_fmt in FFV1_SOURCE_FORMATS else ""
        source_chroma = planar_yuv[3:6] if planar_yuv.startswith("yuv") else None
        source_alpha = bool(source_pix_fmt) and source_pix_fmt.startswith("yuva")
        if name in _FULL_CHROMA and codec is None and source_chroma == "444":
            name = _FULL_CHROMA[name][1]  # the default keeps a 4:4:4 source's chroma
        encoder, table, lossless = _VIDEO_CODECS[name]
        pix_fmt, kept = _pick(table, input_bit_depth)
        if name == "ffv1" and source_pix_fmt in FFV1_SOURCE_FORMATS:
            pix_fmt, kept = source_pix_fmt, FFV1_SOURCE_FORMATS[source_pix_fmt]
        elif name in ("h264", "h265") and source_chroma in ("422", "444"):
            pix_fmt = pix_fmt.replace("420", source_chroma, 1)  # x264 and x265 take 4:2:2 and 4:4:4 too
        elif name in _FULL_CHROMA and source_chroma == "444":
            title, full = _FULL_CHROMA[name]
            chroma_warning = f"{path.name}: {title} halves the source's 4:4:4 chroma; use codec {full} to keep it."
        options.update(_ENCODER_OPTIONS.get(encoder, {}))
        if name.startswith("prores"):
            options["profile"] = "4444" if name == "prores4444" else "hq"
        if name.startswith("dnxhr"):
            options["profile"] = {"yuv422p": "dnxhr_hq", "yuv422p10le": "dnxhr_hqx"}.get(pix_fmt, "dnxhr_444")
        if name == "dnxhd":  # its bit rate, which picks the profile, follows the frame size (the writer's)
            options.update(profile="dnxhd", flags="+ildct")
        if name == "prores4444" and source_alpha:  # ProRes 4444 carries alpha too, losslessly coded
            pix_fmt, options["alpha_bits"] = "yuva444p10le", "16"
        kind = "video"
    elif ext in _IMAGE_CODECS:
        encoder, table = _IMAGE_CODECS[ext]
        if ext == ".exr" and name in ("half", "float", None):
            options["format"] = "half" if name == "half" or (name is None and half_float) else "float"
            name = None
        if name is not None and name != encoder and name != ext.lstrip("."):
            raise InputError(f"{ext} images are written with their own codec; drop codec={codec!r}"
                             + (" (or use 'half'/'float' for .exr)." if ext == ".exr" else "."))
        grey_table = _GREY_IMAGE_FORMATS.get(ext) if grey and options.get("format") != "half" else None
        pix_fmt, kept = _pick(grey_table or table, input_bit_depth)
        pix_fmt = _WITH_ALPHA.get(pix_fmt, pix_fmt) if alpha else pix_fmt
        if options.get("format") == "half" and not half_float:
            kept = 10  # half floats hold 11 significant bits: 10-bit integer data round-trips
        options.update(_ENCODER_OPTIONS.get(encoder, {}))
        lossless = encoder != "mjpeg" and (options.get("format") != "half" or half_float)
        kind = "photo" if pattern is None else "sequence"
    else:
        raise InputError(f"Unsupported output {path.name!r}: use {', '.join(VIDEO_EXTENSIONS)} "
                         f"video, or {', '.join(IMAGE_EXTENSIONS)} images "
                         f"(with %04d or #### in the name for a sequence).")

    warnings: list[str] = []
    if kept < input_bit_depth and not (input_bit_depth == 32 and kept == 32):
        what = "float" if input_bit_depth == 32 else f"{input_bit_depth}-bit"
        keeper = ("an .exr sequence (32-bit float, codec 'float')" if input_bit_depth == 32
                  else _DEPTH_KEEPERS)
        message = (f"{path.name}: {encoder} keeps {kept} bits per channel but the frames are "
                   f"{what}; write {keeper} to keep them")
        if not allow_bit_depth_loss:
            raise InputError(message + ", or allow the loss explicitly (allow_bit_depth_loss=True).")
        warnings.append(message + "; reducing as allowed.")

    unplayable = [trait for trait in (f"{kept}-bit" if encoder == "libx264" and kept > 8 else "",
                                      f"4:{pix_fmt[4]}:{pix_fmt[5]}" if pix_fmt.startswith(("yuv422", "yuv444"))
                                      and encoder in ("libx264", "libx265") else "") if trait]
    if unplayable:
        warnings.append(f"{path.name}: {' '.join(unplayable)} {'H.264' if encoder == 'libx264' else 'H.265'} keeps "
                        "the source's samples but QuickTime and browsers may not play it; use .mov (ProRes) for "
                        "review copies.")
    if chroma_warning is not None:
        warnings.append(chroma_warning)
    _check_writable(pattern.folder if pattern is not None else path.parent)
    dtype = np.dtype(np.float32) if "f32" in pix_fmt else DTYPE_BY_DEPTH[depth_class(kept)]
    return OutputSpec(path=path, kind=kind, encoder=encoder, pix_fmt=pix_fmt, bit_depth=kept,
                      dtype=dtype, lossless=lossless, options=options,
                      pattern=pattern, warnings=tuple(warnings))


def check_video_output(spec: OutputSpec, width: int, height: int, fps: Fraction, first_field: int | None,
                       pixel_aspect: Fraction) -> dict[str, str]:
    """Refuse, before any work, a video of this size, rate, field order (the row parity shown first;
    None: progressive) and pixel aspect that `spec`'s encoder or container cannot write faithfully.
    Returns the encoder options the clip decides: interlaced DNxHD's bit rate, and interlaced coding in
    the source's field order for ProRes and H.264 (H.265 codes whole frames: its outputs read back
    progressive)."""
    name, profile, options = spec.path.name, spec.options.get("profile", ""), {}
    odd = odd_for_chroma(spec.pix_fmt, width, height)
    if odd:
        raise InputError(f"{name}: {spec.encoder} ({spec.pix_fmt}) needs an even {odd}, the frames are "
                         f"{width}x{height}; crop or pad by one pixel, or write .mkv (FFV1), which takes any size.")
    if profile.startswith("dnxhr"):
        least = DNXHR_MIN_SIZE
        if width < least[0] or height < least[1]:
            raise InputError(f"{name}: DNxHR needs frames of at least {least[0]}x{least[1]}, these are "
                             f"{width}x{height}; write ProRes (.mov) or .mkv (FFV1), which take any size.")
        if first_field is not None:  # DNxHR codes whole frames; .mov then records no field order
            raise InputError(f"{name}: DNxHR would make this interlaced clip read back as progressive (it codes whole "
                             "frames, and no field order is recorded with it); write ProRes (.mov) or .mkv (FFV1), "
                             "which keep the field order, or 1080i as DNxHD in .mxf (--codec dnxhd)")
    if profile == "dnxhd":
        options["b"] = _interlaced_dnxhd_rate(name, width, height, spec.bit_depth, first_field, pixel_aspect)
    if first_field is not None:  # the fields coded apart, and their order in the bitstream itself
        if spec.encoder == "prores_ks":
            options["flags"] = "+ildct"
        elif spec.encoder == "libx264":
            if spec.pix_fmt.startswith("yuv420") and height % 4:
                raise InputError(f"{name}: interlaced 4:2:0 H.264 needs a height that splits into fields of whole "
                                 f"chroma rows (a multiple of 4), not {height}; write .mkv (FFV1) or ProRes (.mov)")
            options["x264-params"] = f"interlaced=1:{'bff' if first_field else 'tff'}=1"
    if spec.path.suffix.lower() == ".mxf":
        _check_mxf(name, profile, fps, first_field, pixel_aspect)
    return options


def _interlaced_dnxhd_rate(name: str, width: int, height: int, bits: int, first_field: int | None,
                           pixel_aspect: Fraction) -> str:
    """The bit rate that picks interlaced DNxHD's profile for this frame size, where the clip is top field
    first (the order FFmpeg's MXF muxer records for it) and its pictures 16:9 (the shape it records)."""
    if first_field is None:
        raise InputError(f"{name}: DNxHD is written here for interlaced HD only; write this progressive clip "
                         "as DNxHR (--codec dnxhr)")
    if first_field != 0:
        raise InputError(f"{name}: this clip is bottom field first, and DNxHD in MXF reads back top field first; "
                         "write .mkv (FFV1) or ProRes (.mov), which keep the field order")
    rate = DNXHD_INTERLACED_RATES.get((width, height, bits))
    if rate is None:
        raise InputError(f"{name}: interlaced DNxHD holds 1920x1080 frames (8- or 10-bit) and 1440x1080 ones "
                         f"(8-bit), these are {width}x{height} at {bits} bits; write .mkv (FFV1) or ProRes (.mov), "
                         "which keep the field order")
    if pixel_aspect != Fraction(16, 9) * height / width:
        raise InputError(f"{name}: DNxHD in MXF reads back as a 16:9 picture, and this clip's pixels "
                         f"({pixel_aspect}) make it another shape; write .mkv (FFV1) or ProRes (.mov)")
    return rate


def _check_mxf(name: str, profile: str, fps: Fraction, first_field: int | None, pixel_aspect: Fraction) -> None:
    """What FFmpeg's MXF muxer cannot write faithfully."""
    if fps not in MXF_RATES:
        raise InputError(f"{name}: MXF holds only the broadcast frame rates (23.976, 24, 25, 29.97, 30, 48, "
                         f"50, 59.94, 60 and some higher), not {fps} fps; write .mov or .mkv")
    if profile.startswith("dnxhr") and pixel_aspect != 1:  # it records DNxHR's pixels as square
        raise InputError(f"{name}: DNxHR in MXF would read back with square pixels, and this clip's are "
                         f"{pixel_aspect} (anamorphic); write DNxHR in .mov, or ProRes or FFV1 in .mxf")
    if first_field is not None and profile != "dnxhd":  # no field dominance for FFV1, ProRes or DNxHR
        raise InputError(f"{name}: this interlaced clip's field order cannot be recorded in MXF here (it would "
                         "read back bottom field first, or progressive); write .mkv (FFV1) or .mov, which keep it, "
                         "or 1080i as DNxHD (--codec dnxhd)")


def odd_for_chroma(pix_fmt: str, width: int, height: int) -> str | None:
    """"width" or "height" when chroma subsampling in `pix_fmt` needs it even (4:1:1: a multiple
    of 4) and it is not."""
    pix_fmt = pix_fmt.replace("yuva", "yuv", 1)  # alpha is never subsampled
    if width % (4 if pix_fmt.startswith("yuv411") else 2) and pix_fmt.startswith(("yuv420", "yuv422", "yuv411")):
        return "width"
    if height % 2 and pix_fmt.startswith("yuv420"):
        return "height"
    return None
