"""benchmarks/side_by_side.py on a synthetic paired clip: sheet size, panel order and content,
temporal offsets, clamped frames and a missing ours-output."""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from dvface_plugin.media import MediaWriter

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import side_by_side  # noqa: E402

SIZE, COUNT = 512, 10


def write_clip(path: Path, frames: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with MediaWriter(path, fps=Fraction(24), width=SIZE, height=SIZE, bit_depth=8) as w:  # FFV1
        for frame in frames:
            w.write(frame)


def smooth_frames(seed: int) -> np.ndarray:
    """Independent random frames, smooth enough to survive the offset search's downscale."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (COUNT, 16, 16, 3), dtype=np.uint8)
    return np.stack([cv2.resize(f, (SIZE, SIZE), interpolation=cv2.INTER_NEAREST) for f in small])


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("sbs")
    gt = smooth_frames(0)
    clip = {
        "GT": gt,
        "LQ": np.clip(gt.astype(np.int16) + 9, 0, 255).astype(np.uint8),
        "DVFace": gt ^ 16,
        "SVFR": np.concatenate([smooth_frames(1)[:1], gt[:-1]]),  # one frame late: SVFR[t+1] = GT[t]
        "old": np.clip(gt.astype(np.int16) - 7, 0, 255).astype(np.uint8),
    }
    folder = root / "data" / "benchmark" / "paired" / "clipA"
    for name in ("GT", "LQ", "DVFace", "SVFR"):
        write_clip(folder / f"{name}.mkv", clip[name])
    write_clip(root / "old" / "paired" / "clipA" / "dvface-tiny.mkv", clip["old"])
    (root / "new").mkdir()
    return root, clip


def panel(sheet: np.ndarray, k: int) -> np.ndarray:
    top = side_by_side.LABEL_HEIGHT
    return sheet[top:top + SIZE, k * SIZE:(k + 1) * SIZE]


def test_sheets_hold_the_panels_in_order_at_one_instant(clips, capsys):
    root, clip = clips
    out = root / "out"
    assert side_by_side.main(["--data", str(root / "data"), "--sets", "paired",
                              "--ours", f"old={root / 'old'}", "--ours", f"new={root / 'new'}",
                              "--frames", "3", "40", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "no new output" in err and "panel left out" in err
    assert "frame 40 shown as 9" in err
    assert "no face found" in err  # noise frames: the zooms fall back to the aligned-crop template

    pngs = sorted((out / "paired").glob("*.png"))
    assert [p.name for p in pngs] == ["clipA_f003.png", "clipA_f009.png"]
    panels = ["LQ", "old", "DVFace", "SVFR", "GT"]  # input | ours | published | GT; "new" left out
    for png, t in zip(pngs, (3, 9)):
        sheet = cv2.cvtColor(cv2.imread(str(png)), cv2.COLOR_BGR2RGB)
        assert sheet.shape[1::-1] == side_by_side.sheet_size(len(panels))
        assert sheet.shape[:2] == (side_by_side.LABEL_HEIGHT + SIZE + 2 * (side_by_side.GAP + 2 * 96),
                                   len(panels) * SIZE)
        for k, name in enumerate(panels):
            shift = 1 if name == "SVFR" else 0
            assert np.array_equal(panel(sheet, k), clip[name][min(t + shift, COUNT - 1)]), name
            assert sheet[:side_by_side.LABEL_HEIGHT, k * SIZE:(k + 1) * SIZE].std() > 0  # label drawn
    # the searched offset lines SVFR up with GT; at the last frame it is clamped instead
    sheet = cv2.cvtColor(cv2.imread(str(pngs[0])), cv2.COLOR_BGR2RGB)
    assert np.array_equal(panel(sheet, 3), panel(sheet, 4))
    # the zoom row: the GT panel's eyes, then its mouth, each 2x with whole pixels
    boxes = side_by_side.zoom_boxes(SIZE)
    y = side_by_side.LABEL_HEIGHT + SIZE
    for x0, y0, w, h in boxes.values():
        y += side_by_side.GAP
        crop = clip["GT"][3][y0:y0 + h, x0:x0 + w]
        assert np.array_equal(sheet[y:y + 2 * h, 4 * SIZE:5 * SIZE], crop.repeat(2, 0).repeat(2, 1))
        y += 2 * h


def test_zoom_boxes_sit_on_the_template_eyes_and_mouth():
    boxes = side_by_side.zoom_boxes(SIZE)
    template = side_by_side.ffhq_template(SIZE)
    for (x, y, w, h), points in ((boxes["eyes"], template[:2]), (boxes["mouth"], template[3:])):
        assert w * 2 == SIZE
        assert ((points >= [x, y]) & (points <= [x + w, y + h])).all()
    assert boxes["eyes"][1] + boxes["eyes"][3] <= template[2, 1] <= boxes["mouth"][1]  # nose between


def test_zoom_boxes_follow_a_face_that_is_not_aligned():
    template = side_by_side.ffhq_template(SIZE)
    face = template * 0.5 + [200, 150]  # a half-size face, right of and below the crop centre
    boxes = side_by_side.zoom_boxes(SIZE, face)
    for (x, y, w, h), points in ((boxes["eyes"], face[:2]), (boxes["mouth"], face[3:])):
        assert (w, h) == (256, 96)  # still a 2x zoom of one panel's width
        assert np.allclose([x + w / 2, y + h / 2], points.mean(0), atol=1)
    corner = side_by_side.zoom_boxes(SIZE, template * 0.5 + [300, 300])  # boxes kept in the frame
    assert all(x + w <= SIZE and y + h <= SIZE for x, y, w, h in corner.values())


def test_help_works(capsys):
    with pytest.raises(SystemExit) as exc:
        side_by_side.main(["--help"])
    assert exc.value.code == 0
    assert "--ours" in capsys.readouterr().out
