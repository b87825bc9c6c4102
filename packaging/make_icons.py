"""Render resources/icons/dockpool.svg into the PNG sizes and the Windows .ico.

Run after editing the SVG: `.venv/bin/python packaging/make_icons.py`. The results are
committed, so building the package needs no SVG renderer.
"""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtCore import QSize
from PySide6.QtGui import QGuiApplication, QImage, QImageWriter, QPainter
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
    writer = QImageWriter(str(ICONS / "dockpool.ico"), b"ico")
    if not writer.write(render(renderer, 256)):
        raise SystemExit(f"cannot write .ico: {writer.errorString()}")


if __name__ == "__main__":
    main()
