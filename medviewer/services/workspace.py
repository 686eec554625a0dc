"""The display model of an open study, shared by the slice views and the 3D view.

Window/level, colour map, overlays, per-layer visibility/opacity/style (2D and 3D)
and the 3D rendering options (preset, opacity shift, shading, quality, surfaces).
Qt-free and evented (psygnal) so that views, panels, the screenshot command and
tests read and change one source of truth; widgets keep no display state of their
own. Label-map display options are kept per label map object.
"""

from __future__ import annotations

import os
import weakref
from dataclasses import dataclass, replace

import numpy as np

from psygnal import Signal

from medviewer.core.labels import LabelMap
from medviewer.core.volume import Volume
from medviewer.imaging.window_level import COLORMAPS, Window, window_for_preset

DEFAULT_LABEL_OPACITY = 0.5


@dataclass(frozen=True)
class LabelLayerDisplay:
    """How one label map is drawn over the image."""

    #: the whole layer, in the slice views and in 3D (the Layers panel's check box)
    visible: bool = True
    opacity: float = DEFAULT_LABEL_OPACITY
    outline: bool = False
    #: label values whose 3D surface is hidden (the 3D view's Labels menu); 2D is unaffected
    hidden_surfaces: frozenset[int] = frozenset()


#: 3D rendering qualities: "fast" coarsens sampling while the camera moves; "best" never does.
QUALITY_FAST, QUALITY_BEST = "fast", "best"


@dataclass(frozen=True)
class VolumeDisplay:
    """How the 3D view renders the study (its toolbar reads and writes this)."""

    #: volume rendering preset name; None: the default for the modality (chosen by the 3D view)
    preset: str | None = None
    #: -1..1 of the preset's opacity-ramp shift range
    opacity_shift: float = 0.0
    #: gradient shading; None: as the preset says
    shading: bool | None = None
    quality: str = QUALITY_FAST
    volume_visible: bool = True
    surfaces_visible: bool = True
    #: 0.1..1, every label surface
    surface_opacity: float = 1.0


