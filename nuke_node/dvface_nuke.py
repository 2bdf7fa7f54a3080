"""The DVFaceRestore node: a Group built from Python that restores faces through the DVFace worker.

Nuke has no Python pixel operator, so a restore is a batch step started by a button:
1. the node's input range, converted by an OCIOColorSpace (`dvface_to_model`) from the input's
   colour space to the model's sRGB-encoded Rec.709 of the script's OCIO config, is rendered to
   float EXR with a temporary Write (`nuke.execute`, main thread, from the button callback; never
   from knobChanged);
2. the worker (`dvface serve`, its own Python environment, started on first use) restores the
   range and writes float EXR with the face matte as channel `dvface.matte` and `dvface.changed`,
   1 exactly where it changed a pixel;
3. a Read inside the group (`dvface_read`) brings the result back, an OCIOColorSpace
   (`dvface_from_model`) converts it to the input's colour space, and a Keymix (`dvface_keymix`)
   takes it only where `dvface.changed` is 1, so every other pixel is the input's own; a Switch
   (`dvface_switch`) passes the input through until the first restore.
In the GUI step 2 runs on a background thread that talks to Nuke only through
`nuke.executeInMainThread`; in terminal and farm sessions (`nuke -t`, `nuke -x`, no GUI) the
same path runs synchronously, without Qt.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sys
import tempfile
import threading
import uuid
import weakref
from pathlib import Path
from typing import Any

import nuke

from dvface_plugin.worker.client import PYTHON_ENV, WorkerCancelled, WorkerClient, WorkerError

NODE_CLASS = "DVFaceRestore"
WORK_DIR_ENV = "DVFACE_WORK_DIR"
STABILISE_CHOICES = ["model", "off", "1", "2", "3", "4"]
# The model's colour space under the names configs give it, and the worker's changed-pixel channel;
# the same as dvface_plugin.colour.MODEL_SPACES and worker.exrio.CHANGED_CHANNEL, which Nuke's
# Python cannot import (numpy, OpenEXR).
MODEL_SPACES = ("sRGB Encoded Rec.709 (sRGB)", "srgb_tx", "sRGB - Texture", "Utility - sRGB - Texture", "sRGB")
CHANGED_CHANNEL = "dvface.changed"

_client: WorkerClient | None = None
_client_lock = threading.Lock()
_jobs: dict[str, "RestoreJob"] = {}
_panels: dict[str, "weakref.WeakSet[Any]"] = {}


class DVFaceNukeError(Exception):
    """A restore that cannot start or did not finish; the message says what to change."""


def worker_python() -> str:
    """The worker environment's interpreter: $DVFACE_PYTHON, else the checkout's .venv.

    Never Nuke's own interpreter: the worker needs torch and friends, which do not belong in Nuke.
    """
    chosen = os.environ.get(PYTHON_ENV)
    if chosen:
        return chosen
    root = Path(__file__).resolve().parents[1]
    for candidate in (root / ".venv" / "bin" / "python", root / ".venv" / "Scripts" / "python.exe"):
        if candidate.is_file():
            return str(candidate)
    raise DVFaceNukeError(f"no DVFace worker environment: set {PYTHON_ENV} to the python of the environment "
                          f"where dvface-plugin is installed (see nuke_node/README.md)")


def client() -> WorkerClient:
    """The session's worker client (the worker itself starts on the first request)."""
    global _client
    with _client_lock:
        if _client is None:
            _client = WorkerClient(worker_python())
        return _client


def set_client(new: WorkerClient | None) -> None:
    """Use another worker (tests, or a studio's shared worker); closes the previous owned one."""
    global _client
    with _client_lock:
        old, _client = _client, new
    if old is not None and old is not new:
        old.close()


# --- building the node ------------------------------------------------------------------------


def _knob(node: nuke.Node, knob: nuke.Knob, tooltip: str = "", *, value: Any = None, hidden: bool = False) -> None:
    node.addKnob(knob)
    if value is not None:
        knob.setValue(value)
    if tooltip:
        knob.setTooltip(tooltip)
    if hidden:
        knob.setVisible(False)


def _button(name: str, label: str, function: str) -> nuke.PyScript_Knob:
    return nuke.PyScript_Knob(name, label, f"import dvface_nuke\ndvface_nuke.{function}(nuke.thisNode())")


def _unique_name(base: str) -> str:
    taken = {n.name() for n in nuke.allNodes()}
    i = 1
    while f"{base}{i}" in taken:
        i += 1
    return f"{base}{i}"


