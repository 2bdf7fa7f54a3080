"""The README's example script, rendered by `vspipe` to y4m from an mp4 read with BestSource."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import vapoursynth as vs

from conftest import FACE_FRAMES, HEIGHT, LENGTH, WIDTH, make_frames

README = Path(__file__).resolve().parents[1] / "README.md"
VSPIPE = Path(sys.executable).with_name("vspipe")


def readme_script() -> str:
    text = README.read_text()
    block = re.search(r"<!-- vspipe-example[^>]*-->\s*```python\n(.*?)```", text, re.S)
    assert block, "README lost its example script"
    return block.group(1)


def write_mp4(path: Path) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.options = {"crf": "18"}
        for frame in make_frames():
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def read_y4m(data: bytes) -> tuple[str, list[bytes]]:
    header, _, rest = data.partition(b"\n")
    frames = rest.split(b"FRAME\n")
    assert frames[0] == b""
    return header.decode(), frames[1:]


@pytest.mark.skipif(not VSPIPE.is_file(), reason="vspipe comes with `pip install vapoursynth` (R74+)")
def test_vspipe_renders_readme_example(model_dir, tmp_path):
    video = tmp_path / "input.mp4"
    write_mp4(video)
    script = readme_script().replace('"input.mp4"', repr(str(video))).replace('"dvface-model"', repr(str(model_dir)))
    (tmp_path / "restore.vpy").write_text(script)
    result = subprocess.run(
        [str(VSPIPE), "-c", "y4m", "restore.vpy", "out.y4m"], cwd=tmp_path, capture_output=True, timeout=300
    )
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    header, frames = read_y4m((tmp_path / "out.y4m").read_bytes())
    assert header.startswith("YUV4MPEG2 C420") and f"W{WIDTH} H{HEIGHT}" in header and "F25:1" in header
    assert len(frames) == LENGTH

    # A farm chunk (frames 3..8, a window boundary inside) equals the same frames of the whole render.
    chunk = subprocess.run(
        [str(VSPIPE), "-c", "y4m", "-s", "3", "-e", "8", "restore.vpy", "chunk.y4m"], cwd=tmp_path,
        capture_output=True, timeout=300,
    )
    assert chunk.returncode == 0, chunk.stderr.decode()[-2000:]
    assert read_y4m((tmp_path / "chunk.y4m").read_bytes())[1] == frames[3:9]

    decoded = vs.core.bs.VideoSource(source=str(video))
    size = WIDTH * HEIGHT * 3 // 2
    for n, payload in enumerate(frames):
        f = decoded.get_frame(n)
        source = b"".join(np.asarray(f[p]).tobytes() for p in range(3))
        assert len(payload) == size
        assert (payload == source) == (n >= FACE_FRAMES), f"frame {n}"
