"""A behavioural stand-in for Nuke's `nuke` module, enough to drive the DVFace node without a licence.

It models what the node relies on and the rules real Nuke enforces, so breaking one fails a test:
- a node graph (Read, Write, Group with Input/Output, Switch, OCIOColorSpace, Keymix) that really
  evaluates pixels: Read loads EXR channels (layer.channel names such as rgba.red or dvface.matte),
  Write's `execute` writes the EXR files a real Write would (rgb/rgba, 32-bit float or 16-bit half);
- OCIO colour management as a script sees it: the root's config (`customOCIOConfigPath`, else
  $OCIO, else OpenColorIO's built-in studio config), its working space (`workingSpaceLUT`), colour
  space menus that list the config's names, and OCIOColorSpace converting with OpenColorIO itself;
- knobs with values, unknown knob names rejected like Nuke's constructors do;
- `execute` only on the main thread and never inside knobChanged;
- `executeInMainThread*` refuse to run on the main thread (they hang in Nuke) and queue work that
  the test's main loop (`process_events` / `run_until`) runs;
- `GUI` is a module flag the tests flip for terminal/farm sessions.
"""

from __future__ import annotations

import contextlib
import functools
import os
import queue
import re
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import OpenEXR
import PyOpenColorIO as OCIO

GUI = True
INVISIBLE = 0x400
BUILTIN_OCIO_CONFIG = "ocio://studio-config-latest"
RGB = ["rgba.red", "rgba.green", "rgba.blue"]
messages: list[str] = []
menus: dict[str, "Menu"] = {}

_main_thread = threading.main_thread()
_main_queue: "queue.Queue[tuple[Callable, tuple, dict, threading.Event | None, list]]" = queue.Queue()
_state = threading.local()
_context: list["Node"] = []
_in_knob_changed = 0
executed: list[tuple[str, int, int]] = []  # (write node name, first, last) of every execute


def reset(gui: bool = True) -> None:
    """A fresh session: empty script, GUI flag, no queued main-thread work."""
    global GUI, _root, _in_knob_changed
    GUI = gui
    _root = Root()
    _context.clear()
    messages.clear()
    executed.clear()
    main_thread_calls.clear()
    ProgressTask.instances.clear()
    _in_knob_changed = 0
    while not _main_queue.empty():
        _main_queue.get_nowait()


# --- knobs ----------------------------------------------------------------------------------------


class Knob:
    default: Any = ""

    def __init__(self, name: str, label: str | None = None, value: Any = None) -> None:
        self._name = name
        self._label = label or name
        self._value = self.default if value is None else value
        self._flags = 0
        self._enabled = True
        self.node: Node | None = None

    def name(self) -> str:
        return self._name

    def label(self) -> str:
        return self._label

    def value(self) -> Any:
        return self._value

    getValue = value

    def setValue(self, value: Any) -> bool:
        self._value = self._coerce(value)
        return True

    def _coerce(self, value: Any) -> Any:
        return value

    def setFlag(self, flag: int) -> None:
        self._flags |= flag

    def clearFlag(self, flag: int) -> None:
        self._flags &= ~flag

    def getFlag(self, flag: int) -> bool:
        return bool(self._flags & flag)

    def setVisible(self, visible: bool) -> None:
        self.clearFlag(INVISIBLE) if visible else self.setFlag(INVISIBLE)

    def visible(self) -> bool:
        return not self.getFlag(INVISIBLE)

    def setEnabled(self, enabled: bool) -> None:
        self._enabled = bool(enabled)

    def enabled(self) -> bool:
        return self._enabled

    def setTooltip(self, text: str) -> None:
        self.tooltip = text


class String_Knob(Knob):
    def _coerce(self, value: Any) -> str:
        return str(value)


class File_Knob(String_Knob):
    pass


class Multiline_Eval_String_Knob(String_Knob):
    pass


class Tab_Knob(Knob):
    pass


class Int_Knob(Knob):
    default = 0

    def _coerce(self, value: Any) -> int:
        return int(value)


class Double_Knob(Knob):
    default = 0.0

    def _coerce(self, value: Any) -> float:
        return float(value)


class Boolean_Knob(Knob):
    default = False

    def _coerce(self, value: Any) -> bool:
        return bool(value)