def create_node() -> nuke.Node:
    """A new DVFaceRestore group in the current context (what the Nodes menu entry calls)."""
    name = _unique_name(NODE_CLASS)
    group = nuke.nodes.Group()
    group.setName(name)
    with group:
        inp = nuke.nodes.Input(name="Input1")
        to_model = nuke.nodes.OCIOColorSpace(name="dvface_to_model")  # colour spaces set by each Restore
        to_model.setInput(0, inp)
        read = nuke.nodes.Read(name="dvface_read", raw=True, before="black", after="black", on_error="black")
        from_model = nuke.nodes.OCIOColorSpace(name="dvface_from_model")
        from_model.setInput(0, read)
        keymix = nuke.nodes.Keymix(name="dvface_keymix", channels="all", maskChannel=CHANGED_CHANNEL)
        keymix.setInput(0, inp)
        keymix.setInput(1, from_model)
        keymix.setInput(2, read)
        switch = nuke.nodes.Switch(name="dvface_switch", which=0)
        switch.setInput(0, inp)
        switch.setInput(1, keymix)
        out = nuke.nodes.Output(name="Output1")
        out.setInput(0, switch)
    _knob(group, nuke.Tab_Knob("dvface", "DVFace"))
    _knob(group, nuke.PyCustom_Knob("panel", "", "__import__('dvface_nuke').PanelKnob(nuke.thisNode())"))
    _knob(group, nuke.File_Knob("model", "model"), "model folder (config.json + dvface.safetensors) or a name "
          "under the worker's models/ folder; empty: the bundled default")
    _knob(group, nuke.Enumeration_Knob("device", "device", ["auto", "cpu", "cuda"]))
    _knob(group, nuke.Double_Knob("strength", "strength"), "how much of the restoration to use: 0 leaves the "
          "plate as it is, 1 is the full restoration; values between mix restored and original faces in the matte",
          value=1.0)
    _knob(group, nuke.Enumeration_Knob("faces", "faces", ["all", "largest", "center"]))
    _knob(group, nuke.Double_Knob("min_face", "min face size"), "ignore faces whose median size (px) is smaller")
    _knob(group, nuke.Boolean_Knob("use_input_range", "use input range"), value=True)
    _knob(group, nuke.Int_Knob("first_frame", "frame range"), value=1)
    _knob(group, nuke.Int_Knob("last_frame", ""), value=1)
    _knob(group, nuke.Int_Knob("window", "window"), "engine window in frames (4k+1); 0: the model's own")
    _knob(group, nuke.Enumeration_Knob("stabilise", "stabilise", STABILISE_CHOICES),
          "flow-guided temporal stabilisation: frames each side averaged with every restored face, against "
          "residual flicker; 'model' uses the model's own setting")
    _knob(group, nuke.Double_Knob("grain", "grain"), "how much of the plate's own grain goes back on the restored "
          "faces: 0 none, 1 all of it (each frame's difference from its flow-guided average with its neighbours, "
          "which the model removes), so a restored face on film keeps the grain around it")
    _knob(group, nuke.Enumeration_Knob("colourspace", "input colourspace", colour_space_names(to_model)),
          "the input's colour space in the script's OCIO config (default: the working space); the node converts "
          "it to the model's sRGB-encoded Rec.709 and the restored faces back, from the next Restore on",
          value=nuke.root()["workingSpaceLUT"].value())
    _knob(group, nuke.Enumeration_Knob("highlights", "values above 1", ["clip", "soft"]),
          "how the model's copy squeezes highlights; the plate's own values above 1 are kept either way")
    _knob(group, nuke.Double_Knob("knee", "soft knee"), value=0.8)
    _knob(group, nuke.Boolean_Knob("unpremultiply", "unpremultiply"), "divide by alpha before restoring",
          value=True)
    _knob(group, nuke.Boolean_Knob("colour_match", "match plate colour"), value=True)
    _knob(group, nuke.Boolean_Knob("write_report", "write QC report"), "with each restore, write a QC page "
          "(index.html: every face's crops, detail, flicker and identity over time) to the work folder's "
          "report-FIRST-LAST folder; the panel links to it", value=False)
    _knob(group, nuke.File_Knob("work_dir", "work folder"), f"where input and restored EXRs go; empty: "
          f"${WORK_DIR_ENV} or the temp folder. Farm renders need a folder every machine sees")
    _knob(group, _button("restore", "Restore range", "restore_clicked"))
    _knob(group, _button("cancel", "Cancel", "cancel_clicked"))
    _knob(group, _button("clear_cache", "Clear cache", "clear_cache_clicked"))
    _knob(group, nuke.String_Knob("status", "status"), value="not restored")
    _knob(group, nuke.String_Knob("disabled_tracks", "disabled tracks"), hidden=True)
    _knob(group, nuke.Multiline_Eval_String_Knob("tracks_json", "tracks"), hidden=True, value="[]")
    _knob(group, nuke.String_Knob("restored_range", "restored range"), hidden=True)
    _knob(group, nuke.String_Knob("report_path", "QC report"), hidden=True)
    group["status"].setEnabled(False)
    group["knobChanged"].setValue("import dvface_nuke\ndvface_nuke.knob_changed(nuke.thisNode(), nuke.thisKnob())")
    knob_changed(group, group["highlights"])
    return group


