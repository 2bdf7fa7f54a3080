"""Media I/O: video files, image sequences and photos in and out at full bit depth. PyAV, OpenCV
and OpenEXR under one interface; imports only `errors` and `processes` of dvface_plugin.

    src = open_media("shot.mov")          # or "shot_%04d.exr", a folder, "face.png"
    with MediaWriter("out.mkv", fps=src.fps, width=src.width, height=src.height,
                     bit_depth=src.source_bits, streams_from=src, metadata=src.metadata) as w:
        for frame in src:
            w.write(restore(frame))
"""

from .formats import OutputSpec, output_spec, parse_fps
from .reader import (ImageSource, MediaSource, VideoSource, check_progressive, display_geometry,
                     first_field, open_media, pixel_aspect, quarter_turns)
from .trim import parse_frame_range
from .writer import MediaWarning, MediaWriter, check_constant_rate, existing_output

__all__ = ["ImageSource", "MediaSource", "MediaWarning", "MediaWriter", "OutputSpec", "VideoSource",
           "check_constant_rate", "check_progressive", "display_geometry", "existing_output", "first_field", "open_media",
           "output_spec", "parse_fps", "parse_frame_range", "pixel_aspect", "quarter_turns"]
