"""The DVFaceRestore node end to end on the behavioural fake `nuke`, with a real worker process."""

import json
import sys
import threading
from pathlib import Path

import numpy as np
import OpenEXR
import PyOpenColorIO as OCIO
import pytest

import fake_nuke

sys.modules["nuke"] = fake_nuke
NUKE_NODE = Path(__file__).resolve().parents[1] / "nuke_node"
sys.path.insert(0, str(NUKE_NODE))

import dvface_farm  # noqa: E402
import dvface_nuke  # noqa: E402
from dvface_plates import COUNT, FIRST, plate, read_channels, tiny_model, write_sequence  # noqa: E402
from dvface_plugin import colour  # noqa: E402
from dvface_plugin.worker import exrio  # noqa: E402
from dvface_plugin.worker.client import WorkerClient  # noqa: E402
from dvface_plugin.worker.restore import RestoreSettings  # noqa: E402

nuke = fake_nuke
LAST = FIRST + COUNT - 1
RGB = ["rgba.red", "rgba.green", "rgba.blue"]
RGBA = RGB + ["rgba.alpha"]
STUDIO = "ocio://studio-config-latest"
LINEAR_709 = "Linear Rec.709 (sRGB)"  # the test plates' colour space
SRGB = "sRGB Encoded Rec.709 (sRGB)"  # the model's, in the studio config


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("nuke")
    model = tiny_model(root / "model")
    source = write_sequence(root / "plates")
    client = WorkerClient()
    dvface_nuke.set_client(client)
    yield root, model, source, client
    dvface_nuke.set_client(None)


def build(env, gui=True, work="work", source=None, colourspace=LINEAR_709, config=STUDIO):
    """A script (OCIO `config`, whatever $OCIO says) reading `source` (default: the linear Rec.709 plates)."""
    root, model, plates, _ = env
    nuke.reset(gui=gui)
    nuke.root()["customOCIOConfigPath"].setValue(config)
    read = nuke.nodes.Read(file=source or plates, first=FIRST, last=LAST, raw=True)
    node = dvface_nuke.create_node()
    node.setInput(0, read)
    node["model"].setValue(model)
    node["device"].setValue("cpu")
    node["work_dir"].setValue(str(root / work))
    node["colourspace"].setValue(colourspace)
    return read, node


def ocio(rgb, alpha, source, target, config=STUDIO):
    """OpenColorIO's conversion of premultiplied rgb planes, straight (unpremultiplied) where alpha > 0."""
    cpu = OCIO.Config.CreateFromFile(config).getProcessor(source, target).getDefaultCPUProcessor()
    a = alpha[..., None]
    straight = np.ascontiguousarray(np.where(a > 0, rgb / np.where(a > 0, a, np.float32(1)), rgb), np.float32)
    cpu.applyRGB(straight)
    return np.where(a > 0, straight * a, straight)


def stack(planes, names):
    return np.stack([planes[c] for c in names], axis=-1)


def click_and_wait(node, on_event=None):
    node["restore"].execute()
    job = dvface_nuke._jobs[node.fullName()]
    seen = 0

    def finished():
        nonlocal seen
        if on_event is not None:
            for event in job.events[seen:]:
                on_event(event)
            seen = len(job.events)
        return job.finished.is_set() and "_finish" in nuke.main_thread_calls

    nuke.run_until(finished, timeout=120)
    return job


@pytest.fixture(scope="module")
def restored(env):
    read, node = build(env)
    before = {n: node.render(n) for n in (FIRST, LAST)}
    job = click_and_wait(node)
    job.outputs = {n: node.render(n) for n in (FIRST, LAST)}
    return read, node, job, before


