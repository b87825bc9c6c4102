"""What the row context menu does with one image besides running and editing it: show
its folder, open its Dockerfile, copy its reference, digest or error.

Apart from the table because these need the project (where a context is, which
registry a reference names) and the desktop (file manager, clipboard), and the
table is only a view of the model.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QGuiApplication

from .document import ProjectDocument


class RowCommands(QObject):
    message = Signal(str, int)  # for the status bar: text, milliseconds

    def __init__(self, document: ProjectDocument, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.document = document

    def open(self, uid: int, folder: bool) -> None:
        """The image's folder in the file manager, or its Dockerfile in the user's editor."""
        image = self.document.model.image_by_uid(uid)
        target = self.document.project.context_path(image)
        if not folder:
            target = target / image.dockerfile
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(target)))

    def copy(self, uid: int, what: str) -> None:
        """"ref" (the first reference: the one pushed, or the one a push would use),
        "digest" or "error", to the clipboard."""
        model = self.document.model
        image, state = model.image_by_uid(uid), model.state_by_uid(uid)
        text = {"ref": (state.refs or tuple(image.refs(self.document.project.registry)) or ("",))[0],
                "digest": state.digest or "", "error": state.error or ""}[what]
        QGuiApplication.clipboard().setText(text)
        self.message.emit(f"Copied {text[:80]}" if text else f"Nothing to copy ({what})", 4000)