class DisplayModel:
    """The display state of a study in the slice views and the 3D view.

    Signals
    -------
    window_changed(Window, bool invert, str colormap):
        grey-level mapping changed.
    overlays_changed():
        crosshair or detection visibility changed.
    label_display_changed(LabelMap):
        visibility, opacity, fill/outline or hidden 3D surfaces of a label map changed.
    volume_display_changed(VolumeDisplay):
        a 3D rendering option changed (``volume``).
    """

    window_changed = Signal(object, bool, str)
    overlays_changed = Signal()
    label_display_changed = Signal(object)
    volume_display_changed = Signal(object)

    def __init__(self) -> None:
        self.window = Window(40.0, 400.0)
        self.invert = False
        self.colormap = "gray"
        self.preset = "default"
        self.crosshair_visible = True
        self.detections_visible = True
        self.volume = VolumeDisplay()
        self._label_display: "weakref.WeakKeyDictionary[LabelMap, LabelLayerDisplay]" = weakref.WeakKeyDictionary()

    # ------------------------------------------------------------------ grey levels
    def reset_for(self, volume: Volume) -> None:
        """Defaults for a newly opened volume: its default window; MONOCHROME1 shown inverted; the
        modality's 3D preset (quality and surface options are the user's and stay)."""
        self.preset = "default"
        self.window = window_for_preset("default", volume)
        self.invert = bool(volume.metadata.display_inverted)
        self.window_changed.emit(self.window, self.invert, self.colormap)
        self.set_volume_display(preset=None, opacity_shift=0.0, shading=None)

    def set_window(self, center: float, width: float) -> None:
        window = Window(center, width)
        if window != self.window:
            self.window = window
            self.preset = "custom"
            self.window_changed.emit(self.window, self.invert, self.colormap)

    def apply_preset(self, name: str, volume: Volume) -> Window:
        """Set the window of preset ``name`` (see ``window_for_preset``) for ``volume``."""
        self.window = window_for_preset(name, volume)
        self.preset = name
        self.window_changed.emit(self.window, self.invert, self.colormap)
        return self.window

    def set_invert(self, invert: bool) -> None:
        if bool(invert) != self.invert:
            self.invert = bool(invert)
            self.window_changed.emit(self.window, self.invert, self.colormap)

    def set_colormap(self, name: str) -> None:
        if name not in COLORMAPS:
            raise ValueError(f"unknown colour map '{name}'; choose one of {', '.join(COLORMAPS)}")
        if name != self.colormap:
            self.colormap = name
            self.window_changed.emit(self.window, self.invert, self.colormap)

    # ------------------------------------------------------------------ overlays
    def set_crosshair_visible(self, visible: bool) -> None:
        if bool(visible) != self.crosshair_visible:
            self.crosshair_visible = bool(visible)
            self.overlays_changed.emit()

    def set_detections_visible(self, visible: bool) -> None:
        if bool(visible) != self.detections_visible:
            self.detections_visible = bool(visible)
            self.overlays_changed.emit()

    def label_display(self, label_map: LabelMap) -> LabelLayerDisplay:
        return self._label_display.get(label_map, LabelLayerDisplay())

    def set_label_display(self, label_map: LabelMap, **changes) -> LabelLayerDisplay:
        """Change ``visible``, ``opacity`` (0..1), ``outline`` and/or ``hidden_surfaces`` of a label map."""
        if "opacity" in changes:
            changes["opacity"] = min(max(float(changes["opacity"]), 0.0), 1.0)
        if "hidden_surfaces" in changes:
            changes["hidden_surfaces"] = frozenset(int(v) for v in changes["hidden_surfaces"])
        current = self.label_display(label_map)
        updated = replace(current, **changes)
        if updated != current:
            self._label_display[label_map] = updated
            self.label_display_changed.emit(label_map)
        return updated

    def surface_visible(self, label_map: LabelMap, value: int) -> bool:
        """Whether the 3D view draws the surface of ``value`` (layer shown, surfaces on, label not hidden).

        The label table's own ``visible`` flag is the label's, not the display's; views check it too.
        """
        layer = self.label_display(label_map)
        return self.volume.surfaces_visible and layer.visible and int(value) not in layer.hidden_surfaces

    def set_surface_visible(self, label_map: LabelMap, value: int, visible: bool) -> None:
        """Show or hide one label's 3D surface (the slice views are untouched)."""
        hidden = set(self.label_display(label_map).hidden_surfaces)
        (hidden.discard if visible else hidden.add)(int(value))
        self.set_label_display(label_map, hidden_surfaces=hidden)

    # ------------------------------------------------------------------ 3D
    def set_volume_display(self, **changes) -> VolumeDisplay:
        """Change fields of :class:`VolumeDisplay` (values are checked and clamped)."""
        if "opacity_shift" in changes:
            changes["opacity_shift"] = min(max(float(changes["opacity_shift"]), -1.0), 1.0)
        if "surface_opacity" in changes:
            changes["surface_opacity"] = min(max(float(changes["surface_opacity"]), 0.1), 1.0)
        if changes.get("quality", QUALITY_FAST) not in (QUALITY_FAST, QUALITY_BEST):
            raise ValueError(f"quality must be '{QUALITY_FAST}' or '{QUALITY_BEST}', got {changes['quality']!r}")
        for key in ("volume_visible", "surfaces_visible"):
            if key in changes:
                changes[key] = bool(changes[key])
        updated = replace(self.volume, **changes)
        if updated != self.volume:
            self.volume = updated
            self.volume_display_changed.emit(updated)
        return updated


#: The former name (the slice views import it).
DisplaySettings = DisplayModel


# ---------------------------------------------------------------------------- study browser thumbnails
#: Single files larger than this are not read just for a thumbnail.
THUMBNAIL_MAX_FILE_BYTES = 64 * 2**20


def series_thumbnail(series, size: int = 64) -> np.ndarray | None:
    """A small grey picture (uint8, at most ``size`` pixels a side) of a series' middle image.

    Reads one file of a DICOM series (the middle one), or a small single-file image
    whole; returns None when that would be costly or the file cannot be read, so the
    browser keeps its placeholder. The aspect ratio of the pixels is not corrected.
    """
    import SimpleITK as sitk

    from medviewer.imaging.sitk_bridge import sitk_to_array
    from medviewer.imaging.window_level import auto_window, window_level_to_uint8

    files = list(series.files) or ([series.source_path] if series.source_path else [])
    if not files:
        return None
    path = files[len(files) // 2]
    try:
        if len(files) == 1 and os.path.getsize(path) > THUMBNAIL_MAX_FILE_BYTES:
            return None
        image = sitk.ReadImage(str(path))
    except (OSError, RuntimeError):
        return None
    if image.GetNumberOfComponentsPerPixel() != 1:
        image = sitk.VectorIndexSelectionCast(image, 0)
    array = sitk_to_array(image)
    plane = array[array.shape[0] // 2]
    step = max(1, int(np.ceil(max(plane.shape) / size)))
    plane = plane[::step, ::step]
    window = auto_window(plane)
    return np.ascontiguousarray(window_level_to_uint8(plane, window.center, window.width))
