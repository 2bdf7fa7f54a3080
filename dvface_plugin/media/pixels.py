"""Conversions between PyAV frames and HxWx3 RGB numpy arrays at full depth.

Frames are handed out as uint8 (8-bit sources), uint16 scaled to the full 16-bit range
(9..16-bit sources) or float32 (float sources), so no caller ever sees a silently
down-converted picture.
"""

from __future__ import annotations

import io
from collections.abc import Iterable

import av
import numpy as np
from av.video.reformatter import Interpolation

# Accurate rounding and full chroma interpolation: 4:2:0 chroma is upsampled bilinearly
# instead of replicated, which halves the error on faces' lips and skin edges. High bit
# depths go through planar gbrp16le: swscale's packed rgb48 output corrupts 4:2:0 10-bit
# input with full chroma interpolation (errors of ~50/255 in FFmpeg 8.1).
_TO_RGB_FLAGS = Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT
_FROM_RGB_FLAGS = Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INP

# FFmpeg AVColorSpace values of the frame tags, mapped to the swscale matrix names.
_AVCOL_SPC_RGB = 0
_AVCOL_SPC_UNSPECIFIED = 2
_MATRIX_BY_AVCOL_SPC = {1: "ITU709", 4: "FCC", 5: "ITU601", 6: "SMPTE170M", 7: "SMPTE240M",
                        9: "BT2020", 10: "BT2020"}

FLOAT_DTYPE = np.dtype(np.float32)
DTYPE_BY_DEPTH = {8: np.dtype(np.uint8), 16: np.dtype(np.uint16), 32: FLOAT_DTYPE}


def depth_class(bits: int) -> int:
    """8, 16 or 32: the array depth that holds `bits` significant bits without loss."""
    if bits <= 8:
        return 8
    return 16 if bits <= 16 else 32


def format_bits(fmt: av.VideoFormat) -> int:
    """Significant bits per channel of a pixel format; 32 for float formats (half included)."""
    if "f16" in fmt.name or "f32" in fmt.name:
        return 32
    return max(c.bits for c in fmt.components)


def matrix_for(colorspace: int, height: int) -> str:
    """swscale matrix for an AVColorSpace tag; untagged video is guessed like players do."""
    if colorspace == _AVCOL_SPC_UNSPECIFIED:
        return "ITU709" if height >= 720 else "ITU601"
    return _MATRIX_BY_AVCOL_SPC.get(colorspace, "ITU709")


def _float_planes(frame: av.VideoFrame) -> np.ndarray:
    """Read float planes directly: swscale clamps half floats to [0, 1] on conversion."""
    name = frame.format.name
    item = np.dtype("<f2" if "f16" in name else "<f4")
    if name.endswith("be"):
        item = item.newbyteorder(">")
    planes = []
    for plane in frame.planes:
        row = plane.line_size // item.itemsize
        data = np.frombuffer(plane, dtype=item).reshape(-1, row)
        planes.append(data[: frame.height, : frame.width])
    if name.startswith("gbr"):
        g, b, r = planes[:3]
        rgb = np.stack([r, g, b], axis=-1)
    elif name.startswith(("gray", "ya")):
        rgb = np.repeat(planes[0][:, :, None], 3, axis=2)
    else:
        raise ValueError(f"float pixel format {name} is not supported")
    return rgb.astype(np.float32)


def _deep_rgb(fmt: av.VideoFormat) -> int | None:
    """Bits of a planar RGB or grey format of 9 to 15 bits (gbrp10le: DPX scans), else None.
    swscale scales those to and from 16 bits inexactly (a third of 10-bit codes come back one
    off), so they are scaled here, exactly: code x of b bits is round(x * 65535 / (2**b - 1)) and back."""
    bits = format_bits(fmt)
    return bits if fmt.name.startswith(("gbrp", "gray")) and 8 < bits < 16 else None


