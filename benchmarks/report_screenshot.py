"""docs/report.png: a `dvface report` page rendered by headless Chromium, from synthetic media only.

Two drawn cartoon faces drift across a 24-frame shot. No detector finds a drawing, so their tracks
are written by hand from the drawn geometry (as a user hand-edits a tracks file) and given to
`dvface restore --tracks ... --report`. The bundled model restores them. Needs `chromium`
(`apt-get install chromium`). Usage, from the repository root:

    python benchmarks/report_screenshot.py [--out runs/report_demo] [--png docs/report.png]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from dvface_plugin.cli import main as dvface
from dvface_plugin.faces import Track
from dvface_plugin.faces.align import alignment_matrix
from dvface_plugin.faces.trackdata import FaceState, Tracks
from dvface_plugin.media import MediaWriter, open_media
from dvface_plugin.wholeframe.stages import StageTimer
from dvface_plugin.wholeframe.tracksource import input_digest

W, H, FRAMES, FPS = 640, 360, 24, 25
FACES = [((200, 185), 150, (1.2, 0.2)), ((450, 195), 130, (-0.8, -0.3))]  # centre, size, drift per frame


def draw(frame: np.ndarray, cx: float, cy: float, s: float) -> np.ndarray:
    """A cartoon face; returns its 5 landmarks (eyes, nose tip, mouth corners)."""
    c = (int(cx), int(cy))
    cv2.ellipse(frame, c, (int(s * .42), int(s * .55)), 0, 0, 360, (224, 176, 146), -1, cv2.LINE_AA)
    cv2.ellipse(frame, (c[0], int(cy - s * .45)), (int(s * .46), int(s * .26)), 0, 180, 360, (70, 45, 30), -1)
    eyes = [(cx + d * s * .17, cy - s * .08) for d in (-1, 1)]
    for ex, ey in eyes:
        cv2.ellipse(frame, (int(ex), int(ey)), (int(s * .09), int(s * .05)), 0, 0, 360, (245, 245, 240), -1, cv2.LINE_AA)
        cv2.circle(frame, (int(ex), int(ey)), int(s * .04), (60, 40, 25), -1, cv2.LINE_AA)
    nose = (cx, cy + s * .1)
    cv2.line(frame, (int(cx), int(cy - s * .02)), (int(nose[0]), int(nose[1])), (190, 130, 110), 2, cv2.LINE_AA)
    mouth = [(cx - s * .14, cy + s * .27), (cx + s * .14, cy + s * .27)]
    cv2.ellipse(frame, (int(cx), int(cy + s * .27)), (int(s * .14), int(s * .05)), 0, 0, 180, (160, 70, 70), 3,
                cv2.LINE_AA)
    return np.array([*eyes, nose, *mouth], np.float64)


def make_shot(folder: Path) -> tuple[Path, Path]:
    """The shot and its hand-made tracks file."""
    rng = np.random.default_rng(0)
    background = cv2.GaussianBlur(rng.integers(70, 130, (H, W, 3)).astype(np.uint8), (0, 0), 6)
    shot = folder / "shot.mkv"
    states: list[list[FaceState]] = [[] for _ in FACES]
    with MediaWriter(shot, fps=FPS, width=W, height=H) as writer:
        for n in range(FRAMES):
            frame = background.copy()
            for k, ((x, y), size, (dx, dy)) in enumerate(FACES):
                marks = draw(frame, x + dx * n, y + dy * n, size)
                box = np.array([x + dx * n - size * .45, y + dy * n - size * .7, x + dx * n + size * .45,
                                y + dy * n + size * .6])
                states[k].append(FaceState(n, box, 1.0, marks, marks, alignment_matrix(marks)))
            writer.write(cv2.GaussianBlur(frame, (0, 0), 1.2))  # soft, like the footage the model restores
    with open_media(shot) as src:
        digest = input_digest(src, StageTimer())[0]
    tracks = Tracks(W, H, FRAMES, float(FPS), digest, {"made_by": "benchmarks/report_screenshot.py"},
                    [Track(k + 1, faces) for k, faces in enumerate(states)])
    tracks_file = folder / "tracks.json"
    tracks.save(tracks_file)
    return shot, tracks_file


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/report_demo"))
    parser.add_argument("--png", type=Path, default=Path("docs/report.png"))
    args = parser.parse_args()
    if shutil.which("chromium") is None:
        print("report_screenshot: chromium is not installed (apt-get install chromium)", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    shot, tracks_file = make_shot(args.out)
    qc = args.out / "qc"
    code = dvface(["restore", str(shot), "-o", str(args.out / "restored.mkv"), "--tracks", str(tracks_file),
                   "--report", str(qc), "--quiet", "-y"])
    if code:
        return code
    full = args.out / "page.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--force-device-scale-factor=1", "--window-size=1100,1500", f"--screenshot={full}",
                    (qc / "index.html").resolve().as_uri()], check=True, capture_output=True, timeout=120)
    page = cv2.imread(str(full))
    cv2.imwrite(str(args.png), page, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    print(f"{args.png}: {page.shape[1]}x{page.shape[0]} from {qc / 'index.html'} (fps {Fraction(FPS)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
