"""The DVFace panel shown inside the node's properties (PySide6; no Nuke calls in here).

It only displays what it is told (worker status, progress with frame numbers, the face tracks,
cache usage, a link to the last QC report) and emits signals for what the artist asks (cancel, a track on/off, refresh the
cache numbers); `dvface_nuke.PanelKnob` wires those to the node and feeds it, from Nuke's main
thread, the events the worker thread receives.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6 import QtCore, QtWidgets


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


class DVFacePanel(QtWidgets.QWidget):
    cancelRequested = QtCore.Signal()
    trackToggled = QtCore.Signal(int, bool)
    refreshRequested = QtCore.Signal()

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._complete = False
        self.worker_label = QtWidgets.QLabel("worker: not started")
        self.status_label = QtWidgets.QLabel("")
        self.status_label.setWordWrap(True)
        self.progress = QtWidgets.QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("idle")
        self.frame_label = QtWidgets.QLabel("")
        self.cancel_button = QtWidgets.QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancelRequested)
        self.tracks = QtWidgets.QTreeWidget()
        self.tracks.setHeaderLabels(["face", "frames", "size (px)"])
        self.tracks.setRootIsDecorated(False)
        self.tracks.setMinimumHeight(90)
        self.tracks.itemChanged.connect(self._item_changed)
        self.cache_label = QtWidgets.QLabel("cache: unknown")
        self.cache_bar = QtWidgets.QProgressBar()
        self.cache_bar.setRange(0, 1000)
        self.cache_bar.setTextVisible(False)
        self.refresh_button = QtWidgets.QPushButton("Refresh")
        self.refresh_button.clicked.connect(self.refreshRequested)
        self.report_label = QtWidgets.QLabel("")
        self.report_label.setOpenExternalLinks(True)  # opens index.html in the system's browser
        self.report_label.setVisible(False)

        progress_row = QtWidgets.QHBoxLayout()
        progress_row.addWidget(self.progress, 1)
        progress_row.addWidget(self.cancel_button)
        cache_row = QtWidgets.QHBoxLayout()
        cache_row.addWidget(self.cache_label, 1)
        cache_row.addWidget(self.refresh_button)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(self.worker_label)
        layout.addLayout(progress_row)
        layout.addWidget(self.frame_label)
        layout.addWidget(self.status_label)
        layout.addWidget(self.report_label)
        layout.addWidget(QtWidgets.QLabel("faces (untick to leave a face as it is):"))
        layout.addWidget(self.tracks)
        layout.addLayout(cache_row)
        layout.addWidget(self.cache_bar)

    # --- fed by the node (main thread) --------------------------------------------------------

    def set_worker(self, pid: int | None) -> None:
        self.worker_label.setText(f"worker: running (pid {pid})" if pid else "worker: not started")

    def set_status(self, text: str) -> None:
        self.status_label.setText(text)

    def set_report(self, index: str | None) -> None:
        """The last restore's QC page (index.html), or None when it wrote none."""
        self.report_label.setVisible(bool(index))
        if index:
            url = QtCore.QUrl.fromLocalFile(index).toString()
            self.report_label.setText(f'<a href="{url}">QC report</a> of the restored range: {Path(index).parent.name}')

    def set_running(self, running: bool) -> None:
        self.cancel_button.setEnabled(running)
        if running:
            self._complete = False
            self.progress.setRange(0, 0)  # busy until the first event tells the frame count
            self.progress.setFormat("starting")
        else:
            self.progress.setRange(0, 1)
            self.progress.setValue(1 if self._complete else 0)
            self.progress.setFormat("done" if self._complete else "idle")

    def show_event(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "progress":
            total, done = int(event.get("total", 0)), int(event.get("done", 0))
            stage = "analysing" if event.get("stage") == "analyse" else "restoring"
            self.progress.setRange(0, max(total, 1))
            self.progress.setValue(done)
            self.progress.setFormat(f"{stage} %v/%m")
            self.frame_label.setText(f"{stage} frame {event.get('frame')} ({done}/{total})")
            self._complete = event.get("stage") == "restore" and done == total
        elif kind == "restarted":
            self.set_worker(event.get("pid"))
            self.frame_label.setText(f"worker died and was restarted (attempt {event.get('attempt')}); "
                                     "redoing the range")
        elif kind == "accepted":
            self.frame_label.setText("worker accepted the range")

    def set_tracks(self, tracks: list[dict[str, Any]]) -> None:
        self.tracks.blockSignals(True)
        self.tracks.clear()
        for t in tracks:
            item = QtWidgets.QTreeWidgetItem([f"#{t['id']}", f"{t['first']}-{t['last']}", f"{t['size']:g}"])
            item.setData(0, QtCore.Qt.ItemDataRole.UserRole, int(t["id"]))
            item.setFlags(item.flags() | QtCore.Qt.ItemFlag.ItemIsUserCheckable)
            checked = QtCore.Qt.CheckState.Checked if t.get("enabled", True) else QtCore.Qt.CheckState.Unchecked
            item.setCheckState(0, checked)
            self.tracks.addTopLevelItem(item)
        self.tracks.blockSignals(False)

    def set_cache(self, stats: dict[str, Any] | None) -> None:
        if not stats:
            self.cache_label.setText("cache: worker not running")
            self.cache_bar.setValue(0)
            return
        held, budget = int(stats["bytes_held"]), max(int(stats["budget_bytes"]), 1)
        self.cache_label.setText(f"cache: {_mib(held)} of {_mib(budget)}, {stats['entries']} entries, "
                                 f"{stats['hits']} hits / {stats['misses']} misses")
        self.cache_bar.setValue(round(1000 * held / budget))

    # --- artist input -------------------------------------------------------------------------

    def _item_changed(self, item: QtWidgets.QTreeWidgetItem, column: int) -> None:
        if column == 0:
            track_id = int(item.data(0, QtCore.Qt.ItemDataRole.UserRole))
            self.trackToggled.emit(track_id, item.checkState(0) == QtCore.Qt.CheckState.Checked)