def test_node_builds_as_a_group_that_passes_its_input_through(env):
    read, node = build(env)
    assert node.Class() == "Group" and node.name() == "DVFaceRestore1" and dvface_nuke.is_dvface(node)
    inside = {n.name(): n.Class() for n in node.nodes()}
    assert inside == {"Input1": "Input", "dvface_to_model": "OCIOColorSpace", "dvface_read": "Read",
                      "dvface_from_model": "OCIOColorSpace", "dvface_keymix": "Keymix", "dvface_switch": "Switch",
                      "Output1": "Output"}
    keymix = node.node("dvface_keymix")  # B = the input, A = the restore converted back, mask = its changed pixels
    assert [keymix.input(i).name() for i in range(3)] == ["Input1", "dvface_from_model", "dvface_read"]
    assert (keymix["maskChannel"].value(), keymix["channels"].value()) == ("dvface.changed", "all")
    assert node.node("dvface_switch").input(1) is keymix and node.node("dvface_to_model").input(0).name() == "Input1"
    assert dvface_nuke.MODEL_SPACES == colour.MODEL_SPACES and dvface_nuke.CHANGED_CHANNEL == exrio.CHANGED_CHANNEL
    for knob in ("model", "device", "strength", "faces", "first_frame", "last_frame", "window", "stabilise", "grain",
                 "colourspace", "highlights", "unpremultiply", "restore", "cancel", "clear_cache", "panel"):
        assert node.knob(knob) is not None, knob
    plate = read.render(FIRST + 2)
    out = node.render(FIRST + 2)
    assert all(out[c].tobytes() == plate[c].tobytes() for c in RGBA)
    nuke.knob_changed(node, "highlights", "soft")  # panel tidying only: nothing renders
    assert node["knee"].visible() and nuke.executed == []
    nuke.knob_changed(node, "use_input_range", False)
    assert node["first_frame"].enabled()
    node2 = dvface_nuke.create_node()
    assert node2.name() == "DVFaceRestore2"


def test_stabilise_knob_becomes_the_workers_setting(env):
    read, node = build(env)
    assert node["stabilise"].value() == "model" and dvface_nuke.settings(node)["stabilise"] is None
    for choice, radius in (("off", 0), ("3", 3)):
        node["stabilise"].setValue(choice)
        assert dvface_nuke.settings(node)["stabilise"] == radius
    assert RestoreSettings.from_dict(dvface_nuke.settings(node)).stabilise == 3  # the worker accepts it


def test_grain_knob_becomes_the_workers_setting_and_an_older_node_restores_without(env):
    read, node = build(env)
    assert node["grain"].value() == 0.0 and dvface_nuke.settings(node)["grain"] == 0.0
    node["grain"].setValue(0.75)
    assert RestoreSettings.from_dict(dvface_nuke.settings(node)).grain == 0.75
    del node._knobs["grain"]  # a node saved in a script before the knob existed
    assert dvface_nuke.settings(node)["grain"] == 0.0


def test_menu_registers_the_node():
    exec((NUKE_NODE / "menu.py").read_text(), {"__name__": "menu"})
    command = nuke.menu("Nodes").findItem("DVFace").findItem("DVFace Restore")
    nuke.reset()
    assert command().Class() == "Group"


def test_restore_button_renders_the_input_and_reads_back_the_restored_range(env, restored):
    root, *_ = env
    read, node, job, before = restored
    assert job.error is None, job.error
    write_runs = [e for e in nuke.executed if e[0].startswith(node.name() + ".Write")]
    assert write_runs == [(write_runs[0][0], FIRST, LAST)]  # one temporary Write, on the main thread
    assert [n.Class() for n in node.nodes()].count("Write") == 0  # and it was removed again
    inputs = sorted((root / "work" / "input").iterdir())
    assert len(inputs) == COUNT and set(read_channels(inputs[0])) == {"R", "G", "B", "A"}
    assert dvface_nuke.settings(node)["colour"]["transfer"] == "srgb"  # converted by the group, not the worker
    to_model = node.node("dvface_to_model")
    assert (to_model["in_colorspace"].value(), to_model["out_colorspace"].value(), to_model["unpremult"].value()) \
        == (LINEAR_709, SRGB, "rgba.alpha")
    outputs = sorted((root / "work" / "restored").glob("*.exr"))
    assert [p.name for p in outputs] == [f"DVFaceRestore1.{n}.exr" for n in range(FIRST, LAST + 1)]
    assert node["status"].value().startswith(f"restored {FIRST}-{LAST}")
    assert node.node("dvface_read").reloads >= 1 and node.node("dvface_switch")["which"].value() == 1
    assert "dvface.matte" in node.channels() and set(RGBA) <= set(node.channels())
    assert {"_show_event", "_finish"} <= set(nuke.main_thread_calls)  # the thread only went through these
    task = nuke.ProgressTask.instances[-1]
    assert task.progress == 100 and str(LAST) in task.message


