"""Restoring ranges through a real worker process: output, matte, colour round trip, cache, restart."""

import threading

import numpy as np
import OpenEXR
import pytest

from dvface_plugin.worker.client import WorkerCancelled, WorkerClient, WorkerError
from dvface_plugin.worker.exrio import CHANGED_CHANNEL, MATTE_CHANNEL
from dvface_plugin.worker.restore import RestoreSettings
from dvface_plugin.errors import InputError
from dvface_plugin.colour import ColourSettings

from dvface_plugin.worker import exrio
from dvface_plates import COUNT, FIRST, read_channels, tiny_model, write_sequence

LAST = FIRST + COUNT - 1


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("worker")
    model = tiny_model(root / "model")
    source = write_sequence(root / "plates")
    client = WorkerClient()
    yield client, source, model, root
    client.close()


def settings(model, **extra):
    return {"model": model, "device": "cpu", **extra}


@pytest.fixture(scope="module")
def first_run(setup):
    client, source, model, root = setup
    (root / "out").mkdir()
    events = []
    done = client.restore(source, (FIRST, LAST), str(root / "out" / "r.####.exr"), settings(model),
                          on_event=events.append)
    return done, events


def out_frame(root, n, folder="out"):
    return read_channels(root / folder / f"r.{n:04d}.exr")


def test_range_is_restored_with_a_matte_and_progress_names_frames(setup, first_run):
    client, source, model, root = setup
    done, events = first_run
    assert done["frames"] == [FIRST, LAST] and done["written"] == COUNT
    assert [t["id"] for t in done["tracks"]] == [1] and done["tracks"][0]["first"] == FIRST
    restored = [(e["stage"], e["frame"]) for e in events if e["event"] == "progress"]
    assert restored[-COUNT:] == [("restore", n) for n in range(FIRST, LAST + 1)]
    assert events[0]["event"] == "accepted" and ("analyse", FIRST) in restored
    for n in range(FIRST, LAST + 1):
        out = out_frame(root, n)
        assert set(out) == {"R", "G", "B", "A", MATTE_CHANNEL, CHANGED_CHANNEL}
        matte = out[MATTE_CHANNEL]
        assert 0.01 < (matte > 0).mean() < 0.5 and matte.max() == pytest.approx(1.0, abs=1e-3)
        assert np.array_equal(out[CHANGED_CHANNEL], (matte > 0).astype(np.float32))  # exactly 1 or 0
    assert not list((root / "out").glob(".*"))  # no partial files left behind


def test_outside_the_matte_the_linear_plate_is_bit_identical_and_highlights_survive(setup, first_run):
    client, source, model, root = setup
    for n in range(FIRST, LAST + 1):
        plate = read_channels(root / "plates" / f"plate.{n:04d}.exr")
        out = out_frame(root, n)
        outside = out[MATTE_CHANNEL] == 0
        for c in "RGBA":
            assert out[c][outside].tobytes() == plate[c][outside].tobytes()
        assert np.array_equal(out["A"], plate["A"])  # alpha passes through untouched
        assert out["R"].max() > 4.0  # the highlight corner is not clipped to 1
        inside = out[MATTE_CHANNEL] > 0.5
        assert np.abs(out["R"][inside] - plate["R"][inside]).max() > 1e-3  # the face did change


