"""The node's PySide6 panel, headless: progress with frame numbers, cancel, tracks, cache; a screenshot.

The screenshot goes to artifacts/dvface_panel.png (git-ignored) for reviewers to look at.
"""

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
QtCore = pytest.importorskip("PySide6.QtCore")
pytest.importorskip("pytestqt")

import fake_nuke  # noqa: E402

sys.modules["nuke"] = fake_nuke
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "nuke_node"))

import dvface_nuke  # noqa: E402
from dvface_panel import DVFacePanel  # noqa: E402
from dvface_plates import COUNT, FIRST, tiny_model, write_sequence  # noqa: E402
from dvface_plugin.worker.client import WorkerClient  # noqa: E402

nuke = fake_nuke
LAST = FIRST + COUNT - 1
SCREENSHOT = REPO / "artifacts" / "dvface_panel.png"
Checked, Unchecked = QtCore.Qt.CheckState.Checked, QtCore.Qt.CheckState.Unchecked


def test_progress_shows_frame_numbers_and_cancel_is_only_offered_while_running(qtbot):
    panel = DVFacePanel()
    qtbot.addWidget(panel)
    assert not panel.cancel_button.isEnabled()
    panel.set_running(True)
    assert panel.cancel_button.isEnabled() and panel.progress.maximum() == 0  # busy until told the count
    panel.show_event({"event": "progress", "stage": "restore", "frame": 1003, "done": 3, "total": 5})
    assert (panel.progress.value(), panel.progress.maximum()) == (3, 5)
    assert "1003" in panel.frame_label.text() and "3/5" in panel.frame_label.text()
    with qtbot.waitSignal(panel.cancelRequested, timeout=1000):
        qtbot.mouseClick(panel.cancel_button, QtCore.Qt.MouseButton.LeftButton)
    panel.show_event({"event": "restarted", "attempt": 1, "pid": 4242})
    assert "4242" in panel.worker_label.text() and "restarted" in panel.frame_label.text()
    panel.set_running(False)
    assert not panel.cancel_button.isEnabled()


def test_tracks_switch_on_and_off_and_cache_usage_is_shown(qtbot):
    panel = DVFacePanel()
    qtbot.addWidget(panel)
    panel.set_tracks([{"id": 1, "first": 1001, "last": 1005, "size": 28.9, "enabled": True},
                      {"id": 3, "first": 1002, "last": 1004, "size": 12.0, "enabled": False}])
    items = [panel.tracks.topLevelItem(i) for i in range(panel.tracks.topLevelItemCount())]
    assert [i.text(1) for i in items] == ["1001-1005", "1002-1004"]
    assert [i.checkState(0) for i in items] == [Checked, Unchecked]
    with qtbot.waitSignal(panel.trackToggled, timeout=1000) as signal:
        items[0].setCheckState(0, Unchecked)
    assert signal.args == [1, False]
    panel.set_cache({"bytes_held": 256 << 20, "budget_bytes": 1024 << 20, "entries": 4, "hits": 7, "misses": 2})
    assert "256.0 MiB of 1024.0 MiB" in panel.cache_label.text() and panel.cache_bar.value() == 250
    panel.set_cache(None)
    assert "not running" in panel.cache_label.text()


@pytest.fixture
def script(tmp_path):
    model = tiny_model(tmp_path / "model")
    source = write_sequence(tmp_path / "plates")
    client = WorkerClient()
    dvface_nuke.set_client(client)
    nuke.reset(gui=True)
    read = nuke.nodes.Read(file=source, first=FIRST, last=LAST, raw=True)
    node = dvface_nuke.create_node()
    node.setInput(0, read)
    for knob, value in (("model", model), ("device", "cpu"), ("work_dir", str(tmp_path / "work")),
                        ("write_report", True)):
        node[knob].setValue(value)
    yield node, client
    dvface_nuke.set_client(None)


def test_panel_in_the_node_follows_a_restore_and_cancels_the_next(qtbot, script):
    node, client = script
    panel = node["panel"].make_widget()  # what opening the properties panel does
    qtbot.addWidget(panel)
    panel.resize(420, 360)
    assert isinstance(panel, DVFacePanel) and "not restored" in panel.status_label.text()

    seen = []
    node["restore"].execute()
    job = dvface_nuke._jobs[node.fullName()]
    assert panel.cancel_button.isEnabled()

    def done():
        seen.append(panel.frame_label.text())
        return job.finished.is_set() and "_finish" in nuke.main_thread_calls

    nuke.run_until(done, timeout=120)
    assert job.error is None, job.error
    assert any(f"restoring frame {LAST} ({COUNT}/{COUNT})" in text for text in seen)
    assert (panel.progress.value(), panel.progress.maximum(), panel.progress.format()) == (1, 1, "done")
    assert not panel.cancel_button.isEnabled()
    assert panel.status_label.text().startswith(f"restored {FIRST}-{LAST}")
    assert panel.tracks.topLevelItemCount() == 1 and "MiB" in panel.cache_label.text()
    assert f"pid {client.pid}" in panel.worker_label.text()
    index = Path(node["report_path"].value())
    assert index.is_file() and index.parent.name == f"report-{FIRST}-{LAST}"
    assert panel.report_label.isVisibleTo(panel) and QtCore.QUrl.fromLocalFile(str(index)).toString() in \
        panel.report_label.text()
    SCREENSHOT.parent.mkdir(exist_ok=True)
    panel.grab().save(str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size > 1000

    panel.tracks.topLevelItem(0).setCheckState(0, Unchecked)  # the artist switches the face off
    assert node["disabled_tracks"].value() == "1"
    panel.tracks.topLevelItem(0).setCheckState(0, Checked)

    client.clear_cache()
    nuke.main_thread_calls.clear()
    node["restore"].execute()
    job = dvface_nuke._jobs[node.fullName()]
    nuke.run_until(lambda: any(e["event"] == "progress" for e in job.events), timeout=60)
    qtbot.mouseClick(panel.cancel_button, QtCore.Qt.MouseButton.LeftButton)
    nuke.run_until(lambda: job.finished.is_set() and "_finish" in nuke.main_thread_calls, timeout=60)
    assert job.cancelled and job.result is None
    assert node["status"].value() == "cancelled" and panel.status_label.text() == "cancelled"
    assert not panel.cancel_button.isEnabled() and nuke.messages == []  # a cancel is not an error popup
    assert panel.progress.format() == "idle"
