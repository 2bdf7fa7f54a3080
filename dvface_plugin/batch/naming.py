"""What a batch input is called: its stem, and the name of its output under OUTDIR.

An input is a video file, or an image sequence (film scans) given as a frame pattern or a folder
of numbered frames; a sequence's stem is its frames' common prefix, or its folder's name.
"""

from __future__ import annotations

from pathlib import Path

from ..media.formats import IMAGE_EXTENSIONS
from ..media.sequences import FramePattern, parse_pattern, scan_folder


def sequence_of(src: str | Path) -> FramePattern | None:
    """The frames of an image-sequence input (a pattern, or a folder of numbered frames); None for a file."""
    path = Path(src)
    pattern = parse_pattern(path)
    return scan_folder(path) if pattern is None and path.is_dir() else pattern


def input_stem(src: str | Path) -> str:
    """A file's stem; a sequence's frame prefix without its trailing separator, else its folder's name."""
    pattern = sequence_of(src)
    if pattern is None:
        return Path(src).stem
    return pattern.prefix.rstrip("._- ") or pattern.folder.name


def output_name(src: str | Path, ext: str | None) -> str:
    """Where an input's output goes, under OUTDIR: <stem>.<ext> (default mkv); an image sequence
    written as images (its own format unless `ext` says) keeps its frame names, in <stem>/."""
    pattern = sequence_of(src)
    if pattern is None:
        return f"{input_stem(src)}.{ext or 'mkv'}"
    ext = (ext or pattern.suffix.rsplit(".", 1)[-1]).lower()
    if f".{ext}" not in IMAGE_EXTENSIONS:
        return f"{input_stem(src)}.{ext}"
    number = f"%0{pattern.padding}d" if pattern.padding else "%d"
    return f"{input_stem(src)}/{pattern.prefix}{number}{pattern.suffix.rsplit('.', 1)[0]}.{ext}"