def test_repeated_and_overlapping_ranges_come_from_the_cache(setup, first_run):
    client, source, model, root = setup
    computed_before = client.stats()["windows_computed"]
    again = client.restore(source, (FIRST, LAST), str(root / "out" / "r.####.exr"), settings(model))
    assert again["analysis_cached"] and again["computed"]["windows"] == 0 and again["computed"]["cache_hits"] > 0
    (root / "part").mkdir()
    part = client.restore(source, (FIRST, LAST), str(root / "part" / "r.####.exr"), settings(model),
                          restore=(FIRST + 1, FIRST + 2))
    assert part["computed"]["windows"] == 0 and part["written"] == 2
    assert client.stats()["windows_computed"] == computed_before
    (root / "recompressed").mkdir()  # same pixels, other file bytes (as a re-render with new metadata)
    for n in range(FIRST, LAST + 1):
        channels = read_channels(root / "plates" / f"plate.{n:04d}.exr")
        with OpenEXR.File({"compression": OpenEXR.PIZ_COMPRESSION, "type": OpenEXR.scanlineimage}, channels) as f:
            f.write(str(root / "recompressed" / f"p.{n:04d}.exr"))
    recompressed = client.restore(str(root / "recompressed" / "p.%04d.exr"), (FIRST, LAST),
                                  str(root / "recompressed" / "q.####.exr"), settings(model))
    assert recompressed["analysis_cached"] and recompressed["computed"]["windows"] == 0
    assert sorted(p.name for p in (root / "part").iterdir()) == [f"r.{FIRST + 1}.exr", f"r.{FIRST + 2}.exr"]
    for n in (FIRST + 1, FIRST + 2):  # a farm chunk equals the same frames of the whole render
        a, b = out_frame(root, n, "part"), out_frame(root, n)
        assert all(a[c].tobytes() == b[c].tobytes() for c in a)


def test_a_changed_strength_runs_no_model_and_mixes_the_faces_with_the_plate(setup, first_run):
    client, source, model, root = setup
    for name, strength in (("off", 0.0), ("half", 0.5)):
        (root / name).mkdir()
        done = client.restore(source, (FIRST, LAST), str(root / name / "r.####.exr"), settings(model, strength=strength))
        assert done["analysis_cached"] and done["computed"]["windows"] == 0  # the full-strength windows, cached
    for n in range(FIRST, LAST + 1):
        plate = read_channels(root / "plates" / f"plate.{n:04d}.exr")
        off, half, full = out_frame(root, n, "off"), out_frame(root, n, "half"), out_frame(root, n)
        assert all(off[c].tobytes() == plate[c].tobytes() for c in "RGBA")  # strength 0: the plate itself
        assert not off[MATTE_CHANNEL].any()
        assert np.allclose(half[MATTE_CHANNEL], full[MATTE_CHANNEL] / 2, atol=1e-4)
        face = full[MATTE_CHANNEL] > 0.99
        gain = np.abs(half["R"][face] - plate["R"][face]).mean() / np.abs(full["R"][face] - plate["R"][face]).mean()
        assert 0.4 < gain < 0.6  # half of the restoration's change


def frames_changed_in_faces_only(root, folder: str) -> int:
    """How many frames of `folder`'s restore differ from the first run's, asserting that no
    sample outside the face matte does."""
    changed = 0
    for n in range(FIRST, LAST + 1):
        a, b = out_frame(root, n, folder), out_frame(root, n)
        outside = b[MATTE_CHANNEL] == 0
        assert all(a[c][outside].tobytes() == b[c][outside].tobytes() for c in "RGBA")
        changed += not np.array_equal(a["R"], b["R"])
    return changed


def test_stabilise_changes_only_faces_and_keeps_its_own_cache_entries(setup, first_run):
    client, source, model, root = setup
    (root / "stable").mkdir()
    stable = client.restore(source, (FIRST, LAST), str(root / "stable" / "r.####.exr"), settings(model, stabilise=2))
    assert stable["analysis_cached"] and stable["computed"]["windows"] > 0
    # The face moves a pixel a frame: neighbours agree after warping.
    assert frames_changed_in_faces_only(root, "stable") >= COUNT - 1
    again = client.restore(source, (FIRST, LAST), str(root / "stable" / "r.####.exr"), settings(model, stabilise=2))
    assert again["computed"]["windows"] == 0
    plain = client.restore(source, (FIRST, LAST), str(root / "out" / "r.####.exr"), settings(model, stabilise=0))
    assert plain["computed"]["windows"] == 0  # the model's own radius (0 here): its cached windows