def knob_changed(node: nuke.Node, knob: nuke.Knob) -> None:
    """Panel-only tidying: shows and enables knobs, lists the config's colour spaces. Never renders or rewires
    (Nuke forbids it here)."""
    name = knob.name()
    if name in ("highlights", "showPanel"):
        node["knee"].setVisible(node["highlights"].value() == "soft")
    if name in ("use_input_range", "showPanel"):
        manual = not node["use_input_range"].value()
        node["first_frame"].setEnabled(manual)
        node["last_frame"].setEnabled(manual)
    if name == "showPanel":  # the script's OCIO config may have changed since the node was made
        node["colourspace"].setValues(colour_space_names(node.node("dvface_to_model")))


def is_dvface(node: nuke.Node) -> bool:
    return node.Class() == "Group" and node.knob("tracks_json") is not None and node.knob("restore") is not None


# --- settings and paths -----------------------------------------------------------------------


def frame_range(node: nuke.Node) -> tuple[int, int]:
    if node["use_input_range"].value():
        inp = node.input(0)
        if inp is None:
            raise DVFaceNukeError(f"{node.name()}: connect an input to restore")
        return inp.firstFrame(), inp.lastFrame()
    first, last = int(node["first_frame"].value()), int(node["last_frame"].value())
    if first > last:
        raise DVFaceNukeError(f"{node.name()}: frame range {first}-{last} is empty; set first <= last")
    return first, last


def disabled_tracks(node: nuke.Node) -> list[int]:
    return [int(v) for v in re.findall(r"\d+", node["disabled_tracks"].value())]


def stabilise_radius(choice: str) -> int | None:
    """The `stabilise` knob's choice as the worker's setting: None = the model's own, 0 = off."""
    return None if choice == "model" else 0 if choice == "off" else int(choice)


def settings(node: nuke.Node) -> dict[str, Any]:
    """The worker's restore settings, from the node's knobs."""
    window = int(node["window"].value())
    return {
        "model": node["model"].value().strip(),
        "device": node["device"].value(),
        "strength": float(node["strength"].value()),
        "faces": node["faces"].value(),
        "min_face": float(node["min_face"].value()),
        "disabled": disabled_tracks(node),
        "window": window if window > 0 else None,
        "stabilise": stabilise_radius(node["stabilise"].value()),
        # A node saved by a version without the knob restores as it did then.
        "grain": float(node["grain"].value()) if node.knob("grain") is not None else 0.0,
        "colour_match": bool(node["colour_match"].value()),
        "fps": float(nuke.root()["fps"].value()),
        "colour": {
            "transfer": "srgb",  # dvface_to_model already converted the input to the model's space
            "highlights": node["highlights"].value(),
            "knee": float(node["knee"].value()),
            "unpremultiply": bool(node["unpremultiply"].value()),
        },
    }


def colour_space_names(ocio: nuke.Node) -> list[str]:
    """The script's colour spaces as an OCIOColorSpace offers them, without the menu's family paths
    ("ACES/ACEScg" -> "ACEScg"): the names OCIO and the knobs take."""
    return [name.rsplit("/", 1)[-1] for name in ocio["in_colorspace"].values()]


def model_space(names: list[str]) -> str:
    """The config's name for the model's space, sRGB-encoded Rec.709: the first of MODEL_SPACES it has."""
    found = next((n for n in MODEL_SPACES if n in names), None)
    if found is None:
        raise DVFaceNukeError(f"the script's OCIO config has no sRGB-encoded Rec.709 colour space (one of "
                              f"{', '.join(MODEL_SPACES)}), which the model works in; use a config that has one")
    return found


