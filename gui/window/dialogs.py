"""Message boxes that do not block: an error is shown, the window goes on."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget


def show_box(parent: QWidget, icon: QMessageBox.Icon, title: str, text: str, details: str, name: str) -> None:
    """A window-modal box with the details as its informative text; `name` is its object
    name, by which tests find it. It deletes itself when closed."""
    box = QMessageBox(icon, title, text, QMessageBox.StandardButton.Ok, parent)
    box.setInformativeText(details)
    box.setObjectName(name)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()
