"""The QC report as one static HTML page: no script, no server, no network; opening the file is
enough. Plots are inline SVG; the input/restored comparison is a CSS toggle (a checkbox)."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path

PLOT_W, PLOT_H = 560, 120
STYLE = """
body { font: 14px system-ui, sans-serif; margin: 24px; background: #1d1f21; color: #ddd; }
h1, h2 { font-weight: 600; } table { border-collapse: collapse; } td, th { padding: 2px 10px 2px 0; text-align: left; }
section { border-top: 1px solid #444; margin-top: 24px; padding-top: 8px; }
.strip img { width: 128px; height: 128px; margin: 0 2px 0 0; }
.strip figure { display: inline-block; margin: 0 12px 8px 0; } figcaption { font-size: 12px; color: #aaa; }
svg { background: #26282b; } .legend { font-size: 12px; color: #aaa; }
.toggle input { display: none; } .toggle label { cursor: pointer; display: inline-block; }
.toggle .restored { display: none; } .toggle input:checked ~ label .restored { display: block; }
.toggle input:checked ~ label .input { display: none; } .toggle img { max-width: 100%; }
.warn { color: #e8a33d; } .matte img { max-width: 480px; }
"""


def write_page(path: Path, report: dict) -> None:
    """`report` as built by `build.build_report`, written as `path` (images beside it)."""
    shot = report["shot"]
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in shot.items())
    unit = shot.get("unit", "frame")  # "field": an interlaced clip, measured field by field
    tracks = "".join(_track(t, shot["identity_measured"], unit) for t in report["tracks"]) or "<p>No face track.</p>"
    gaps = "".join(f"<li>{unit}s {g['first']}-{g['last']}: {html.escape(g['why'])}</li>"
                   for g in report["frames_without_restored_face"]) or "<li>none</li>"
    fields = ("" if unit == "frame" else '<p class="legend">Interlaced: restored and measured field by field; '
              "numbers count fields, two a frame (fields 2k and 2k + 1 are frame k's).</p>")
    path.write_text(f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>dvface report: {html.escape(Path(shot['input']).name)}</title>
<style>{STYLE}</style></head><body>
<h1>dvface report: {html.escape(Path(shot['input']).name)}</h1>
<table>{rows}</table>{fields}
<section><h2>{unit.capitalize()}s without a restored face</h2><ul>{gaps}</ul></section>
{tracks}
<p class="legend">Made in {report['seconds']} s by dvface report.</p>
</body></html>
""")


def _track(t: dict, identity_measured: bool, unit: str) -> str:
    state = "restored" if t["restored"] else '<span class="warn">not restored</span>'
    if t["left_out"]:
        state += f': {html.escape(t["left_out"])}'
    strip = "".join(
        f'<figure><img src="{p["input"]}" alt="input {unit} {p["frame"]}"><img src="{p["restored"]}" '
        f'alt="restored {unit} {p["frame"]}"><figcaption>{unit} {p["frame"]}: input | restored</figcaption></figure>'
        for p in t["thumbs"])
    full = ""
    if t["full"]:
        f = t["full"]
        full = (f'<div class="toggle"><input type="checkbox" id="t{t["id"]}"><label for="t{t["id"]}">'
                f'<img class="input" src="{f["input"]}" alt="input {unit} {f["frame"]}">'
                f'<img class="restored" src="{f["restored"]}" alt="restored {unit} {f["frame"]}">'
                f'</label><p class="legend">{unit} {f["frame"]}: click the picture to switch input / restored</p></div>'
                f'<figure class="matte"><img src="{f["matte"]}" alt="changed pixels, {unit} {f["frame"]}">'
                f'<figcaption>white: every pixel the restore changed in {unit} {f["frame"]} (all faces); '
                f'black is the plate as it was</figcaption></figure>')
    first, lost = t["first_frame"], t["lost"]
    plots = [_plot("detail, restored over input (1 = as sharp)", [(first + i, v) for i, v in enumerate(t["detail"])],
                   None, lost, unit),
             _plot("flicker (8-bit levels): input grey, restored blue",
                   [(first + 1 + i, v) for i, v in enumerate(t["flicker_restored"])],
                   [(first + 1 + i, v) for i, v in enumerate(t["flicker_input"])], lost, unit)]
    if identity_measured:
        plots.append(_plot("identity distance to the input (same person below 0.6)", t["identity"], None, lost, unit)
                     if t["identity"] else '<p class="legend">identity: no face found by dlib in these crops</p>')
    if lost:
        plots.append(f'<p class="legend"><span class="warn">orange marks</span>: {len(lost)} {unit}'
                     f'{"" if len(lost) == 1 else "s"} where the face was not detected and its position was '
                     f'interpolated ({html.escape(_runs(lost))}); check these first</p>')
    return (f'<section><h2>Track {t["id"]}: {unit}s {first}-{t["last_frame"]}, {state}</h2>'
            f'<div class="strip">{strip}</div>{full}{"".join(plots)}</section>')


def _runs(frames: list[int]) -> str:
    """Ascending frame numbers as "3-7, 12"."""
    runs: list[list[int]] = []
    for f in frames:
        if runs and f == runs[-1][1] + 1:
            runs[-1][1] = f
        else:
            runs.append([f, f])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def _plot(title: str, points: list, grey: list | None, marks: Sequence[int] = (), unit: str = "frame") -> str:
    """A line plot of (frame, value) points as inline SVG, with an optional grey reference line and
    orange marks at `marks` (frames where the track was interpolated)."""
    series = [s for s in (grey, points) if s]
    values = [v for s in series for _, v in s if math.isfinite(v)]
    if not values:
        return f'<p class="legend">{html.escape(title)}: no value</p>'
    frames = [f for s in series for f, _ in s]
    f0, f1 = min(frames), max(frames)
    top = max(values) * 1.1 or 1.0

    def x(f: int) -> float:
        return 8 + (PLOT_W - 16) * ((f - f0) / (f1 - f0) if f1 > f0 else 0.5)

    def line(s: list, colour: str) -> str:
        xy = " ".join(f"{x(f):.1f},{PLOT_H - 16 - (PLOT_H - 28) * v / top:.1f}" for f, v in s if math.isfinite(v))
        return f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{xy}"/>'

    ticks = "".join(f'<line class="lost" x1="{x(f):.1f}" x2="{x(f):.1f}" y1="20" y2="{PLOT_H - 16}" '
                    f'stroke="#e8a33d" stroke-opacity="0.5"/>' for f in marks if f0 <= f <= f1)
    lines = ticks + (line(grey, "#888") if grey else "") + line(points, "#5aa0e6")
    return (f'<figure><svg width="{PLOT_W}" height="{PLOT_H}" role="img" aria-label="{html.escape(title)}">'
            f'<text x="8" y="14" fill="#aaa" font-size="12">{html.escape(title)}; max {max(values):.3g}</text>'
            f'<text x="8" y="{PLOT_H - 2}" fill="#777" font-size="11">{unit} {f0}</text>'
            f'<text x="{PLOT_W - 8}" y="{PLOT_H - 2}" fill="#777" font-size="11" text-anchor="end">{unit} {f1}</text>'
            f'{lines}</svg></figure>')