def test_output_is_bit_identical_outside_the_matte_and_changed_on_the_face(restored):
    read, node, job, before = restored
    for n in (FIRST, LAST):
        out = node.render(n)
        matte = out["dvface.matte"]
        assert 0 < (matte > 0).mean() < 0.5
        outside = matte == 0
        for c in RGBA:
            assert out[c][outside].tobytes() == before[n][c][outside].tobytes()
        assert out["rgba.red"].max() > 4.0  # scene-linear highlights above 1 survive
        assert np.abs(out["rgba.red"] - before[n]["rgba.red"])[matte > 0.5].max() > 1e-3


def test_second_restore_of_the_same_range_is_served_from_the_cache(env, restored):
    read, node, job, before = restored
    again = click_and_wait(node)
    assert again.result["computed"]["windows"] == 0 and again.result["analysis_cached"]
    assert "0 windows computed" in node["status"].value()


def test_switching_a_face_off_leaves_the_plate_untouched(env, restored):
    read, node, job, before = restored
    assert [t["enabled"] for t in job.result["tracks"]] == [True]
    dvface_nuke.set_track_enabled(node, 1, False)
    off = click_and_wait(node)
    assert off.result["tracks"][0]["enabled"] is False
    out = node.render(FIRST + 1)
    assert not out["dvface.matte"].any()
    assert all(out[c].tobytes() == read.render(FIRST + 1)[c].tobytes() for c in RGBA)
    dvface_nuke.set_track_enabled(node, 1, True)
    assert node["disabled_tracks"].value() == ""


def test_a_killed_worker_is_restarted_and_the_range_completes(env, restored):
    root, model, source, client = env
    read, node, job, before = restored
    client.clear_cache()
    first_pid = client.pid

    def kill_on_first_restored_frame(event):
        if event.get("stage") == "restore" and client.pid == first_pid:
            client.kill()

    redone = click_and_wait(node, kill_on_first_restored_frame)
    assert redone.error is None and client.pid != first_pid
    assert any(e["event"] == "restarted" for e in redone.events)
    assert redone.result["written"] == COUNT
    assert not list((root / "work" / "restored").glob(".*"))
    for n in (FIRST, LAST):  # the redone range equals the first restore bit for bit
        out = node.render(n)
        assert all(out[c].tobytes() == job.outputs[n][c].tobytes() for c in RGBA + ["dvface.matte"])


def test_terminal_session_restores_a_farm_chunk_without_qt_or_threads(env, restored):
    root, *_ = env
    gui_frames = {n: restored[1].render(n) for n in (FIRST + 1, FIRST + 2)}
    read, node = build(env, gui=False, work="farm")
    final = nuke.nodes.Write(file=str(root / "final" / "shot.####.exr"), file_type="exr",
                             datatype="32 bit float", channels="rgba", create_directories=True)
    final.setInput(0, node)
    node["write_report"].setValue(True)  # each farm chunk writes the QC page of its own frames
    assert dvface_farm.run(FIRST + 1, FIRST + 2, write="Write1") == ["DVFaceRestore1"]
    report = root / "farm" / f"report-{FIRST + 1}-{FIRST + 2}"
    assert node["report_path"].value() == str(report / "index.html") and "QC report written" in node["status"].value()
    assert json.loads((report / "report.json").read_text())["shot"]["frame_range"] == f"{FIRST + 1}-{FIRST + 2}"
    assert nuke.main_thread_calls == [] and nuke.ProgressTask.instances == []
    assert sorted(p.name for p in (root / "final").iterdir()) == [f"shot.{FIRST + 1}.exr", f"shot.{FIRST + 2}.exr"]
    assert not any(p.name.startswith("input-") for p in (root / "farm").iterdir())  # private input removed
    for n, gui in gui_frames.items():  # a chunk equals the same frames of the whole GUI render
        written = read_channels(root / "final" / f"shot.{n}.exr")
        for short, long in zip("RGBA", RGBA):
            assert written[short].tobytes() == gui[long].tobytes()


def test_unconnected_node_reports_instead_of_rendering(env):
    nuke.reset(gui=True)
    node = dvface_nuke.create_node()
    node["restore"].execute()
    assert "connect an input" in nuke.messages[-1] and nuke.executed == []
    nuke.reset(gui=False)
    node = dvface_nuke.create_node()
    with pytest.raises(dvface_nuke.DVFaceNukeError, match="connect an input"):
        dvface_nuke.restore(node)


def test_clear_cache_button_empties_the_worker_cache(env, restored):
    read, node, job, before = restored
    root, model, source, client = env
    node["clear_cache"].execute()
    assert node["status"].value() == "worker cache cleared"
    stats = client.stats()
    assert stats["bytes_held"] == 0 and stats["analyses"] == 0


