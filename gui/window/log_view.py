"""The log of one image: read from its log files in one go, then followed live.

The engine writes every line of every image to a file in the run folder (see
pipeline.runlogs), so the window keeps no log beyond the lines shown. Selecting
an image reads the last MAX_SHOWN lines of its files in one go (the whole log is
one click away); while it runs, new lines arrive with the controller's batches
and are appended once per batch. Lines the file already had when it was read
are not appended twice. The lines are shown by LogLines, which paints only those
in sight.
"""

from __future__ import annotations

import shutil
from collections import deque
from html import escape
from pathlib import Path
from typing import Any, BinaryIO

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QGuiApplication, QKeySequence, QShortcut
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QLineEdit, QMessageBox, QPushButton, QVBoxLayout, \
    QWidget

from ..pipeline import events as ev
from ..pipeline.runlogs import file_name, format_line
from .background import run_in_background
from .log_lines import LogLines

MAX_SHOWN = 20_000  # lines in the view; the file keeps them all


READ_BLOCK = 1 << 20  # bytes read at a time, counting lines or going back for the last ones


def _line_count(stream: BinaryIO) -> tuple[int, int]:
    """Whole lines in the file, and where the last one ends. Counted in C, in blocks: a log
    of millions of lines takes milliseconds. The run may be writing a burst right now; a
    line without its newline yet is not there yet (it will arrive live)."""
    total = end = position = 0
    while block := stream.read(READ_BLOCK):
        newlines = block.count(b"\n")
        if newlines:
            total += newlines
            end = position + block.rindex(b"\n") + 1
        position += len(block)
    return total, end


def _last_lines(stream: BinaryIO, count: int, end: int) -> list[str]:
    """The last `count` lines before `end`, read backwards from there: what is shown never
    costs more than reading what is shown, however long the log, and lines written since
    the count are left to arrive live."""
    position = end
    blocks: list[bytes] = []
    newlines = 0
    while position > 0 and newlines <= count:
        step = min(READ_BLOCK, position)
        position -= step
        stream.seek(position)
        blocks.append(stream.read(step))
        newlines += blocks[-1].count(b"\n")
    lines = b"".join(reversed(blocks)).split(b"\n")[:-1]  # the last piece is after the last newline
    if position > 0:
        lines = lines[1:]  # the first one read may be cut
    return [line.decode("utf-8", "replace") for line in lines[-count:]] if count else []


def tail_lines(paths: list[Path], count: int) -> tuple[list[str], list[int], bool]:
    """The last `count` lines of the files, oldest first, a line naming each later run's
    folder before its lines; how many lines each file holds (0 for a file not written
    yet); and whether earlier lines were left out."""
    kept: deque[str] = deque(maxlen=count)
    totals = []
    appended = 0
    for path in paths:
        total = 0
        try:
            with path.open("rb") as stream:
                if appended:
                    kept.append(f"--- {path.parent.name} ---")
                    appended += 1
                total, end = _line_count(stream)
                kept.extend(_last_lines(stream, min(total, count), end))
        except FileNotFoundError:
            pass
        totals.append(total)
        appended += total
    return list(kept), totals, appended > count