def _sample_dtype(fmt: av.VideoFormat) -> np.dtype:
    return np.dtype(">u2" if fmt.name.endswith("be") else "<u2")


def _deep_rgb_array(frame: av.VideoFrame, bits: int) -> np.ndarray:
    top = (1 << bits) - 1
    planes = frame.planes[:3] if frame.format.name.startswith("gbrp") else frame.planes[:1] * 3  # grey: R = G = B
    g, b, r = (np.frombuffer(plane, _sample_dtype(frame.format)).reshape(plane.height, -1)[:, :frame.width]
               for plane in planes)
    codes = np.stack([r, g, b], axis=-1).astype(np.uint32)
    return ((codes * 131070 + top) // (2 * top)).astype(np.uint16)


def _deep_rgb_frame(rgb: np.ndarray, pix_fmt: str, bits: int) -> av.VideoFrame:
    top = (1 << bits) - 1
    codes = ((rgb.astype(np.uint32) * (2 * top) + 65535) // 131070)
    frame = av.VideoFrame(rgb.shape[1], rgb.shape[0], pix_fmt)
    for plane, channel in zip(frame.planes[:3], (1, 2, 0)):  # g, b, r
        np.frombuffer(plane, _sample_dtype(frame.format)).reshape(plane.height, -1)[:, :rgb.shape[1]] = codes[..., channel]
    return frame


def frame_to_rgb(frame: av.VideoFrame, depth: int,
                 container_colorspace: int = _AVCOL_SPC_UNSPECIFIED) -> np.ndarray:
    """Decoded frame -> HxWx3 RGB array of the depth class `depth` (8, 16 or 32).

    `container_colorspace` is used when the frame itself carries no matrix tag.
    """
    if depth == 32:
        if format_bits(frame.format) == 32:
            return _float_planes(frame)
        return rgb_to_dtype(frame_to_rgb(frame, 16, container_colorspace), FLOAT_DTYPE)
    deep = _deep_rgb(frame.format)
    if deep and depth == 16:
        return _deep_rgb_array(frame, deep)
    target = "rgb24" if depth == 8 else "gbrp16le"
    kwargs = {"interpolation": _TO_RGB_FLAGS}
    is_yuv = not frame.format.is_rgb and not frame.format.name.startswith(("gray", "ya", "pal"))
    colorspace = frame.colorspace
    if colorspace == _AVCOL_SPC_UNSPECIFIED:
        colorspace = container_colorspace
    if is_yuv and colorspace != _AVCOL_SPC_RGB:
        kwargs["src_colorspace"] = matrix_for(colorspace, frame.height)
    return np.ascontiguousarray(frame.to_ndarray(format=target, **kwargs))


def rgb_to_dtype(rgb: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Convert between uint8 / uint16 / float32 RGB arrays with exact scaling.

    Integer depths are scaled by 257 (0xFF -> 0xFFFF), so 8 -> 16 -> 8 is lossless. Float
    frames are taken as normalized [0, 1] and clipped when converted to integers.
    """
    dtype = np.dtype(dtype)
    if rgb.dtype == dtype:
        return rgb
    if dtype == FLOAT_DTYPE:
        return rgb.astype(np.float32) / np.float32(np.iinfo(rgb.dtype).max)
    peak = np.iinfo(dtype).max
    if rgb.dtype == FLOAT_DTYPE:
        return np.rint(np.clip(rgb, 0.0, 1.0) * peak).astype(dtype)
    if dtype == np.uint16:
        return rgb.astype(np.uint16) * np.uint16(257)
    return ((rgb.astype(np.uint32) + 128) // 257).astype(np.uint8)


def rgb_to_frame(rgb: np.ndarray, pix_fmt: str, matrix: str = "ITU709", full_range: bool = False) -> av.VideoFrame:
    """HxWx3 RGB array (already in the encoder's depth class) -> frame in `pix_fmt`.

    YUV targets get the given matrix and limited range (full with `full_range`: samples copied
    from a full-range source sit beside them), matching the tags the writer puts on the stream,
    so decoders convert back with the same coefficients.
    """
    if rgb.dtype == FLOAT_DTYPE and pix_fmt == "gbrapf32le":  # swscale would round the floats
        frame = av.VideoFrame(rgb.shape[1], rgb.shape[0], pix_fmt)
        for plane, values in zip(frame.planes, (rgb[..., 1], rgb[..., 2], rgb[..., 0], np.ones(rgb.shape[:2]))):
            np.frombuffer(plane, "<f4").reshape(plane.height, -1)[:, :plane.width] = values
        return frame
    if rgb.dtype == FLOAT_DTYPE:
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="gbrpf32le")
    else:
        src = "rgb24" if rgb.dtype == np.uint8 else "rgb48le"
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format=src)
    if frame.format.name == pix_fmt:
        return frame
    if pix_fmt.startswith("gray"):
        return _grey_frame(rgb, pix_fmt)
    deep = _deep_rgb(av.VideoFormat(pix_fmt))
    if deep and rgb.dtype == np.uint16:
        return _deep_rgb_frame(rgb, pix_fmt, deep)
    if pix_fmt.startswith("yuvj"):  # JPEG/JFIF: BT.601 matrix, full range
        return frame.reformat(format=pix_fmt, dst_colorspace="ITU601", dst_color_range="JPEG",
                              interpolation=_FROM_RGB_FLAGS)
    if pix_fmt.startswith(("yuv", "nv")):
        return frame.reformat(format=pix_fmt, dst_colorspace=matrix, dst_color_range="JPEG" if full_range else "MPEG",
                              interpolation=_FROM_RGB_FLAGS)
    return frame.reformat(format=pix_fmt, interpolation=_FROM_RGB_FLAGS)


def _grey_frame(rgb: np.ndarray, pix_fmt: str) -> av.VideoFrame:
    """RGB -> a grey format, as luma (BT.601 weights), scaled exactly to its depth (the inverse of
    `_deep_rgb_array`'s scaling): a grey source reads as R = G = B = Y, so an unchanged pixel comes
    back as the sample it was (swscale's 16-bit path moved them by up to 253 codes)."""
    bits = format_bits(av.VideoFormat(pix_fmt))
    luma = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    frame = av.VideoFrame(rgb.shape[1], rgb.shape[0], pix_fmt)
    plane = frame.planes[0]
    if bits == 32:  # grayf32le: float stays float
        samples = luma.astype(np.float32)
    else:
        samples = np.rint(luma * ((1 << bits) - 1) / np.iinfo(rgb.dtype).max)
    dtype = np.dtype(np.uint8) if bits == 8 else np.dtype("<f4") if bits == 32 else _sample_dtype(frame.format)
    np.frombuffer(plane, dtype).reshape(plane.height, -1)[:, :plane.width] = samples.astype(dtype)
    return frame


def copy_alpha(source: av.VideoFrame, target: av.VideoFrame) -> None:
    """Put `source`'s alpha samples into `target`, a frame of the same format and size with alpha
    (packed rgba/rgba64: every fourth sample; planar gbrap and yuva: the fourth plane)."""
    if target.format.name.startswith(("gbrap", "yuva")):
        target.planes[3].update(bytes(source.planes[3]))
        return
    dtype = np.dtype(np.uint8) if target.format.name == "rgba" else _sample_dtype(target.format)
    ours, theirs = (np.frombuffer(f.planes[0], dtype).reshape(f.height, -1)[:, :4 * f.width].reshape(f.height, f.width, 4)
                    for f in (target, source))
    ours[..., 3] = theirs[..., 3]


# Decoded formats whose samples a planar YUV format holds exactly: packed and semi-planar layouts
# (uncompressed 4:2:2 captures, hardware decoders) repacked, and the JPEG-range yuvj formats, which
# are that YUV with a full-range tag.
_PLANAR = {"uyvy422": "yuv422p", "yuyv422": "yuv422p", "nv12": "yuv420p", "nv16": "yuv422p",
           "p010le": "yuv420p10le", "p016le": "yuv420p16le", "p210le": "yuv422p10le",
           "yuvj420p": "yuv420p", "yuvj422p": "yuv422p", "yuvj444p": "yuv444p", "yuvj411p": "yuv411p"}


def planar_name(pix_fmt: str) -> str:
    """The planar YUV format that holds a decoded format's samples exactly (itself if planar)."""
    return _PLANAR.get(pix_fmt, pix_fmt)


def as_planar(frame: av.VideoFrame) -> av.VideoFrame:
    """`frame`'s samples, every one unchanged, in `planar_name` of its format."""
    name = planar_name(frame.format.name)
    if name == frame.format.name:
        return frame
    if not frame.format.name.startswith("yuvj"):
        return frame.reformat(format=name)  # an unscaled repack: exact
    out = av.VideoFrame(frame.width, frame.height, name)  # converting would rescale the range: copy
    for ours, theirs in zip(out.planes, frame.planes, strict=True):
        rows = min(ours.line_size, theirs.line_size)
        np.frombuffer(ours, np.uint8).reshape(ours.height, -1)[:, :rows] = \
            np.frombuffer(theirs, np.uint8).reshape(theirs.height, -1)[:, :rows]
    out.color_range = frame.color_range
    return out


# FFmpeg's names for where chroma samples sit; unspecified decodes as "center".
CHROMA_SITINGS = ("left", "center", "topleft", "top", "bottomleft", "bottom")


def chroma_siting(frames: Iterable[av.VideoFrame]) -> str | None:
    """Where the decoder says these YUV frames' chroma samples sit, as FFmpeg's option names it.

    PyAV does not expose the tag, and it changes how a frame converts to RGB (H.264 and HEVC
    default to "left"). So one frame is re-encoded losslessly with each siting, and the one whose
    decode converts to the same RGB wins. Frames with flat chroma cannot tell; the next is tried.
    None: unspecified (or "center", which decodes the same), or no frame could tell.
    """
    for frame in frames:
        reference = frame_to_rgb(frame, 8)
        matches = [siting for siting in (None, *CHROMA_SITINGS)
                   if np.array_equal(frame_to_rgb(_lossless_round_trip(frame, siting), 8), reference)]
        if len(matches) <= len(CHROMA_SITINGS):  # some siting decodes differently: this frame tells
            return matches[0] if matches else None
    return None


def _lossless_round_trip(frame: av.VideoFrame, siting: str | None) -> av.VideoFrame:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="matroska") as container:
        stream = container.add_stream("ffv1", rate=25, options={"chroma_sample_location": siting} if siting else {})
        planar = as_planar(frame)
        stream.width, stream.height, stream.pix_fmt = frame.width, frame.height, planar.format.name
        # The frame's matrix too: untagged, a frame below HD converts as BT.601, and no siting would match.
        stream.codec_context.color_range, stream.codec_context.colorspace = frame.color_range, frame.colorspace
        copy = av.VideoFrame(frame.width, frame.height, planar.format.name)  # a fresh frame: no siting of its own
        copy.color_range, copy.colorspace = frame.color_range, frame.colorspace
        for source, target in zip(planar.planes, copy.planes):
            row = min(source.line_size, target.line_size)  # both hold the samples; the padding differs
            np.frombuffer(target, np.uint8).reshape(target.height, -1)[:, :row] = \
                np.frombuffer(source, np.uint8).reshape(source.height, -1)[:, :row]
        for packet in (*stream.encode(copy), *stream.encode()):
            container.mux(packet)
    buffer.seek(0)
    with av.open(buffer) as container:
        return next(container.decode(video=0))
