"""Helpers for the editing GUI tests (imported by name; also used by the crash-recovery child process)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QColor
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from medviewer.core import Document, Geometry, SeriesInfo, Volume
from medviewer.imaging.sitk_bridge import geometry_from_sitk, sitk_to_array, volume_to_sitk


def make_ct_volume() -> Volume:
    """A 96 x 96 x 24 CT: a round body of 40 HU in air, with a 250 HU block."""
    geometry = Geometry((96, 96, 24), (1.0, 1.0, 2.0), (-48.0, -48.0, 0.0))
    _, y, x = np.ogrid[:24, :96, :96]
    body = (y - 48) ** 2 + (x - 48) ** 2 < 40**2
    array = np.broadcast_to(np.where(body, 40, -1000), geometry.shape).astype(np.int16).copy()
    array[:, 30:45, 40:60] = 250
    return Volume(array, geometry, "CT")


def make_document() -> Document:
    return Document(make_ct_volume())


def write_nifti(path: Path, volume: Volume) -> Path:
    sitk.WriteImage(volume_to_sitk(volume), str(path))
    return path


def _scan_nifti(path, progress, cancel):
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    geometry = Geometry(reader.GetSize(), reader.GetSpacing(), reader.GetOrigin(), reader.GetDirection())
    return [SeriesInfo(uid=f"file:{path}", files=[str(path)], geometry=geometry, modality="CT",
                       source_format="NIfTI", source_path=str(path))]


def _load_nifti(series, progress, cancel):
    image = sitk.ReadImage(series.files[0])
    volume = Volume(sitk_to_array(image), geometry_from_sitk(image), "CT")
    volume.metadata.source_path = series.source_path
    volume.metadata.source_format = "NIfTI"
    return volume


def use_nifti_loader(window) -> None:
    """Open NIfTI files with the io layer when it exists, else with a small SimpleITK reader."""
    try:
        import medviewer.services.open_study  # noqa: F401
    except ImportError:
        window.scan_function = _scan_nifti
        window.load_function = _load_nifti


def widget_point(view, index) -> QPoint:
    return view.index_to_widget(np.asarray(index, float)).toPoint()


def drag(view, indices, button=Qt.MouseButton.LeftButton, modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    """Press at the first voxel index, move through the others, release at the last (real mouse events)."""
    viewport = view.viewport()
    points = [widget_point(view, index) for index in indices]
    QTest.mousePress(viewport, button, modifiers, points[0])
    for point in points[1:]:
        QTest.mouseMove(viewport, point)
    QTest.mouseRelease(viewport, button, modifiers, points[-1])
    QApplication.processEvents()


def pixel_at(view, index) -> QColor:
    """Colour the view shows at a voxel index (from a grab of its viewport)."""
    image = view.viewport().grab().toImage()
    point = widget_point(view, index)
    return image.pixelColor(point.x(), point.y())