def test_grain_changes_only_faces_and_keeps_its_own_cache_entries(setup, first_run):
    client, source, model, root = setup
    (root / "grain").mkdir()
    grainy = client.restore(source, (FIRST, LAST), str(root / "grain" / "r.####.exr"), settings(model, grain=1.0))
    assert grainy["computed"]["windows"] > 0  # its windows are not the plain ones
    assert frames_changed_in_faces_only(root, "grain") == COUNT
    again = client.restore(source, (FIRST, LAST), str(root / "grain" / "r.####.exr"), settings(model, grain=1.0))
    assert again["computed"]["windows"] == 0


def test_a_qc_report_of_a_sub_range_is_written_beside_the_frames_and_named_in_the_reply(setup, first_run):
    """The host asks for a report: the page covers the restored frames by their host numbers, shows
    the frames as the model saw them, names a face switched off, and is renamed into place whole."""
    import json

    client, source, model, root = setup
    (root / "qc").mkdir()
    done = client.restore(source, (FIRST, LAST), str(root / "qc" / "r.####.exr"), settings(model),
                          restore=(FIRST + 1, LAST), report=str(root / "qc" / "report"))
    assert done["report"] == str(root / "qc" / "report" / "index.html") and done["computed"]["windows"] == 0
    report = json.loads((root / "qc" / "report" / "report.json").read_text())
    assert report["shot"]["frame_range"] == f"{FIRST + 1}-{LAST}" and report["shot"]["frames"] == COUNT - 1
    assert "display sRGB" in report["shot"]["images"] and report["shot"]["backend"].startswith("torch on cpu")
    [track] = report["tracks"]
    assert (track["first_frame"], track["last_frame"], track["restored"]) == (FIRST + 1, LAST, True)
    assert len(track["detail"]) == COUNT - 1 and track["thumbs"][0]["frame"] == FIRST + 1
    assert all((root / "qc" / "report" / p[k]).is_file() for p in track["thumbs"] for k in ("input", "restored"))
    assert not [p for p in (root / "qc").iterdir() if p.name.startswith(".")]  # no partial folder left
    off = client.restore(source, (FIRST, LAST), str(root / "qc" / "r.####.exr"), settings(model, disabled=[1]),
                         report=str(root / "qc" / "report"))  # replaces the earlier report
    report = json.loads((root / "qc" / "report" / "report.json").read_text())
    assert report["tracks"][0]["left_out"] == "switched off in the host's track list"
    assert report["frames_without_restored_face"] == [
        {"first": FIRST, "last": LAST, "why": "track 1 switched off in the host's track list"}]
    assert off["report"] and not report["tracks"][0]["restored"]
    (root / "precious").mkdir()
    (root / "precious" / "notes.txt").write_text("not ours")
    with pytest.raises(WorkerError, match="is not a dvface report"):
        client.restore(source, (FIRST, LAST), str(root / "qc" / "r.####.exr"), settings(model),
                       report=str(root / "precious"))
    assert (root / "precious" / "notes.txt").read_text() == "not ours"


def test_a_killed_worker_is_restarted_and_the_range_completes(setup, first_run):
    client, source, model, root = setup
    client.clear_cache()  # so the restarted worker has real work to redo
    (root / "again").mkdir()
    killed = []
    events = []

    def on_event(event):
        events.append(event)
        # at the first frame written: the window's other frames follow within milliseconds, so a
        # later kill can land after the worker has already sent its whole reply (seen under load)
        if event.get("stage") == "restore" and event["done"] == 1 and not killed:
            killed.append(client.pid)
            client.kill()

    restarts = client.restarts
    done = client.restore(source, (FIRST, LAST), str(root / "again" / "r.####.exr"), settings(model),
                          on_event=on_event)
    assert killed and client.pid != killed[0] and client.restarts == restarts + 1
    assert any(e["event"] == "restarted" for e in events)
    assert done["written"] == COUNT
    assert not list((root / "again").glob(".*"))
    for n in range(FIRST, LAST + 1):  # the redone range equals the first run bit for bit
        a, b = out_frame(root, n, "again"), out_frame(root, n)
        assert all(a[c].tobytes() == b[c].tobytes() for c in a)