def set_colour_spaces(node: nuke.Node) -> None:
    """Point the group's OCIOColorSpace nodes from the input's space to the model's and back.

    Done by each Restore, before rendering: the knob may name a space the script's config no longer has.
    """
    to_model, from_model = node.node("dvface_to_model"), node.node("dvface_from_model")
    names = colour_space_names(to_model)
    plate = node["colourspace"].value()
    if plate not in names:
        raise DVFaceNukeError(f"{node.name()}: input colourspace {plate!r} is not in the script's OCIO config; "
                              f"choose one of {', '.join(names)}")
    model = model_space(names)
    unpremult = "rgba.alpha" if node["unpremultiply"].value() else "none"
    for ocio, source, target in ((to_model, plate, model), (from_model, model, plate)):
        ocio["in_colorspace"].setValue(source)
        ocio["out_colorspace"].setValue(target)
        ocio["unpremult"].setValue(unpremult)


def work_dir(node: nuke.Node) -> Path:
    chosen = node["work_dir"].value().strip()
    if chosen:
        return Path(chosen)
    script = Path(nuke.root()["name"].value() or "untitled").stem or "untitled"
    base = os.environ.get(WORK_DIR_ENV) or os.path.join(tempfile.gettempdir(), "dvface")
    return Path(base) / script / node.name()


def report_dir(node: nuke.Node, first: int, last: int) -> Path | None:
    """Where the restore of first..last writes its QC page, when the node asks for one."""
    return work_dir(node) / f"report-{first}-{last}" if node["write_report"].value() else None


def output_pattern(node: nuke.Node) -> Path:
    return work_dir(node) / "restored" / f"{node.name()}.####.exr"


def input_pattern(node: nuke.Node) -> Path:
    # Farm machines render the input side by side into a shared folder: one folder per process.
    folder = "input" if nuke.GUI else f"input-{socket.gethostname()}-{os.getpid()}"
    return work_dir(node) / folder / f"{node.name()}.####.exr"


def render_input(node: nuke.Node, first: int, last: int) -> Path:
    """Render the node's input, in the model's colour space, to float EXR with a temporary Write (main thread only)."""
    inp = node.input(0)
    if inp is None:
        raise DVFaceNukeError(f"{node.name()}: connect an input to restore")
    pattern = input_pattern(node)
    pattern.parent.mkdir(parents=True, exist_ok=True)
    output_pattern(node).parent.mkdir(parents=True, exist_ok=True)
    channels = "rgba" if "rgba.alpha" in inp.channels() else "rgb"
    with node:
        write = nuke.nodes.Write(file=str(pattern), file_type="exr", datatype="32 bit float",
                                 compression="Zip (1 scanline)", channels=channels, raw=True)
        write.setInput(0, node.node("dvface_to_model"))
    try:
        nuke.execute(write, first, last)
    finally:
        nuke.delete(write)
    return pattern


# --- restoring --------------------------------------------------------------------------------


class RestoreJob:
    """One restore of one node's range; runs on a thread in the GUI, inline in terminal sessions."""

    def __init__(self, node: nuke.Node, frames: tuple[int, int], restore: tuple[int, int], source: Path) -> None:
        self.id = uuid.uuid4().hex
        self.node_name = node.fullName()
        self.frames = frames
        self.restore = restore
        self.source = source
        self.output = output_pattern(node)
        self.report = report_dir(node, *restore)
        self.settings = settings(node)
        self.result: dict[str, Any] | None = None
        self.error: str | None = None
        self.cancelled = False
        self.finished = threading.Event()
        self.events: list[dict[str, Any]] = []
        self.thread: threading.Thread | None = None

    def run(self) -> None:
        task = nuke.ProgressTask(f"DVFace: {self.node_name}") if nuke.GUI else None
        if task is not None:
            threading.Thread(target=self._watch_cancel, args=(task,), daemon=True).start()
        try:
            self.result = client().restore(str(self.source), self.frames, str(self.output), self.settings,
                                           restore=self.restore, job=self.id,
                                           on_event=lambda event: self._on_event(event, task),
                                           report=None if self.report is None else str(self.report))
        except WorkerCancelled:
            self.cancelled = True
            self.error = "cancelled"
        except (WorkerError, DVFaceNukeError, OSError) as exc:
            self.error = str(exc)
        except Exception as exc:  # a thread's exception would vanish: report it on the node instead
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.finished.set()
            if nuke.GUI:
                nuke.executeInMainThread(_finish, args=(self.node_name, self.id))
            else:
                _finish(self.node_name, self.id)

    def _watch_cancel(self, task: Any) -> None:
        while not self.finished.wait(0.2):
            if task.isCancelled() and not self.cancelled:
                self.cancel()

    def cancel(self) -> None:
        self.cancelled = True
        try:
            client().cancel(self.id)
        except (WorkerError, OSError):
            pass  # the worker is gone: the job ends on its own

    def _on_event(self, event: dict[str, Any], task: Any) -> None:
        self.events.append(event)
        text = describe(event)
        if task is not None:
            if event.get("total"):
                task.setProgress(int(100 * event["done"] / event["total"]))
            task.setMessage(text)
        if nuke.GUI:
            nuke.executeInMainThread(_show_event, args=(self.node_name, event))
        else:
            print(f"DVFace {self.node_name}: {text}", file=sys.stderr)