def test_worker_environment_comes_from_dvface_python(monkeypatch, tmp_path):
    monkeypatch.setenv("DVFACE_PYTHON", str(tmp_path / "venv" / "bin" / "python"))
    assert dvface_nuke.worker_python() == str(tmp_path / "venv" / "bin" / "python")


def write_acescg_sequence(folder):
    """The test plates converted to ACEScg with OpenColorIO (a matrix, so premultiplied values convert as they are)."""
    folder.mkdir()
    cpu = OCIO.Config.CreateFromFile(STUDIO).getProcessor(LINEAR_709, "ACEScg").getDefaultCPUProcessor()
    for i in range(COUNT):
        rgb, alpha = plate(i)
        rgb = np.ascontiguousarray(rgb, np.float32)
        cpu.applyRGB(rgb)
        channels = {c: np.ascontiguousarray(rgb[..., k]) for k, c in enumerate("RGB")}
        channels["A"] = alpha
        with OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}, channels) as f:
            f.write(str(folder / f"plate.{FIRST + i:04d}.exr"))
    return str(folder / "plate.####.exr")


@pytest.fixture(scope="module")
def acescg(env):
    root, *_ = env
    read, node = build(env, work="acescg-work", source=write_acescg_sequence(root / "acescg"), colourspace="ACEScg")
    return read, node, click_and_wait(node)


def test_an_acescg_plate_reaches_the_model_as_srgb_and_only_the_face_comes_back(env, acescg):
    root, *_ = env
    read, node, job = acescg
    assert job.error is None, job.error
    work = root / "acescg-work"
    for n in (FIRST, LAST):
        plate_n = read.render(n)
        sent = nuke.load_exr(work / "input" / f"DVFaceRestore1.{n}.exr")  # what the worker restored from
        expected = ocio(stack(plate_n, RGB), plate_n["rgba.alpha"], "ACEScg", SRGB)
        np.testing.assert_allclose(stack(sent, RGB), expected, rtol=1e-5, atol=0)
        assert sent["rgba.red"].max() > 1.0  # display-referred, values above 1 kept
        out = node.render(n)
        matte = out["dvface.matte"]
        inside = matte > 0
        assert 0 < inside.mean() < 0.5 and (matte == 1).any()
        for c in plate_n:  # every channel outside the matte is the input's own, bit for bit
            assert out[c][~inside].tobytes() == plate_n[c][~inside].tobytes(), c
        assert out["rgba.red"].max() > 4.0
        restored = nuke.load_exr(work / "restored" / f"DVFaceRestore1.{n}.exr")
        back = ocio(stack(restored, RGB), restored["rgba.alpha"], SRGB, "ACEScg")
        np.testing.assert_allclose(stack(out, RGB)[inside], back[inside], rtol=1e-5, atol=0)
        assert np.array_equal(out["rgba.alpha"], plate_n["rgba.alpha"])
        assert np.abs(stack(out, RGB) - stack(plate_n, RGB))[matte > 0.5].max() > 1e-3  # the face did change


def test_the_colourspace_knob_lists_the_scripts_config_and_defaults_to_its_working_space(monkeypatch):
    nuke.reset()
    nuke.root()["customOCIOConfigPath"].setValue(STUDIO)
    node = dvface_nuke.create_node()
    studio = list(OCIO.Config.CreateFromFile(STUDIO).getColorSpaceNames())
    assert node["colourspace"].values() == studio and "ACEScg" in studio
    menu = node.node("dvface_to_model")["in_colorspace"].values()  # Nuke's menu: names under their families
    assert "ACES/ACEScg" in menu and "ACEScg" not in menu
    assert node["colourspace"].value() == nuke.root()["workingSpaceLUT"].value() == "ACEScg"
    assert "colour space" in node["colourspace"].tooltip
    monkeypatch.setenv("OCIO", "ocio://cg-config-latest")  # without a custom path the script follows $OCIO
    nuke.reset()
    cg = list(OCIO.Config.CreateFromFile("ocio://cg-config-latest").getColorSpaceNames())
    assert dvface_nuke.create_node()["colourspace"].values() == cg != studio


