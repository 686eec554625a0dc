"""Text over the image in viewport pixels: plane title, slice number and position, window, zoom, letters."""

from __future__ import annotations

from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPixmap
from PySide6.QtWidgets import QWidget

from medviewer.core.document import Document
from medviewer.imaging.reslice import SliceMapping, is_projection_image, projection_letters, slice_position_text
from medviewer.services.workspace import DisplaySettings
from medviewer.ui.overlay_colors import PLANE_COLORS

EDGES = ("left", "right", "top", "bottom")


class OverlayText:
    """A line of text drawn over the image (letters, slice info) by the view's ``drawForeground``.

    Rendered once into a pixmap when it changes (with a dark shadow for contrast on
    bright images) and blitted on every repaint: much cheaper than child QLabels, which
    Qt would repaint as separate widgets whenever the image changes.
    """

    def __init__(self, view: QWidget, color: str = "#e8e8e8", bold: bool = False, size: int = 10) -> None:
        self._view = view
        self._text = ""
        self._color = QColor(color)
        self._font = QFont()
        self._font.setPointSize(size)
        self._font.setBold(bold)
        self._pixmap: QPixmap | None = None
        self._rect = QRect(0, 0, 0, 0)

    def text(self) -> str:
        return self._text

    def set_text(self, text: str) -> bool:
        """Change the text; True when its size changed (the overlays must be placed again)."""
        if text == self._text:
            return False
        old = QRect(self._rect)
        self._text = text
        self._render()
        self._view.viewport().update(old.united(self._rect))
        return old.size() != self._rect.size()

    def _render(self) -> None:
        if not self._text:
            self._pixmap = None
            self._rect.setSize(QSize(0, 0))
            return
        metrics = QFontMetrics(self._font)
        size = QSize(metrics.horizontalAdvance(self._text) + 2, metrics.height() + 1)
        ratio = self._view.devicePixelRatioF()
        pixmap = QPixmap(size * ratio)
        pixmap.setDevicePixelRatio(ratio)
        pixmap.fill(Qt.GlobalColor.transparent)
        painter = QPainter(pixmap)
        painter.setFont(self._font)
        baseline = metrics.ascent()
        painter.setPen(QColor(0, 0, 0, 200))
        painter.drawText(1, baseline + 1, self._text)
        painter.setPen(self._color)
        painter.drawText(0, baseline, self._text)
        painter.end()
        self._pixmap = pixmap
        self._rect.setSize(size)

    def move(self, x: int, y: int) -> None:
        if (x, y) != (self._rect.x(), self._rect.y()):
            old = QRect(self._rect)
            self._rect.moveTo(int(x), int(y))
            self._view.viewport().update(old.united(self._rect))

    def x(self) -> int:
        return self._rect.x()

    def y(self) -> int:
        return self._rect.y()

    def width(self) -> int:
        return self._rect.width()

    def height(self) -> int:
        return self._rect.height() if self._text else QFontMetrics(self._font).height() + 1

    def geometry(self) -> QRect:
        return QRect(self._rect)

    def paint(self, painter: QPainter) -> None:
        if self._pixmap is not None:
            painter.drawPixmap(self._rect.topLeft(), self._pixmap)


class TextLayer:
    """The texts of one slice view: what they say and where they sit in the corners and at the edges."""

    def __init__(self, view: QWidget, plane: str) -> None:
        self._view = view
        self._plane = plane
        #: orientation letters by edge ("left", "right", "top", "bottom")
        self.letters = {edge: OverlayText(view, "#ffb000", bold=True, size=12) for edge in EDGES}
        self.title = OverlayText(view, "#%02x%02x%02x" % PLANE_COLORS[plane], bold=True)
        self.slice = OverlayText(view)
        self.position = OverlayText(view)
        self.bottom_left = OverlayText(view)
        self.bottom_right = OverlayText(view)
        self.top_right = OverlayText(view, "#ff8040", bold=True)
        self._all = [self.title, self.slice, self.position, self.bottom_left, self.bottom_right, self.top_right, *self.letters.values()]

    def update(
        self, document: Document | None, mapping: SliceMapping | None, slice_index: int, display: DisplaySettings, zoom: float
    ) -> None:
        doc, m = document, mapping
        labels = (self.slice, self.position, self.bottom_left, self.bottom_right, self.top_right)
        moved = self.title.set_text(self._plane.capitalize())
        if doc is None or m is None:
            texts = ("", "", "", "", "")
            letters = {edge: "" for edge in self.letters}
        else:
            window = display.window
            inverted = " inv" if display.invert else ""
            projection = is_projection_image(doc.volume)
            texts = (
                f"{slice_index + 1} / {m.slice_count}" if not projection else doc.volume.modality,
                slice_position_text(doc.geometry, m, doc.cursor, slice_index) if not projection else "",
                f"W {window.width:.0f}  L {window.center:.0f}{inverted}",
                f"{zoom * 100:.0f}%",
                "oblique" if m.oblique and not projection else "",
            )
            letters = m.letters
            if projection:
                # A radiograph or photo is not an axial slice: name it plainly and take its
                # letters from DICOM PatientOrientation when the reader provides it.
                moved |= self.title.set_text("Image")
                letters = projection_letters(doc.volume.metadata.extra.get("patient_orientation"))
        for label, text in zip(labels, texts):
            moved |= label.set_text(text)
        for edge, label in self.letters.items():
            moved |= label.set_text(letters[edge])
        if moved:
            self.place()

    def set_zoom(self, zoom: float) -> None:
        if self.bottom_right.set_text(f"{zoom * 100:.0f}%"):
            self.place()

    def place(self) -> None:
        width, height, margin = self._view.width(), self._view.height(), 4
        self.title.move(margin, margin)
        self.slice.move(margin + self.title.width() + 6, margin)
        self.position.move(margin, margin + self.title.height())
        self.bottom_left.move(margin, height - self.bottom_left.height() - margin)
        self.bottom_right.move(width - self.bottom_right.width() - margin, height - self.bottom_right.height() - margin)
        self.top_right.move(width - self.top_right.width() - margin, margin)
        letters = self.letters
        letters["left"].move(margin, (height - letters["left"].height()) // 2)
        letters["right"].move(width - letters["right"].width() - margin, (height - letters["right"].height()) // 2)
        letters["top"].move((width - letters["top"].width()) // 2, margin)
        letters["bottom"].move((width - letters["bottom"].width()) // 2, height - letters["bottom"].height() - margin)

        # In narrow views the centred letters would sit on the corner texts: move them inwards.
        def overlaps(letter: OverlayText, texts: list[OverlayText]) -> bool:
            return any(text.text() and letter.geometry().intersects(text.geometry()) for text in texts)

        if overlaps(letters["top"], [self.title, self.slice, self.top_right]):
            letters["top"].move(letters["top"].x(), self.position.geometry().bottom() + 2)
        if overlaps(letters["bottom"], [self.bottom_left, self.bottom_right]):
            letters["bottom"].move(letters["bottom"].x(), self.bottom_left.y() - letters["bottom"].height() - 2)

    def paint(self, painter: QPainter) -> None:
        for text in self._all:
            text.paint(painter)

    def overlay_text(self) -> dict[str, str]:
        """The texts as shown, by corner and edge (for tests and screenshots)."""
        return {
            "top_left": f"{self.title.text()} {self.slice.text()}\n{self.position.text()}",
            "top_right": self.top_right.text(),
            "bottom_left": self.bottom_left.text(),
            "bottom_right": self.bottom_right.text(),
            **{f"letter_{edge}": label.text() for edge, label in self.letters.items()},
        }
