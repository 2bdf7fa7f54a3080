"""Numbered image sequences: frame-pattern parsing, folder scanning, single-image files.

Patterns accept printf (`shot_%04d.exr`) and Nuke-style hashes (`shot.####.exr`); a folder
is scanned for one run of numbered frames. Gaps are errors: silently shifting frames would
misalign a restored plate against its original.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from ..errors import InputError

READ_EXTENSIONS = frozenset({".png", ".tif", ".tiff", ".exr", ".jpg", ".jpeg", ".dpx", ".cin", ".bmp"})

_PRINTF = re.compile(r"%(0?)(\d*)d")
_HASHES = re.compile(r"#+")
_NUMBERED = re.compile(r"^(.*?)(\d+)(\.[^.]+)$")


@dataclass(frozen=True)
class FramePattern:
    """A parsed sequence name: prefix + zero-padded number + suffix, inside `folder`."""

    folder: Path
    prefix: str
    padding: int
    suffix: str

    def name(self, number: int) -> str:
        return f"{self.prefix}{number:0{self.padding}d}{self.suffix}"

    def path(self, number: int) -> Path:
        return self.folder / self.name(number)

    @property
    def display(self) -> str:
        number = f"%0{self.padding}d" if self.padding else "%d"
        return str(self.folder / f"{self.prefix}{number}{self.suffix}")


def parse_pattern(path: str | Path) -> FramePattern | None:
    """FramePattern for a printf or hash pattern path, None for a plain file name."""
    path = Path(path)
    name = path.name
    match = _PRINTF.search(name) or _HASHES.search(name)
    if match is None:
        return None
    if match.re is _PRINTF:
        padding = int(match.group(2) or 0) if match.group(1) else 0
    else:
        padding = len(match.group(0))
    return FramePattern(path.parent, name[: match.start()], padding, name[match.end():])


def existing_frames(pattern: FramePattern) -> dict[int, Path]:
    """Files on disk that match the pattern, by frame number."""
    if not pattern.folder.is_dir():
        raise InputError(f"Folder {pattern.folder} does not exist; check the sequence path.")
    expr = re.compile(re.escape(pattern.prefix) + r"(\d+)" + re.escape(pattern.suffix) + "$")
    found: dict[int, Path] = {}
    for entry in pattern.folder.iterdir():
        match = expr.match(entry.name)
        if match is None:
            continue
        digits = match.group(1)
        number = int(digits)
        if f"{number:0{pattern.padding}d}" == digits and entry.is_file():
            found[number] = entry
    return found


def scan_folder(folder: Path) -> FramePattern:
    """The single numbered-frame run in `folder`; an error names the runs when there are several."""
    groups: dict[tuple[str, str], list[str]] = {}
    for entry in sorted(folder.iterdir()):
        match = _NUMBERED.match(entry.name)
        if match and match.group(3).lower() in READ_EXTENSIONS and entry.is_file():
            groups.setdefault((match.group(1), match.group(3)), []).append(match.group(2))
    if not groups:
        raise InputError(f"Folder {folder} holds no numbered image frames "
                         f"(expected names like frame_0001.png; readable: {_ext_list()}).")
    if len(groups) > 1:
        runs = ", ".join(f"{p}####{s}" for p, s in groups)
        raise InputError(f"Folder {folder} holds several frame sequences ({runs}); "
                         f"pass one as a pattern, e.g. {folder / 'name_%04d.png'}.")
    (prefix, suffix), digits = next(iter(groups.items()))
    # Padding is a minimum width: frame_9999 is followed by frame_10000.
    return FramePattern(folder, prefix, min(len(d) for d in digits), suffix)


def resolve_sequence(pattern: FramePattern) -> tuple[list[int], list[Path]]:
    """Frame numbers and files of a pattern, checked for gaps."""
    found = existing_frames(pattern)
    if not found:
        raise InputError(f"No frames match {pattern.display}; check the name and padding.")
    numbers = sorted(found)
    missing = sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers))
    if missing:
        shown = ", ".join(str(n) for n in missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise InputError(f"Sequence {pattern.display} has missing frames ({shown}); "
                         f"render them or pass a pattern for a gap-free range.")
    return numbers, [found[n] for n in numbers]


def decode_image(path: Path) -> tuple[av.VideoFrame, Fraction | None]:
    """The single picture in an image file, and its pixel aspect (EXR, DPX, PNG and TIFF can
    record one; None when it does not say). Cineon scans, which FFmpeg does not read, are read here."""
    if path.suffix.lower() == ".cin":
        from .cineon import decode_cineon

        try:
            return decode_cineon(path), None
        except OSError as exc:
            raise InputError(f"Cannot read image {path}: {exc}.") from exc
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            for frame in container.decode(stream):
                return frame, stream.sample_aspect_ratio
    except (av.FFmpegError, OSError, IndexError) as exc:
        raise InputError(f"Cannot read image {path}: {exc}. Is it a valid "
                         f"{path.suffix.lstrip('.').upper() or 'image'} file?") from exc
    raise InputError(f"Image {path} holds no picture; re-export it.")


def encode_image(codec: av.VideoCodecContext, frame: av.VideoFrame, path: Path) -> None:
    """Encode one picture with an intra-only image encoder and write it to `path`."""
    frame.pts = 0
    data = b"".join(bytes(packet) for packet in codec.encode(frame))
    path.write_bytes(data)


def image_codec(name: str, pix_fmt: str, width: int, height: int,
                options: dict[str, str]) -> av.VideoCodecContext:
    """An opened-on-first-use encoder context for PNG/TIFF/EXR/JPEG pictures."""
    codec = av.CodecContext.create(name, "w")
    codec.width, codec.height, codec.pix_fmt = width, height, pix_fmt
    codec.time_base = Fraction(1, 1)
    if name == "mjpeg":
        codec.color_range = 2  # JPEG pictures are full range
        codec.qscale = 2
    codec.options = dict(options)
    return codec


def _ext_list() -> str:
    return " ".join(sorted(READ_EXTENSIONS))
