"""Render resources/icons/medviewer.svg to the PNG sizes desktops and installers ask for.

Run after editing the SVG (the PNGs are committed, so builds need no SVG renderer):

    .venv/bin/python packaging/make_icons.py

Writes ``resources/icons/medviewer-<N>.png`` for N in ``SIZES`` (the 256 px one is
also the window icon). Qt's SVG renderer draws them offscreen: no display needed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ICONS = Path(__file__).resolve().parents[1] / "resources" / "icons"
SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def render(svg: Path, size: int, out: Path) -> None:
    """Draw ``svg`` into a transparent ``size`` x ``size`` PNG at ``out``."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"{svg}: not a valid SVG")
    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    if not image.save(str(out)):
        raise SystemExit(f"cannot write {out}")


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtGui import QGuiApplication

    _app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    svg = ICONS / "medviewer.svg"
    for size in SIZES:
        render(svg, size, ICONS / f"medviewer-{size}.png")
    print(f"wrote {len(SIZES)} PNG icons into {ICONS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