class Enumeration_Knob(Knob):
    def __init__(self, name: str, label: str | None = None, values: list[str] | None = None) -> None:
        self._values = list(values or [])
        super().__init__(name, label, self._values[0] if self._values else "")

    def values(self) -> list[str]:
        return list(self._values)

    def setValues(self, values: list[str]) -> None:
        self._values = list(values)

    def _coerce(self, value: Any) -> str:
        values = self.values()
        if isinstance(value, int) and not isinstance(value, bool):
            value = values[value]
        if value not in values:
            raise ValueError(f"{self._name}: {value!r} is not one of {values}")
        return value


class _ColourSpaceKnob(Enumeration_Knob):
    """An OCIO colour-space menu (the root's working space, OCIOColorSpace's in/out): it lists the
    script's current config as Nuke's menus do, each space under its family ("ACES/ACEScg"), takes a
    name with or without the family, and its default, the scene_linear role, reads as the space the
    role names."""

    def __init__(self, name: str, label: str | None = None) -> None:
        Knob.__init__(self, name, label, "scene_linear")

    def values(self) -> list[str]:
        spaces = ocio_config(self.node).getColorSpaces()
        return [f"{cs.getFamily()}/{cs.getName()}" if cs.getFamily() else cs.getName() for cs in spaces]

    def _coerce(self, value: Any) -> str:
        return super()._coerce(value) if "/" in str(value) or isinstance(value, int) else \
            super()._coerce(next((v for v in self.values() if v.rsplit("/", 1)[-1] == value), value))

    def value(self) -> str:
        config, name = ocio_config(self.node), self._value.rsplit("/", 1)[-1]  # the name, without the family
        return config.getRoleColorSpace(name) if config.hasRole(name) else name

    getValue = value


class PyScript_Knob(Knob):
    def __init__(self, name: str, label: str | None = None, command: str = "") -> None:
        super().__init__(name, label, command)

    def execute(self) -> None:
        """What a click does: the script runs on the main thread with thisNode() = the knob's node."""
        _require_main("a button script")
        with _this(self.node):
            exec(self._value, {"nuke": _module()})


class PyCustom_Knob(Knob):
    def __init__(self, name: str, label: str | None = None, command: str = "") -> None:
        super().__init__(name, label, command)
        self.widget_object: Any = None

    def make_widget(self) -> Any:
        """What opening the properties panel does in the GUI: eval the command, call makeUI()."""
        if not GUI:
            raise RuntimeError("no widgets in a terminal session")
        with _this(self.node):
            self.widget_object = eval(self._value, {"nuke": _module()})
        return self.widget_object.makeUI()


class _ButtonKnob(Knob):
    """Built-in buttons such as Read's reload."""

    def __init__(self, name: str, action: Callable[[], None]) -> None:
        super().__init__(name, name, "")
        self._action = action

    def execute(self) -> None:
        self._action()


# --- nodes ----------------------------------------------------------------------------------------

_CLASS_KNOBS: dict[str, dict[str, Callable[[str], Knob]]] = {
    "Read": {"file": File_Knob, "first": Int_Knob, "last": Int_Knob, "origfirst": Int_Knob, "origlast": Int_Knob,
             "before": lambda n: Enumeration_Knob(n, n, ["hold", "loop", "bounce", "black"]),
             "after": lambda n: Enumeration_Knob(n, n, ["hold", "loop", "bounce", "black"]),
             "on_error": lambda n: Enumeration_Knob(n, n, ["error", "black", "checkerboard", "nearest frame"]),
             "raw": Boolean_Knob, "colorspace": String_Knob},
    "Write": {"file": File_Knob, "file_type": String_Knob, "channels": String_Knob,
              "datatype": lambda n: Enumeration_Knob(n, n, ["16 bit half", "32 bit float"]),
              "compression": String_Knob, "raw": Boolean_Knob, "colorspace": String_Knob,
              "create_directories": Boolean_Knob},
    "Switch": {"which": Int_Knob},
    "Group": {},
    "Input": {"number": Int_Knob},
    "Output": {},
    "Dot": {},
    "NoOp": {},
    "OCIOColorSpace": {"in_colorspace": _ColourSpaceKnob, "out_colorspace": _ColourSpaceKnob,
                       "unpremult": lambda n: Enumeration_Knob(n, n, ["none", "rgba.alpha"])},
    "Keymix": {"channels": lambda n: Enumeration_Knob(n, n, ["all", "rgba"]),
               "maskChannel": lambda n: String_Knob(n, n, "rgba.alpha"), "invertMask": Boolean_Knob,
               "mix": lambda n: Double_Knob(n, n, 1.0)},
    "Root": {"first_frame": Int_Knob, "last_frame": Int_Knob, "fps": Double_Knob, "name": File_Knob,
             "customOCIOConfigPath": File_Knob, "workingSpaceLUT": _ColourSpaceKnob},
}
_COMMON_KNOBS = {"name": String_Knob, "label": String_Knob, "disable": Boolean_Knob, "knobChanged": String_Knob,
                 "tile_color": Int_Knob, "showPanel": Boolean_Knob}


