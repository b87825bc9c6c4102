"""The run settings above the table: registry, push path, builders and pushers.

Every control has a label with an Alt mnemonic and a buddy (Alt+R reaches the
registry field), an accessible name for screen readers, and each slider a spin
box beside it for typing an exact number. The bar only reports what the user
chose; the window turns that into undoable project edits and live limits.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QLineEdit, QSlider, QSpinBox, QToolButton, QWidget

from ..pipeline import reference
from . import theme

BUILDERS_RANGE = (1, 64)
PUSHERS_RANGE = (1, 64)  # as the project file allows: a loaded value is never clamped
PUSH_PATHS = {"direct": "Dockpool uploads", "engine": "The engine pushes"}


class ControlsBar(QWidget):
    registryEdited = Signal(str)
    pushViaChanged = Signal(str)
    limitsChanged = Signal(int, int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.registry = QLineEdit()
        self.registry.setPlaceholderText("registry host[:port][/path]; empty = build only")
        self.registry.setAccessibleName("Registry")
        self.registry.setClearButtonEnabled(True)
        self.registry.editingFinished.connect(self._registry_finished)
        self.registry.textEdited.connect(self._show_registry_problem)
        self.login = QToolButton()  # shows the window's Log in action (enabled where actions are decided)
        self.login.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.push_via = QComboBox()
        for value, text in PUSH_PATHS.items():
            self.push_via.addItem(text, value)
        self.push_via.setAccessibleName("Push path")
        self.push_via.setToolTip("Dockpool uploads: resumes stalled uploads, keeps to the pushers limit on the "
                                 "wire.\nThe engine pushes: for registries Dockpool's uploader cannot handle.")
        self.push_via.currentIndexChanged.connect(lambda: self.pushViaChanged.emit(self.push_via.currentData()))
        self.builders, self.builders_spin = self._limit(*BUILDERS_RANGE, "Builders")
        self.pushers, self.pushers_spin = self._limit(*PUSHERS_RANGE, "Pushers")

        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._label("&Registry", self.registry))
        layout.addWidget(self.registry, 3)
        layout.addWidget(self.login)
        layout.addWidget(self._label("&Push", self.push_via))
        layout.addWidget(self.push_via)
        layout.addSpacing(12)
        for text, slider, spin in (("&Builders", self.builders, self.builders_spin),
                                   ("P&ushers", self.pushers, self.pushers_spin)):
            layout.addWidget(self._label(text, spin))
            layout.addWidget(slider, 1)
            layout.addWidget(spin)

    @staticmethod
    def _label(text: str, buddy: QWidget) -> QLabel:
        label = QLabel(text)
        label.setBuddy(buddy)
        return label

    def _limit(self, low: int, high: int, name: str) -> tuple[QSlider, QSpinBox]:
        slider = QSlider(Qt.Orientation.Horizontal)
        slider.setRange(low, high)
        slider.setPageStep(1)
        slider.setAccessibleName(name)
        spin = QSpinBox()
        spin.setRange(low, high)
        spin.setAccessibleName(f"{name} (number)")
        # The number counts once typed (Enter, Tab, focus elsewhere), not digit by digit:
        # typing 12 during a run must not set the live limit to 1 first.
        spin.setKeyboardTracking(False)
        slider.valueChanged.connect(spin.setValue)
        spin.valueChanged.connect(slider.setValue)
        slider.valueChanged.connect(self._limits_moved)
        return slider, spin

    def _limits_moved(self) -> None:
        self.limitsChanged.emit(self.builders.value(), self.pushers.value())

    def _registry_finished(self) -> None:
        self.registryEdited.emit(self.registry.text().strip())

    def _show_registry_problem(self) -> None:
        text = self.registry.text().strip()
        problem = reference.registry_problem(text)
        palette = self.palette()  # the bar's: the field's own palette carries its style sheet's tint
        if problem:
            self.registry.setStyleSheet(f"QLineEdit {{ background: {theme.invalid_background(palette).name()}; }}")
        else:
            self.registry.setStyleSheet("")
        self.registry.setToolTip(f"'{text}' {problem}" if problem else "")

    def changeEvent(self, event: QEvent) -> None:
        """The system switched light/dark: the registry field's tint is a style sheet, which
        does not follow the palette by itself."""
        super().changeEvent(event)
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            self._show_registry_problem()

    def commit(self) -> None:
        """Hand over what is being typed (Ctrl+S, Start and close use the typed values)."""
        self._registry_finished()

    def show_settings(self, registry: str, push_via: str, builders: int, pushers: int) -> None:
        """Show the project's settings without reporting them as edits."""
        for widget in (self.registry, self.push_via, self.builders, self.pushers, self.builders_spin,
                       self.pushers_spin):
            widget.blockSignals(True)
        if self.registry.text().strip() != registry:
            self.registry.setText(registry)
        self.push_via.setCurrentIndex(max(0, self.push_via.findData(push_via)))
        for slider, spin, value in ((self.builders, self.builders_spin, builders),
                                    (self.pushers, self.pushers_spin, pushers)):
            slider.setValue(value)
            spin.setValue(value)
        for widget in (self.registry, self.push_via, self.builders, self.pushers, self.builders_spin,
                       self.pushers_spin):
            widget.blockSignals(False)
        self._show_registry_problem()

    def set_login_action(self, action: QAction) -> None:
        self.login.setDefaultAction(action)
        self.login.setAccessibleName("Log in to the registry")

    def set_running(self, running: bool) -> None:
        """During a run the limits stay live; what the run was started with does not."""
        for widget in (self.registry, self.push_via):
            widget.setEnabled(not running)
