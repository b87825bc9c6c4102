"""A message across the top of the window, with what can be done about it."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

from . import theme


class Banner(QFrame):
    """Hidden until there is something to say (an engine that does not answer, a run that
    could not start); its buttons are the ways out."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAutoFillBackground(True)
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.text.setTextFormat(self.text.textFormat().RichText)
        self._buttons = QHBoxLayout()
        layout = QHBoxLayout(self)
        layout.addWidget(self.text, 1)
        layout.addLayout(self._buttons)
        self.hide()

    def changeEvent(self, event) -> None:  # the colour scheme changed: tint again
        super().changeEvent(event)
        self._tint()

    def _tint(self) -> None:
        palette = self.palette()
        palette.setColor(self.backgroundRole(), theme.notice_background(self.window().palette()))
        self.setPalette(palette)

    def show_message(self, html: str, actions: list[tuple[str, Callable[[], None]]]) -> None:
        while self._buttons.count():
            widget = self._buttons.takeAt(0).widget()
            if widget is not None:
                widget.deleteLater()
        for text, slot in actions + [("Dismiss", self.hide)]:
            button = QPushButton(text)
            button.clicked.connect(slot)
            self._buttons.addWidget(button)
        self.text.setText(html)
        self._tint()
        self.show()
