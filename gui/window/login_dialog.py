"""Log in to the registry; the login is kept by Docker's credential store, not by Dockpool."""

from __future__ import annotations

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit, QWidget


class LoginDialog(QDialog):
    def __init__(self, registry: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Log in to registry")
        self.username = QLineEdit()
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setPlaceholderText("password or access token")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QFormLayout(self)
        layout.addRow(QLabel(f"Registry: <b>{registry}</b>"))
        layout.addRow("Username", self.username)
        layout.addRow("Password", self.password)
        note = QLabel("Stored by Docker's credential store (as <code>docker login</code> does), "
                      "never in the project file.")
        note.setWordWrap(True)
        layout.addRow(note)
        layout.addRow(buttons)