def test_an_unknown_colourspace_or_a_config_without_srgb_is_refused_before_rendering(env, tmp_path):
    _, node = build(env, work="refused", colourspace="ARRI LogC4")
    nuke.root()["customOCIOConfigPath"].setValue("ocio://cg-config-latest")  # a config without camera spaces
    nuke.knob_changed(node, "showPanel", True)  # opening the panel lists the config's names again
    cg = list(OCIO.Config.CreateFromFile("ocio://cg-config-latest").getColorSpaceNames())
    assert node["colourspace"].values() == cg and node["colourspace"].value() == "ARRI LogC4"
    node["restore"].execute()
    [message] = nuke.messages
    assert "'ARRI LogC4' is not in the script's OCIO config" in message and ", ".join(cg) in message
    assert "\n" not in message and node["status"].value().startswith("failed:") and nuke.executed == []

    raw = OCIO.Config.CreateRaw()  # "raw" and ACEScg: nothing the model could work in
    raw.addColorSpace(OCIO.ColorSpace(name="ACEScg"))
    raw.setRole("scene_linear", "ACEScg")
    (tmp_path / "no_srgb.ocio").write_text(raw.serialize())
    _, node = build(env, gui=False, work="refused", colourspace="ACEScg", config=str(tmp_path / "no_srgb.ocio"))
    with pytest.raises(dvface_nuke.DVFaceNukeError, match="no sRGB-encoded Rec.709 colour space") as refused:
        node["restore"].execute()
    assert all(name in str(refused.value) for name in dvface_nuke.MODEL_SPACES) and "\n" not in str(refused.value)
    assert nuke.executed == []


def test_the_fakes_keymix_keeps_b_exactly_outside_the_mask_and_ocio_menus_refuse_unknown_names(tmp_path):
    def exr(name, planes):
        with OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage},
                          {k: np.asarray(v, np.float32).reshape(1, 4) for k, v in planes.items()}) as f:
            f.write(str(tmp_path / f"{name}.0001.exr"))
        return nuke.nodes.Read(file=str(tmp_path / f"{name}.####.exr"), first=1, last=1)

    nuke.reset()
    b = exr("b", {"R": [np.nan, -1, 7, 2], "G": [0, 0, 0, 0], "B": [0, 0, 0, 0], "A": [1, 1, 1, 1]})
    a = exr("a", {"R": [5, 5, 5, 5], "G": [1, 1, 1, 1], "B": [1, 1, 1, 1], "dvface.changed": [0, 0, 0.5, 1]})
    keymix = nuke.nodes.Keymix(maskChannel="dvface.changed", channels="rgba")
    keymix.setInput(0, b)
    keymix.setInput(1, a)
    assert keymix.render(1)["rgba.red"].tobytes() == b.render(1)["rgba.red"].tobytes()  # no mask input: black
    keymix.setInput(2, a)
    out = keymix.render(1)
    assert out["rgba.red"][0, :2].tobytes() == b.render(1)["rgba.red"][0, :2].tobytes()  # NaN and -1 kept
    assert out["rgba.red"][0, 2:].tolist() == [6.0, 5.0] and "dvface.changed" not in out
    assert out["rgba.alpha"].tolist() == [[1, 1, 1, 1]]  # A has no alpha: B's passes
    keymix["mix"].setValue(0.5)
    assert keymix.render(1)["rgba.red"][0, 2:].tolist() == [6.5, 3.5]
    convert = nuke.nodes.OCIOColorSpace(in_colorspace="ACEScg", out_colorspace=LINEAR_709)
    with pytest.raises(ValueError, match="not one of"):
        convert["out_colorspace"].setValue("sRGB Gamma 9")


def test_the_fake_enforces_nukes_threading_and_knobchanged_rules(env):
    read, node = build(env)
    with pytest.raises(RuntimeError, match="main thread"):
        nuke.executeInMainThread(print)  # from the main thread this hangs real Nuke
    node["knobChanged"].setValue("w = nuke.nodes.Write(file='/tmp/x.####.exr', file_type='exr')\n"
                                 "nuke.execute(w, 1, 1)")
    with pytest.raises(RuntimeError, match="knobChanged"):
        nuke.knob_changed(node, "strength", 0.5)
    with pytest.raises(NameError, match="no knob"):
        nuke.nodes.Read(fiel="typo")
    caught = []

    def render_off_the_main_thread():
        try:
            nuke.execute("Write1", 1, 1)
        except RuntimeError as exc:
            caught.append(str(exc))

    thread = threading.Thread(target=render_off_the_main_thread)
    thread.start()
    thread.join()
    assert caught and "main thread" in caught[0]
