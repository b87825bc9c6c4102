"""Run progress where the desktop shows it: the Windows taskbar button.

On Windows the taskbar button fills as images finish (ITaskbarList3, through
ctypes: Qt 6 has no wrapper) and turns red when some failed; when a run ends
the button flashes (QApplication.alert, which is the urgent hint on X11 and
Wayland). Elsewhere progress is the window's own bar. None of the COM calls can
be run here: they are written to Microsoft's documented interface and fail
silently (no progress) rather than break the window.
"""

from __future__ import annotations

import ctypes
import logging
import sys
from typing import Any

from PySide6.QtWidgets import QApplication, QWidget

log = logging.getLogger(__name__)

_CLSID_TASKBAR_LIST = "{56FDF344-FD6D-11d0-958A-006097C9A090}"
_IID_TASKBAR_LIST3 = "{ea1afb91-9e28-4b86-90e9-9e9f8a5eefaf}"
TBPF_NOPROGRESS, TBPF_NORMAL, TBPF_ERROR = 0, 0x2, 0x4
# Vtable slots: IUnknown (3), ITaskbarList (5: HrInit, AddTab, DeleteTab, ActivateTab,
# SetActiveAlt), ITaskbarList2 (1: MarkFullscreenWindow), then ITaskbarList3's.
_HR_INIT, _SET_PROGRESS_VALUE, _SET_PROGRESS_STATE = 3, 9, 10


class _Guid(ctypes.Structure):
    _fields_ = [("data1", ctypes.c_uint32), ("data2", ctypes.c_uint16), ("data3", ctypes.c_uint16),
                ("data4", ctypes.c_ubyte * 8)]


class TaskbarProgress:
    def __init__(self, window: QWidget) -> None:
        self._window = window
        self._taskbar: Any = None
        if sys.platform == "win32":
            try:
                self._taskbar = self._create()
            except (OSError, AttributeError, ValueError):
                log.info("taskbar progress unavailable", exc_info=True)

    @staticmethod
    def _create() -> Any:
        ole32 = ctypes.oledll.ole32  # type: ignore[attr-defined]
        ole32.CoInitialize(None)
        clsid, iid = _Guid(), _Guid()
        ole32.CLSIDFromString(_CLSID_TASKBAR_LIST, ctypes.byref(clsid))
        ole32.IIDFromString(_IID_TASKBAR_LIST3, ctypes.byref(iid))
        pointer = ctypes.c_void_p()
        CLSCTX_INPROC_SERVER = 1
        ole32.CoCreateInstance(ctypes.byref(clsid), None, CLSCTX_INPROC_SERVER, ctypes.byref(iid),
                               ctypes.byref(pointer))
        taskbar = pointer.value
        TaskbarProgress._call(taskbar, _HR_INIT)
        return taskbar

    @staticmethod
    def _call(this: Any, slot: int, *args: Any) -> None:
        vtable = ctypes.cast(ctypes.cast(this, ctypes.POINTER(ctypes.c_void_p))[0],
                             ctypes.POINTER(ctypes.c_void_p))
        argtypes = [ctypes.c_void_p] + [type(arg) for arg in args]
        function = ctypes.WINFUNCTYPE(ctypes.c_long, *argtypes)(vtable[slot])  # type: ignore[attr-defined]
        function(this, *args)

    def show(self, done: int, total: int, failed: bool) -> None:
        if self._taskbar is None:
            return
        try:
            hwnd = ctypes.c_void_p(int(self._window.winId()))
            self._call(self._taskbar, _SET_PROGRESS_STATE, hwnd,
                       ctypes.c_int(TBPF_ERROR if failed else TBPF_NORMAL))
            self._call(self._taskbar, _SET_PROGRESS_VALUE, hwnd, ctypes.c_ulonglong(done),
                       ctypes.c_ulonglong(max(1, total)))
        except (OSError, ValueError):
            log.info("taskbar progress failed", exc_info=True)

    def clear(self) -> None:
        if self._taskbar is None:
            return
        try:
            self._call(self._taskbar, _SET_PROGRESS_STATE, ctypes.c_void_p(int(self._window.winId())),
                       ctypes.c_int(TBPF_NOPROGRESS))
        except (OSError, ValueError):
            pass

    def finished(self) -> None:
        """The run ended: clear the bar, and flash the button if the window is not in front."""
        self.clear()
        QApplication.alert(self._window)