class LogView(QWidget):
    saveFailed = Signal(str)
    saved = Signal(str)  # the path, once the whole log is written there
    shownChanged = Signal(str)  # the name of the image shown ("" for none): the tab names it

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.key: str | None = None  # the engine's key of the image shown
        self.files: list[Path] = []
        self._skip = 0  # live lines already read from the file
        self._name = ""
        self._cut = False  # earlier lines are only in the file
        self.title = QLabel("Select an image to see its log")
        self.text = LogLines(MAX_SHOWN)
        self.text.setAccessibleName("Build and push log")
        self.search = QLineEdit()
        self.search.setPlaceholderText("Find in the log (Enter: next, Shift+Enter: previous)")
        self.search.setAccessibleName("Find in the log")
        self.search.setClearButtonEnabled(True)
        self.search.returnPressed.connect(lambda: self.find(backwards=False))
        backwards = QShortcut(QKeySequence("Shift+Return"), self.search, activated=lambda: self.find(backwards=True))
        backwards.setContext(Qt.ShortcutContext.WidgetShortcut)  # in the search box only, not in a cell editor
        QShortcut(QKeySequence.StandardKey.Find, self, activated=self.search.setFocus)
        QShortcut(QKeySequence.StandardKey.FindNext, self, activated=lambda: self.find(backwards=False))
        QShortcut(QKeySequence.StandardKey.FindPrevious, self, activated=lambda: self.find(backwards=True))
        self.copy = QPushButton("&Copy log")
        self.copy.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.text.plain_text()))
        self.save_button = QPushButton("Save log…")
        self.save_button.clicked.connect(self.save_dialog)
        self.open_file = QPushButton("Open log file")
        self.open_file.clicked.connect(self._open_file)
        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(self.search, 1)
        buttons = QHBoxLayout()
        buttons.addStretch()
        for button in (self.open_file, self.copy, self.save_button):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.text)
        layout.addLayout(buttons)
        self._enable_buttons()

    def _enable_buttons(self) -> None:
        """Nothing to open or save until the image shown has a log file (Save wrote an empty
        file; an image still queued has none yet), nothing to copy with no image shown."""
        written = any(path.exists() for path in self.files)
        for button in (self.open_file, self.save_button):
            button.setEnabled(written)
        self.copy.setEnabled(self.key is not None)

    def show_image(self, key: str | None, name: str, files: list[Path], lines_so_far: int) -> None:
        """Show an image's log: its files in one read; `lines_so_far` is how many lines of the
        current run's file the window has been told of (later ones will arrive live)."""
        self.key, self.files = key, list(files)
        self._name = name if key is not None else ""
        self._enable_buttons()
        self.shownChanged.emit(self._name)
        if key is None:
            self.title.setText("Select an image to see its log")
            self.text.clear()
            return
        shown, totals, self._cut = tail_lines(self.files, MAX_SHOWN)
        self._skip = max(0, (totals[-1] if totals else 0) - lines_so_far)
        self._show_title()
        self.text.set_lines(shown)

    def _show_title(self) -> None:
        self.title.setText(f"<b>Log — {escape(self._name)}</b>"
                           + (f" (last {MAX_SHOWN:,} lines; the whole log is in its file)" if self._cut else ""))

    def append_records(self, records: list[Any]) -> None:
        """The shown image's new lines from one batch, appended at once."""
        lines: list[str] = []
        for record in records:
            if isinstance(record, ev.LogLine) and record.image == self.key:
                parts = record.text.splitlines() or [""]
                skipped = min(self._skip, len(parts))  # already read from the file
                self._skip -= skipped
                prefix = format_line(record.stage.value, "", record.error)  # one time stamp for a burst
                lines.extend(prefix + part for part in parts[skipped:])
            elif isinstance(record, ev.LogGap) and record.image == self.key:
                if self._skip >= record.skipped:
                    self._skip -= record.skipped
                else:
                    self._skip = 0
                    lines.append(f"… {record.skipped} lines went to the log file only (Open log file)")
        if lines and not self.save_button.isEnabled():
            self._enable_buttons()  # its first lines: the file is there now
        if not self._cut and lines and self.text.line_count() + len(lines) > MAX_SHOWN:
            self._cut = True  # followed live past what the view keeps: say so, as a read does
            self._show_title()
        self.text.append(lines)

    def find(self, backwards: bool) -> bool:
        return self.text.find(self.search.text(), backwards)

    def save_dialog(self) -> None:
        # The key may hold "/" or ":" (team/api:1.0): the suggested name is a file's, not a path.
        suggested = Path.home() / file_name(self.key or "log")
        path, _ = QFileDialog.getSaveFileName(self, "Save log", str(suggested), "Text (*.log *.txt)")
        if path:
            self.save(Path(path))

    def save(self, path: Path) -> None:
        """The whole log (its files, not only the lines shown) to `path`, on a pool thread (a
        log may be hundreds of MB); says why it could not."""
        sources = list(self.files)

        def write() -> str:
            with path.open("w", encoding="utf-8", newline="\n") as out:
                for source in sources:
                    try:
                        stream = source.open(encoding="utf-8", errors="replace")
                    except FileNotFoundError:
                        continue  # a run that wrote nothing for it, or a run folder pruned
                    with stream:
                        shutil.copyfileobj(stream, out, READ_BLOCK)
            return str(path)

        run_in_background(write, self.saved.emit, lambda exc: self._save_failed(path, exc))

    def _save_failed(self, path: Path, exc: BaseException) -> None:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        QMessageBox.warning(self, "Cannot save the log", f"{path}: {reason}")
        self.saveFailed.emit(str(exc))

    def _open_file(self) -> None:
        if self.files:
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.files[-1])))