def test_cancel_stops_the_range(setup, first_run):
    client, source, model, root = setup
    client.clear_cache()
    (root / "cancel").mkdir()

    def on_event(event):
        if event.get("stage") == "analyse":
            threading.Thread(target=client.cancel, args=("job-c",)).start()

    with pytest.raises(WorkerCancelled):
        client.restore(source, (FIRST, LAST), str(root / "cancel" / "r.####.exr"), settings(model),
                       job="job-c", on_event=on_event)
    assert len(list((root / "cancel").iterdir())) < COUNT
    assert client.health()["jobs"] == []


def test_stale_partials_of_dead_workers_are_removed(tmp_path):
    dead = tmp_path / f".r.1001.exr{exrio.PARTIAL_TAG}999999999-abcd"
    mine = tmp_path / f".r.1002.exr{exrio.PARTIAL_TAG}{__import__('os').getpid()}-abcd"
    dead.write_bytes(b"x")
    mine.write_bytes(b"x")
    assert exrio.remove_stale_partials(tmp_path) == 1
    assert not dead.exists() and mine.exists()


def test_settings_are_validated():
    s = RestoreSettings.from_dict({"strength": "0.5", "disabled": [2, "3"], "colour": {"highlights": "soft"}})
    assert s.strength == 0.5 and s.disabled == (2, 3) and s.colour == ColourSettings(highlights="soft")
    with pytest.raises(InputError, match="unknown restore setting"):
        RestoreSettings.from_dict({"strenght": 1})
    assert RestoreSettings.from_dict({"stabilise": "3"}).stabilise == 3 and RestoreSettings().stabilise is None
    with pytest.raises(InputError, match="stabilise must be .* >= 0"):
        RestoreSettings.from_dict({"stabilise": -1})
    assert RestoreSettings.from_dict({"grain": "0.5"}).grain == 0.5 and RestoreSettings().grain == 0.0
    with pytest.raises(InputError, match=r"grain must be in \[0, 1\]"):
        RestoreSettings.from_dict({"grain": 1.5})
    with pytest.raises(InputError, match="colourspace"):
        RestoreSettings.from_dict({"colour": {"transfer": "log"}})
    # a host that does not convert itself names the plate's OCIO colour space (and config)
    aces = RestoreSettings.from_dict({"colour": {"colorspace": "ACEScg", "ocio": "ocio://studio-config-latest"}})
    assert aces.colour.colorspace == "ACEScg"
    with pytest.raises(InputError, match=r"'ACES cg' is not in the OCIO config .*valid names: .*ACEScg"):
        RestoreSettings.from_dict({"colour": {"colorspace": "ACES cg"}})


def test_exr_data_window_is_placed_in_the_format_and_bad_files_are_named(tmp_path):
    planes = {c: np.full((4, 6), i + 1.5, np.float32) for i, c in enumerate("RGB")}
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage,
              "dataWindow": ((2, 3), (7, 6)), "displayWindow": ((0, 0), (9, 7))}
    with OpenEXR.File(header, planes) as f:
        f.write(str(tmp_path / "bbox.exr"))
    frame = exrio.read_exr(tmp_path / "bbox.exr")
    assert frame.rgb.shape == (8, 10, 3) and frame.alpha is None
    assert np.all(frame.rgb[3:7, 2:8, 1] == 2.5) and frame.rgb[:3].sum() == 0 and frame.rgb[:, 8:].sum() == 0
    (tmp_path / "junk.exr").write_bytes(b"not an exr")
    with pytest.raises(InputError, match="junk.exr"):
        exrio.read_exr(tmp_path / "junk.exr")