class Node:
    def __init__(self, cls: str, parent: "Node | None") -> None:
        if cls not in _CLASS_KNOBS:
            raise RuntimeError(f"fake nuke has no node class {cls!r}")
        self._class = cls
        self._knobs: dict[str, Knob] = {}
        self._inputs: dict[int, Node] = {}
        self.parent = parent
        self._deleted = False
        for name, make in {**_COMMON_KNOBS, **_CLASS_KNOBS[cls]}.items():
            self._add(make(name))

    def _add(self, knob: Knob) -> Knob:
        knob.node = self
        self._knobs[knob.name()] = knob
        return knob

    # identity and knobs
    def Class(self) -> str:
        return self._class

    def name(self) -> str:
        return self._knobs["name"].value()

    def fullName(self) -> str:
        if self.parent is None or isinstance(self.parent, Root):
            return self.name()
        return f"{self.parent.fullName()}.{self.name()}"

    def setName(self, name: str) -> None:
        siblings = self.parent.nodes() if self.parent is not None else []
        taken = {n.name() for n in siblings if n is not self}
        base = re.sub(r"\d+$", "", name) or self._class
        if name in taken:
            i = 1
            while f"{base}{i}" in taken:
                i += 1
            name = f"{base}{i}"
        self._knobs["name"].setValue(name)

    def knob(self, name: str) -> Knob | None:
        return self._knobs.get(name)

    def __getitem__(self, name: str) -> Knob:
        if name not in self._knobs:
            raise NameError(f"{self.name()} has no knob {name!r}")
        return self._knobs[name]

    def knobs(self) -> dict[str, Knob]:
        return dict(self._knobs)

    def addKnob(self, knob: Knob) -> None:
        if knob.name() in self._knobs:
            raise RuntimeError(f"{self.name()} already has a knob {knob.name()!r}")
        self._add(knob)

    # graph
    def setInput(self, i: int, node: "Node | None") -> bool:
        if node is None:
            self._inputs.pop(i, None)
        else:
            self._inputs[i] = node
        return True

    def input(self, i: int) -> "Node | None":
        return self._inputs.get(i)

    def firstFrame(self) -> int:
        return self._frame_range()[0]

    def lastFrame(self) -> int:
        return self._frame_range()[1]

    def _frame_range(self) -> tuple[int, int]:
        up = self._upstream()
        return up._frame_range() if up is not None else (_root["first_frame"].value(), _root["last_frame"].value())

    def _upstream(self) -> "Node | None":
        return self.input(0)

    def channels(self) -> list[str]:
        return sorted(self.render(self.firstFrame()))

    def render(self, frame: int) -> dict[str, np.ndarray]:
        """Channel planes of this node's output at `frame`."""
        up = self._upstream()
        if up is None:
            raise RuntimeError(f"{self.fullName()}: input not connected")
        return up.render(frame)

    # groups
    def nodes(self) -> list["Node"]:
        return []


class Group(Node):
    def __init__(self, cls: str = "Group", parent: Node | None = None) -> None:
        super().__init__(cls, parent)
        self._children: list[Node] = []

    def nodes(self) -> list[Node]:
        return [n for n in self._children if not n._deleted]

    def node(self, name: str) -> Node | None:
        head, _, rest = name.partition(".")
        for n in self.nodes():
            if n.name() == head:
                return n.node(rest) if rest else n
        return None

    def begin(self) -> "Group":
        _context.append(self)
        return self

    def end(self) -> None:
        _context.remove(self)

    def __enter__(self) -> "Group":
        return self.begin()

    def __exit__(self, *exc: object) -> None:
        self.end()

    def _output(self) -> Node:
        outs = [n for n in self.nodes() if n.Class() == "Output"]
        if not outs:
            raise RuntimeError(f"{self.fullName()} has no Output node")
        return outs[0]

    def _upstream(self) -> Node | None:
        return self._output()


