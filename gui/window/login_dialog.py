"""Log in to the registry; the login is kept by Docker's credential store, not by Dockpool.

The dialog asks; `log_in` sends the login off the GUI thread (a registry that does
not answer would otherwise freeze the window for the whole timeout) and says how
it went in the status bar, or in a box when the registry refused it.
"""

from __future__ import annotations

import html
from collections.abc import Callable

from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit, QMainWindow, QMessageBox,
                               QWidget)

from ..pipeline.reference import DOCKER_HUB_NAMES, registry_host
from .background import run_in_background
from .dialogs import show_box


def login_target(registry: str) -> str:
    """Where a login for the registry field goes, as Docker decides it: its host (a path
    after the host is no part of a login), or Docker Hub for a namespace there."""
    host, first = registry_host(registry), registry.partition("/")[0]
    if host not in DOCKER_HUB_NAMES:
        return host
    if first == host:
        return "Docker Hub"
    return f"Docker Hub (\u201c{first}\u201d is a namespace there, as Docker reads it)"


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
        layout.addRow(QLabel(f"Registry: <b>{html.escape(login_target(registry))}</b>"))
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
    from ..pipeline.credentials import LoginNotStored, login

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
    target = login_target(registry)
    say(f"Logging in to {target}…", 0)

    def logged_in(where: str) -> None:
        asking(False)
        say(f"Logged in to {target}; stored in {where}", 8000)

    def failed(exc: BaseException) -> None:
        asking(False)
        say("", 0)
        if isinstance(exc, LoginNotStored):
            show_box(window, QMessageBox.Icon.Warning, "Login not stored",
                     f"{target} accepted the login, but it could not be stored:", str(exc), "login-error")
            return
        show_box(window, QMessageBox.Icon.Warning, "Login failed", f"{target} refused the login:",
                 str(getattr(exc, "explanation", None) or exc), "login-error")

    run_in_background(lambda: login(registry, username, password), logged_in, failed)
