"""Render resources/icons/dockpool.svg into the PNG sizes and the Windows .ico.

Run after editing the SVG: `.venv/bin/python packaging/make_icons.py`. The results are
committed, so building the package needs no SVG renderer.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

from PySide6.QtCore import QSize
from PySide6.QtGui import QGuiApplication, QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

ICONS = Path(__file__).resolve().parents[1] / "resources" / "icons"
SIZES = (16, 24, 32, 48, 64, 128, 256)


def render(renderer: QSvgRenderer, size: int) -> QImage:
    image = QImage(QSize(size, size), QImage.Format.Format_ARGB32)
    image.fill(0)
    painter = QPainter(image)
    renderer.render(painter)
    painter.end()
    return image


def main() -> None:
    QGuiApplication(sys.argv[:1])
    renderer = QSvgRenderer(str(ICONS / "dockpool.svg"))
    for size in SIZES:
        render(renderer, size).save(str(ICONS / f"dockpool-{size}.png"))
    render(renderer, 256).save(str(ICONS / "dockpool.png"))
    write_ico(ICONS / "dockpool.ico", {size: (ICONS / f"dockpool-{size}.png").read_bytes() for size in SIZES})


def write_ico(path: Path, pngs: dict[int, bytes]) -> None:
    """A Windows .ico with one PNG image per size (16 to 256), so Explorer, the taskbar and
    the title bar each take a sharp one instead of scaling the 256 px image down."""
    header = struct.pack("<HHH", 0, 1, len(pngs))
    offset = len(header) + 16 * len(pngs)
    entries, images = b"", b""
    for size, data in sorted(pngs.items()):
        dimension = 0 if size >= 256 else size  # 0 means 256 in an icon directory
        entries += struct.pack("<BBBBHHII", dimension, dimension, 0, 0, 1, 32, len(data), offset + len(images))
        images += data
    path.write_bytes(header + entries + images)


if __name__ == "__main__":
    main()