class Root(Group):
    def __init__(self) -> None:
        super().__init__("Root", None)
        self._knobs["name"].setValue("Root")
        self["first_frame"].setValue(1)
        self["last_frame"].setValue(100)
        self["fps"].setValue(24.0)

    def _frame_range(self) -> tuple[int, int]:
        return self["first_frame"].value(), self["last_frame"].value()


class Input(Node):
    def _upstream(self) -> Node | None:
        group = self.parent
        return group.input(self["number"].value()) if group is not None else None


class Switch(Node):
    def _upstream(self) -> Node | None:
        return self.input(int(self["which"].value()))


def _frame_path(pattern: str, frame: int) -> Path:
    out = re.sub(r"#+", lambda m: f"{frame:0{len(m.group(0))}d}", pattern)
    out = re.sub(r"%(0?\d*)d", lambda m: f"%{m.group(1)}d" % frame, out)
    return Path(out)


def load_exr(path: Path) -> dict[str, np.ndarray]:
    """Channels of an EXR under Nuke's names (R -> rgba.red, layer.chan kept)."""
    names = {"R": "rgba.red", "G": "rgba.green", "B": "rgba.blue", "A": "rgba.alpha"}
    with OpenEXR.File(str(path), separate_channels=True) as f:
        return {names.get(k, k): np.array(v.pixels, dtype=np.float32) for k, v in f.channels().items()}


class Read(Node):
    def __init__(self, cls: str, parent: Node | None) -> None:
        super().__init__(cls, parent)
        self._add(_ButtonKnob("reload", self._reload))
        self["on_error"].setValue("error")
        self.reloads = 0

    def _reload(self) -> None:
        self.reloads += 1

    def _frame_range(self) -> tuple[int, int]:
        return self["first"].value(), self["last"].value()

    def render(self, frame: int) -> dict[str, np.ndarray]:
        first, last = self._frame_range()
        if frame < first or frame > last:
            mode = self["before" if frame < first else "after"].value()
            if mode == "black":
                return {k: np.zeros_like(v) for k, v in self.render(first).items()}
            frame = min(max(frame, first), last)
        path = _frame_path(self["file"].value(), frame)
        if not path.is_file():
            if self["on_error"].value() == "black" and frame != first:
                return {k: np.zeros_like(v) for k, v in self.render(first).items()}
            raise RuntimeError(f"{self.fullName()}: {path}: No such file")
        return load_exr(path)


class Write(Node):
    def write(self, frame: int) -> Path:
        if self["file_type"].value() != "exr":
            raise RuntimeError(f"{self.name()}: the fake writes exr only, got {self['file_type'].value()!r}")
        planes = self.render(frame)
        wanted = self["channels"].value() or "rgb"
        names = {"rgb": ["red", "green", "blue"], "rgba": ["red", "green", "blue", "alpha"]}
        if wanted not in names:
            raise RuntimeError(f"{self.name()}: channels {wanted!r} not supported by the fake")
        any_plane = next(iter(planes.values()))
        half = self["datatype"].value() == "16 bit half"
        out = {}
        for short, long in zip("RGBA", names[wanted]):
            plane = planes.get(f"rgba.{long}", np.zeros_like(any_plane))
            out[short] = np.ascontiguousarray(plane.astype(np.float16) if half else plane.astype(np.float32))
        path = _frame_path(self["file"].value(), frame)
        if self["create_directories"].value():
            path.parent.mkdir(parents=True, exist_ok=True)
        header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
        with OpenEXR.File(header, out) as f:
            f.write(str(path))
        return path


def ocio_config(node: Node) -> OCIO.Config:
    """The OCIO config of `node`'s script: the root's custom config path, else $OCIO, else the built-in one."""
    root = node
    while root.parent is not None:
        root = root.parent
    return _load_config(root["customOCIOConfigPath"].value() or os.environ.get("OCIO") or BUILTIN_OCIO_CONFIG)


