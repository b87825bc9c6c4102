"""Log in to the registry; the login is kept by Docker's credential store, not by Dockpool.

The dialog asks; `log_in` sends the login off the GUI thread (a registry that does
not answer would otherwise freeze the window for the whole timeout) and says how
it went in the status bar, or in a box when the registry refused it.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit, QMainWindow, QMessageBox,
                               QWidget)

from .background import run_in_background
from .dialogs import show_box


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


def log_in(window: QMainWindow, registry: str, asking: Callable[[bool], None],
           say: Callable[[str, int], None]) -> None:
    """Ask for the login to `registry` and store it; `asking(True)` once the registry is
    being asked, `asking(False)` when it answered (the window disables Log in meanwhile);
    `say(text, milliseconds)` for the status bar."""
    from ..pipeline.credentials import login

    if not registry:
        QMessageBox.information(window, "Log in", "Enter the registry first.")
        return
    dialog = LoginDialog(registry, window)
    accepted = dialog.exec() == LoginDialog.DialogCode.Accepted
    username, password = dialog.username.text(), dialog.password.text()
    dialog.deleteLater()  # the password goes with it, not kept in a hidden widget
    if not accepted:
        return
    asking(True)
    say(f"Logging in to {registry}…", 0)

    def logged_in(where: str) -> None:
        asking(False)
        say(f"Logged in to {registry}; stored in {where}", 8000)

    def failed(exc: BaseException) -> None:
        asking(False)
        say("", 0)
        show_box(window, QMessageBox.Icon.Warning, "Login failed", f"{registry} refused the login:",
                 str(getattr(exc, "explanation", None) or exc), "login-error")

    run_in_background(lambda: login(registry, username, password), logged_in, failed)
