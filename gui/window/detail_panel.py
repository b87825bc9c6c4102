"""The fields too wide for the table, for the selected image: build args and target.

Every keystroke is an edit (merged into one undo step per field), so Start,
Save and closing always use what is typed. The panel follows the selection by
the row's stable uid, and shows nothing when the selected row goes away (a
save that reloads the model, a remove, an undo).
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, Signal
from PySide6.QtWidgets import QFormLayout, QLabel, QLineEdit, QPlainTextEdit, QWidget

from ..pipeline.project import ImageSpec
from . import theme


def parse_build_args(text: str) -> dict[str, str]:
    args = {}
    for line in text.splitlines():
        key, separator, value = line.partition("=")
        if key.strip() and separator:
            args[key.strip()] = value
    return args


class DetailPanel(QWidget):
    edited = Signal(int, str, object, bool)  # uid, field, value, typing (merge with the last step)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.uid: int | None = None
        self.title = QLabel()
        self.build_args = QPlainTextEdit()
        self.build_args.setPlaceholderText("KEY=value, one per line")
        self.build_args.setAccessibleName("Build args")
        self.target = QLineEdit()
        self.target.setPlaceholderText("multi-stage target (optional)")
        self.target.setAccessibleName("Target")
        self.problems = QLabel()
        self.problems.setWordWrap(True)
        form = QFormLayout(self)
        form.addRow(self.title)
        args_label, target_label = QLabel("Build &args"), QLabel("&Target")
        args_label.setBuddy(self.build_args)
        target_label.setBuddy(self.target)
        form.addRow(args_label, self.build_args)
        form.addRow(target_label, self.target)
        form.addRow(self.problems)
        self.build_args.textChanged.connect(self._args_typed)
        self.target.textEdited.connect(self._target_typed)
        self._loading = False
        self.show_image(None, None, [])

    def show_image(self, uid: int | None, image: ImageSpec | None, problems: list[str]) -> None:
        self._loading = True
        another = (uid if image is not None else None) != self.uid
        self.uid = uid if image is not None else None
        self.setEnabled(image is not None)
        self.title.setText(f"<b>{image.name}</b>" if image else "Select one image to edit its build args and target")
        args = "\n".join(f"{k}={v}" for k, v in (image.build_args if image else {}).items())
        # The same image: only when it differs, never under the cursor of a typist. Another
        # image: always (a half-typed line of the last one parses to nothing, like none).
        if another or parse_build_args(self.build_args.toPlainText()) != (image.build_args if image else {}):
            self.build_args.setPlainText(args)
        if another or self.target.text().strip() != (image.target if image else ""):
            self.target.setText(image.target if image else "")
        self.show_problems(problems)
        self._loading = False

    def show_problems(self, problems: list[str]) -> None:
        self.problems.setText("\n".join(problems))
        self._tint()

    def _tint(self) -> None:
        palette = self.problems.palette()
        palette.setColor(self.problems.foregroundRole(), theme.error_text(self.palette()))
        self.problems.setPalette(palette)

    def changeEvent(self, event: QEvent) -> None:
        """The system's colour scheme changed: the problems' colour follows it."""
        super().changeEvent(event)
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            self._tint()

    def _args_typed(self) -> None:
        if not self._loading and self.uid is not None:
            self.edited.emit(self.uid, "build_args", parse_build_args(self.build_args.toPlainText()), True)

    def _target_typed(self) -> None:
        if not self._loading and self.uid is not None:
            self.edited.emit(self.uid, "target", self.target.text().strip(), True)