def describe(event: dict[str, Any]) -> str:
    kind = event.get("event")
    if kind == "progress":
        verb = {"analyse": "analysing", "restore": "restoring"}.get(event.get("stage"), event.get("stage"))
        return f"{verb} frame {event.get('frame')} ({event.get('done')}/{event.get('total')})"
    if kind == "restarted":
        return f"worker died; restarted (pid {event.get('pid')}), redoing the range"
    if kind == "accepted":
        return "worker accepted the range"
    return str(kind)


def start_restore(node: nuke.Node, first: int | None = None, last: int | None = None) -> RestoreJob:
    """Render the input and start restoring frames first..last (default: the whole range).

    The face analysis and the engine's windows always span the node's whole frame range, so a
    farm machine restoring a part of it gets the same pixels as a single whole render.
    """
    if not is_dvface(node):
        raise DVFaceNukeError(f"{node.name()} is not a {NODE_CLASS} node")
    name = node.fullName()
    running = _jobs.get(name)
    if running is not None and not running.finished.is_set():
        raise DVFaceNukeError(f"{node.name()} is already restoring; cancel it first")
    frames = frame_range(node)
    restore = (frames[0] if first is None else first, frames[1] if last is None else last)
    if not frames[0] <= restore[0] <= restore[1] <= frames[1]:
        raise DVFaceNukeError(f"frames {restore[0]}-{restore[1]} lie outside {node.name()}'s range "
                              f"{frames[0]}-{frames[1]}")
    set_colour_spaces(node)
    client()  # fails here, before any rendering, when no worker environment is set up
    source = render_input(node, *frames)
    job = RestoreJob(node, frames, restore, source)
    _jobs[name] = job
    node["status"].setValue(f"restoring {restore[0]}-{restore[1]}")
    _panel_call(name, "set_running", True)
    if nuke.GUI:
        job.thread = threading.Thread(target=job.run, name=f"dvface-{node.name()}", daemon=True)
        job.thread.start()
    else:
        job.run()
    return job


def restore(node: nuke.Node, first: int | None = None, last: int | None = None) -> dict[str, Any]:
    """Terminal and farm sessions: restore synchronously; raises DVFaceNukeError on failure."""
    job = start_restore(node, first, last)
    job.finished.wait()
    if job.thread is not None:
        job.thread.join()
    if job.result is None:
        raise DVFaceNukeError(f"{node.name()}: restore failed: {job.error}")
    return job.result


def _finish(node_name: str, job_id: str) -> None:
    """Main thread: point the group's Read at the result, or report the failure."""
    node = nuke.toNode(node_name)
    job = _jobs.get(node_name)
    if node is None or job is None or job.id != job_id:
        return
    if not nuke.GUI and "-" in job.source.parent.name:
        shutil.rmtree(job.source.parent, ignore_errors=True)  # a farm process's private input copy
    if job.result is None:
        node["status"].setValue("cancelled" if job.cancelled else f"failed: {job.error}")
        _panel_call(node_name, "set_running", False)
        _panel_call(node_name, "set_status", node["status"].value())
        if nuke.GUI and not job.cancelled:
            nuke.message(f"DVFace {node.name()}: {job.error}")
        return
    r = job.result
    lo, hi = r["frames"]
    read = node.node("dvface_read")
    read["file"].setValue(str(job.output))
    for knob, value in (("first", job.frames[0]), ("last", job.frames[1]),
                        ("origfirst", job.frames[0]), ("origlast", job.frames[1])):
        read[knob].setValue(value)
    read["reload"].execute()
    node.node("dvface_switch")["which"].setValue(1)
    node["tracks_json"].setValue(json.dumps(r["tracks"]))
    node["restored_range"].setValue(f"{lo}-{hi}")
    node["report_path"].setValue(r.get("report") or "")
    computed = r["computed"]
    windows = computed["windows"]
    node["status"].setValue(f"restored {lo}-{hi}: {windows} window{'' if windows == 1 else 's'} computed, "
                            f"{computed['cache_hits']} from cache" + ("; QC report written" if r.get("report") else ""))
    _panel_call(node_name, "set_running", False)
    _panel_call(node_name, "set_status", node["status"].value())
    _panel_call(node_name, "set_tracks", r["tracks"])
    _panel_call(node_name, "set_cache", r["cache"])
    _panel_call(node_name, "set_report", r.get("report"))