@functools.lru_cache(maxsize=8)
def _load_config(path: str) -> OCIO.Config:
    return OCIO.Config.CreateFromFile(path)


class OCIOColorSpace(Node):
    """Converts rgb from in_colorspace to out_colorspace with the config's CPU processor; other channels pass.

    With unpremult = rgba.alpha, rgb is divided by alpha before and multiplied after (where alpha > 0).
    """

    def render(self, frame: int) -> dict[str, np.ndarray]:
        planes = dict(super().render(frame))
        shape = next(iter(planes.values())).shape
        rgb = np.stack([planes.get(c, np.zeros(shape, np.float32)) for c in RGB], axis=-1).astype(np.float32)
        a = planes["rgba.alpha"][..., None] if self["unpremult"].value() == "rgba.alpha" else None
        if a is not None:
            rgb = np.where(a > 0, rgb / np.where(a > 0, a, np.float32(1)), rgb)
        rgb = np.ascontiguousarray(rgb, np.float32)
        processor = ocio_config(self).getProcessor(self["in_colorspace"].value(), self["out_colorspace"].value())
        processor.getDefaultCPUProcessor().applyRGB(rgb)  # in place
        if a is not None:
            rgb = np.where(a > 0, rgb * a, rgb)
        planes.update({c: np.ascontiguousarray(rgb[..., k], np.float32) for k, c in enumerate(RGB)})
        return planes


class Keymix(Node):
    """B (input 0) with A (input 1) mixed in by the mask input's (input 2) `maskChannel`.

    As in Nuke, an unconnected mask input is black (the output is B), a channel an input lacks is 0,
    and only the chosen channels that A has are mixed; B's others pass. Where mask * mix is 0 the
    output holds B's values and where it is 1 A's, exactly (no arithmetic on them).
    """

    def render(self, frame: int) -> dict[str, np.ndarray]:
        b = super().render(frame)
        a_node, mask_node = self.input(1), self.input(2)
        if a_node is None:
            raise RuntimeError(f"{self.fullName()}: input A not connected")
        a = a_node.render(frame)
        zeros = np.zeros(next(iter(b.values())).shape, np.float32)
        mask = mask_node.render(frame).get(self["maskChannel"].value(), zeros) if mask_node is not None else zeros
        if self["invertMask"].value():
            mask = 1 - mask
        m = (mask * np.float32(self["mix"].value())).astype(np.float32)
        mixed = [c for c in a if self["channels"].value() == "all" or c.startswith("rgba.")]
        out = dict(b)
        for c in mixed:
            under = b.get(c, zeros)
            blend = under + (a[c] - under) * m
            out[c] = np.where(m == 0, under, np.where(m == 1, a[c], blend)).astype(np.float32)
        return out


_CLASSES: dict[str, type[Node]] = {"Group": Group, "Input": Input, "Switch": Switch, "Read": Read, "Write": Write,
                                   "OCIOColorSpace": OCIOColorSpace, "Keymix": Keymix}


def _current_group() -> Group:
    return _context[-1] if _context else _root


def _make(cls: str, knobs: dict[str, Any]) -> Node:
    parent = _current_group()
    node = _CLASSES.get(cls, Node)(cls, parent)
    node.setName(f"{cls}1")
    parent._children.append(node)
    for key, value in knobs.items():
        if key == "inputs":
            continue
        node[key].setValue(value)
    return node


class _Nodes:
    def __getattr__(self, cls: str) -> Callable[..., Node]:
        return lambda **knobs: _make(cls, knobs)


nodes = _Nodes()


def delete(node: Node) -> None:
    node._deleted = True


def root() -> Root:
    return _root


def toNode(name: str) -> Node | None:
    return _root.node(name)


def allNodes(filter: str | None = None, group: Group | None = None) -> list[Node]:
    found = (group or _current_group()).nodes()
    return [n for n in found if filter is None or n.Class() == filter]


def thisNode() -> Node:
    node = getattr(_state, "this", None)
    if node is None:
        raise ValueError("thisNode() called outside a knob callback")
    return node


@contextlib.contextmanager
def _this(node: Node | None):
    previous = getattr(_state, "this", None)
    _state.this = node
    try:
        yield
    finally:
        _state.this = previous