def _show_event(node_name: str, event: dict[str, Any]) -> None:
    if event.get("event") in ("accepted", "restarted"):
        c = _running_client()
        _panel_call(node_name, "set_worker", c.pid if c is not None else None)
    _panel_call(node_name, "show_event", event)


# --- buttons ----------------------------------------------------------------------------------


def restore_clicked(node: nuke.Node) -> None:
    try:
        start_restore(node)
    except (DVFaceNukeError, WorkerError, RuntimeError) as exc:
        node["status"].setValue(f"failed: {exc}")
        if nuke.GUI:
            nuke.message(str(exc))
        else:
            raise


def cancel_clicked(node: nuke.Node) -> None:
    job = _jobs.get(node.fullName())
    if job is not None and not job.finished.is_set():
        threading.Thread(target=job.cancel, daemon=True).start()  # never block the UI on the socket


def _running_client() -> WorkerClient | None:
    """The worker client if a worker is up; never starts one (panels and buttons only look)."""
    c = _client
    return c if c is not None and c.running() else None


def clear_cache_clicked(node: nuke.Node) -> None:
    c = _running_client()
    if c is None:
        node["status"].setValue("worker not running: nothing cached")
        return
    stats = c.clear_cache()
    node["status"].setValue("worker cache cleared")
    _panel_call(node.fullName(), "set_cache", stats)


def set_track_enabled(node: nuke.Node, track_id: int, enabled: bool) -> None:
    """The panel's per-face switch: takes effect on the next Restore (cached windows make it quick)."""
    off = set(disabled_tracks(node))
    off.discard(track_id) if enabled else off.add(track_id)
    node["disabled_tracks"].setValue(",".join(map(str, sorted(off))))


def refresh_stats(node_name: str) -> None:
    """Ask the worker for cache usage off the main thread; the panel is updated on it."""
    def ask() -> None:
        c = _running_client()
        try:
            stats = c.stats() if c is not None else None
        except (WorkerError, OSError):
            stats = None
        nuke.executeInMainThread(_panel_call, args=(node_name, "set_cache", stats))

    threading.Thread(target=ask, daemon=True).start()


# --- the panel inside the node ------------------------------------------------------------------


def _panel_call(node_name: str, method: str, *args: Any) -> None:
    for panel in list(_panels.get(node_name, ())):
        getattr(panel, method)(*args)


class PanelKnob:
    """The object behind the node's PyCustom_Knob: Nuke calls makeUI() when the panel opens (GUI only)."""

    def __init__(self, node: nuke.Node) -> None:
        self.node_name = node.fullName()
        self.panel = None

    def makeUI(self) -> Any:
        from dvface_panel import DVFacePanel

        node = nuke.toNode(self.node_name)
        panel = DVFacePanel()
        panel.cancelRequested.connect(lambda: cancel_clicked(nuke.toNode(self.node_name)))
        panel.trackToggled.connect(lambda tid, on: set_track_enabled(nuke.toNode(self.node_name), tid, on))
        panel.refreshRequested.connect(lambda: refresh_stats(self.node_name))
        _panels.setdefault(self.node_name, weakref.WeakSet()).add(panel)
        self.panel = panel
        job = _jobs.get(self.node_name)
        panel.set_running(job is not None and not job.finished.is_set())
        panel.set_status(node["status"].value())
        running = _running_client()
        panel.set_worker(running.pid if running is not None else None)
        panel.set_report(node["report_path"].value() or None)
        self.updateValue()
        return panel

    def updateValue(self) -> None:
        node = nuke.toNode(self.node_name)
        if self.panel is not None and node is not None:
            tracks = json.loads(node["tracks_json"].value() or "[]")
            off = set(disabled_tracks(node))
            self.panel.set_tracks([{**t, "enabled": t["id"] not in off} for t in tracks])