def knob_changed(node: Node, knob_name: str, value: Any) -> None:
    """What a user edit in the properties panel does: set the value, then run knobChanged."""
    global _in_knob_changed
    knob = node[knob_name]
    knob.setValue(value)
    script = node["knobChanged"].value()
    if script:
        _in_knob_changed += 1
        try:
            with _this(node):
                _state.knob = knob
                exec(script, {"nuke": _module()})
        finally:
            _in_knob_changed -= 1


def thisKnob() -> Knob:
    return _state.knob


# --- execution and threads ------------------------------------------------------------------------


def _require_main(what: str) -> None:
    if threading.current_thread() is not _main_thread:
        raise RuntimeError(f"{what} must run on Nuke's main thread")


def execute(node: Node | str, first: int, last: int, incr: int = 1) -> None:
    _require_main("nuke.execute")
    if _in_knob_changed:
        raise RuntimeError("nuke.execute inside knobChanged: Nuke deadlocks or crashes here")
    node = toNode(node) if isinstance(node, str) else node
    if node is None or node.Class() != "Write":
        raise ValueError("nuke.execute needs a Write node")
    for frame in range(first, last + 1, incr):
        node.write(frame)
    executed.append((node.fullName(), first, last))


def executeInMainThread(call: Callable, args: tuple = (), kwargs: dict | None = None) -> None:
    if threading.current_thread() is _main_thread:
        raise RuntimeError("executeInMainThread called from the main thread: Nuke would hang")
    _main_queue.put((call, tuple(args) if isinstance(args, tuple) else (args,), kwargs or {}, None, []))


def executeInMainThreadWithResult(call: Callable, args: tuple = (), kwargs: dict | None = None) -> Any:
    if threading.current_thread() is _main_thread:
        raise RuntimeError("executeInMainThreadWithResult called from the main thread: Nuke would hang")
    done = threading.Event()
    box: list = []
    _main_queue.put((call, tuple(args) if isinstance(args, tuple) else (args,), kwargs or {}, done, box))
    done.wait()
    if box and isinstance(box[0], BaseException):
        raise box[0]
    return box[0] if box else None


main_thread_calls: list[str] = []


def process_events(timeout: float = 0.0) -> int:
    """Run queued main-thread work (Nuke's event loop); returns how many calls ran."""
    _require_main("process_events")
    ran = 0
    deadline = time.monotonic() + timeout
    while True:
        try:
            call, args, kwargs, done, box = _main_queue.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return ran
        main_thread_calls.append(getattr(call, "__name__", repr(call)))
        try:
            box.append(call(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            box.append(exc)
            if done is None:
                raise
        finally:
            if done is not None:
                done.set()
        ran += 1
        deadline = time.monotonic()  # after the first call, only drain what is already queued


def run_until(predicate: Callable[[], bool], timeout: float = 120.0) -> None:
    """Pump the main-thread queue until predicate() holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached while pumping Nuke's main thread")
        process_events(0.05)
    process_events()


class ProgressTask:
    instances: list["ProgressTask"] = []

    def __init__(self, title: str) -> None:
        self.title = title
        self.message = ""
        self.progress = 0
        self._cancelled = False
        self.closed = False
        ProgressTask.instances.append(self)

    def setMessage(self, message: str) -> None:
        self.message = message

    def setProgress(self, value: int) -> None:
        self.progress = int(value)

    def isCancelled(self) -> bool:
        return self._cancelled

    def cancel(self) -> None:
        """What clicking the task's Cancel does."""
        self._cancelled = True

    def __del__(self) -> None:
        self.closed = True


def message(text: str) -> None:
    messages.append(text)


class Menu:
    def __init__(self, name: str) -> None:
        self.name = name
        self.items: dict[str, Any] = {}

    def addMenu(self, name: str, icon: str = "") -> "Menu":
        return self.items.setdefault(name, Menu(name))

    def addCommand(self, name: str, command: Any = None, shortcut: str = "", icon: str = "") -> None:
        self.items[name] = command

    def findItem(self, name: str) -> Any:
        return self.items.get(name)


def menu(name: str) -> Menu:
    return menus.setdefault(name, Menu(name))


def _module():
    import sys

    return sys.modules[__name__]


_root = Root()
