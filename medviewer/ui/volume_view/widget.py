"""``VolumeView``: the 3D pane. Volume rendering, label surfaces, cursor, boxes, picking.

The scene is in world LPS millimetres, exactly as the slice views: the volume is
placed with spacing, origin and direction (``scene.py``), surfaces are meshed in
world coordinates (``surfaces.py``). The view reflects a ``medviewer.core.Document``
through its signals and changes it only by moving the cursor when the user clicks
on the rendering.
"""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass, field

import numpy as np
from PySide6.QtCore import QEvent, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QImage, QPainter
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QLabel,
    QMenu,
    QSizePolicy,
    QSlider,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

import vtkmodules.qt

vtkmodules.qt.PyQtImpl = "PySide6"

import vtkmodules.vtkInteractionStyle  # noqa: E402,F401  (registers interactor styles)
import vtkmodules.vtkRenderingFreeType  # noqa: E402,F401  (text for the orientation cube)
import vtkmodules.vtkRenderingOpenGL2  # noqa: E402,F401  (OpenGL render window factories)
import vtkmodules.vtkRenderingVolumeOpenGL2  # noqa: E402,F401  (GPU ray-cast mapper)
from vtkmodules.qt.QVTKRenderWindowInteractor import QVTKRenderWindowInteractor  # noqa: E402
from vtkmodules.util.numpy_support import numpy_to_vtk, vtk_to_numpy  # noqa: E402
from vtkmodules.vtkFiltersSources import vtkSphereSource  # noqa: E402
from vtkmodules.vtkInteractionStyle import vtkInteractorStyleTrackballCamera  # noqa: E402
from vtkmodules.vtkInteractionWidgets import vtkOrientationMarkerWidget  # noqa: E402
from vtkmodules.vtkRenderingAnnotation import vtkAnnotatedCubeActor  # noqa: E402
from vtkmodules.vtkRenderingCore import (  # noqa: E402
    vtkActor,
    vtkCellPicker,
    vtkPolyDataMapper,
    vtkRenderer,
    vtkTextActor,
    vtkVolume,
    vtkVolumeProperty,
    vtkWindowToImageFilter,
)
from vtkmodules.vtkRenderingVolumeOpenGL2 import vtkSmartVolumeMapper  # noqa: E402

from medviewer.core.detection import Detection, DetectionStatus  # noqa: E402
from medviewer.core.document import Document, Region  # noqa: E402
from medviewer.core.labels import LabelMap, default_color  # noqa: E402
from medviewer.core.signal_links import SignalLinks  # noqa: E402
from medviewer.core.volume import percentile_window  # noqa: E402
from medviewer.services.workspace import QUALITY_BEST, QUALITY_FAST, DisplayModel, VolumeDisplay  # noqa: E402
from medviewer.ui import overlay_colors  # noqa: E402
from medviewer.ui.jobs import JobQueue  # noqa: E402
from medviewer.ui.overlay_colors import unit_rgb  # noqa: E402
from medviewer.ui.volume_view.capabilities import OpenGLStatus, opengl_status  # noqa: E402
from medviewer.ui.volume_view.presets import PRESETS, apply_preset, default_preset_name  # noqa: E402
from medviewer.ui.volume_view.scene import (  # noqa: E402
    boxes_polydata,
    direction_origin_matrix,
    image_data_from_array,
    slice_plane_outlines,
)
from medviewer.ui.volume_view.surfaces import LabelSurface, extract_label_surfaces  # noqa: E402

log = logging.getLogger(__name__)

#: Camera presets: where the camera sits relative to the patient (LPS unit vector) and its view-up.
CAMERA_PRESETS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "A": ((0.0, -1.0, 0.0), (0.0, 0.0, 1.0)),  # anterior is -y
    "P": ((0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
    "L": ((1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),  # left is +x
    "R": ((-1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),
    "S": ((0.0, 0.0, 1.0), (0.0, -1.0, 0.0)),  # superior is +z; anterior at the top
    "I": ((0.0, 0.0, -1.0), (0.0, -1.0, 0.0)),
}


#: Milliseconds without changes before label surfaces are rebuilt.
SURFACE_DEBOUNCE_MS = 250
#: Milliseconds after a quick (interactive-quality) render before the full-quality one.
REFINE_DELAY_MS = 250
#: Frame rates asked of VTK: while interacting (fast mode), for the refined still frame
#: in fast mode (VTK lowers the ray density to meet it on slow, software OpenGL; a GPU
#: meets it at full quality), and "no limit" for best quality.
INTERACTIVE_UPDATE_RATE = 15.0
FAST_STILL_UPDATE_RATE = 2.0
BEST_UPDATE_RATE = 0.0001
#: Volumes above this many voxels get a decimated copy drawn while interacting.
PREVIEW_MAX_VOXELS = 12_000_000

#: Slice plane outline colours: axial (constant k), coronal (constant j), sagittal (constant i),
#: and box colours by review status: the slice views' table (``medviewer.ui.overlay_colors``) as 0-1 floats.
PLANE_COLORS = tuple(unit_rgb(overlay_colors.PLANE_COLORS[plane]) for plane in ("axial", "coronal", "sagittal"))
STATUS_COLORS = {status: unit_rgb(rgb) for status, rgb in overlay_colors.STATUS_COLORS.items()}
CURSOR_COLOR = (1.0, 0.9, 0.1)


@dataclass(eq=False)
class _SurfaceLayer:
    """The surfaces of one label map and the state of their background rebuild."""

    label_map: LabelMap
    actors: dict[int, vtkActor] = field(default_factory=dict)
    boxes: dict[int, Region] = field(default_factory=dict)
    #: None: nothing pending; "all": full rebuild; else a list of changed regions.
    pending: object = None
    running: bool = False
    job: object = None  # the JobHandle building it

    def add_pending(self, region: Region | None) -> None:
        if region is None or self.pending == "all":
            self.pending = "all"
        elif self.pending is None:
            self.pending = [region]
        else:
            self.pending.append(region)


class VolumeView(QWidget):
    """3D view of a document: volume rendering, label surfaces, cursor, detection boxes.

    Parameters
    ----------
    parent:
        Parent widget.
    opengl:
        ``None`` (default) runs the real capability check; ``False`` forces the
        no-OpenGL message (as does ``MEDVIEWER_DISABLE_3D=1``); ``True`` skips the check.
    display:
        The display model it draws from, the slice views' one in the main window (layer
        visibility, 3D preset, quality, surfaces); the view keeps no display state of its own.
        Default: a model of its own.
    """

    #: label surfaces were (re)built and are in the scene
    surfaces_updated = Signal()
    #: a click picked a world position (LPS mm, np.ndarray of 3); the cursor moved there
    picked = Signal(object)

    def __init__(self, parent: QWidget | None = None, *, opengl: bool | None = None, display: DisplayModel | None = None) -> None:
        super().__init__(parent)
        self.display = display if display is not None else DisplayModel()
        if opengl is None:
            status = opengl_status()
        elif opengl:
            status = OpenGLStatus(True)
        else:
            status = OpenGLStatus(False, "the 3D view was turned off")
        self._status = status
        self._shut_down = False
        self._message: QLabel | None = None
        self._document: Document | None = None
        self._document_links: SignalLinks | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        if not status.available:
            self._build_message(layout, status.reason)
            return
        self._default_preset = PRESETS["CT bone"].name  # the open volume's, when the display names none
        self._layers: dict[int, _SurfaceLayer] = {}
        self._window = (0.0, 1.0)
        self._interacting = False
        self._render_pending = False
        self._press_position: tuple[int, int] | None = None
        self._jobs = JobQueue(max_parallel=1, parent=self)  # surface building, one job at a time
        self._build_toolbar(layout)
        self._build_scene(layout)
        self._surface_timer = QTimer(self)
        self._surface_timer.setSingleShot(True)
        self._surface_timer.setInterval(SURFACE_DEBOUNCE_MS)
        self._surface_timer.timeout.connect(self._start_surface_jobs)
        # Timers owned by the view die with it, so no callback reaches a deleted widget.
        self._render_timer = QTimer(self)
        self._render_timer.setSingleShot(True)
        self._render_timer.setInterval(0)
        self._render_timer.timeout.connect(self._render_now)
        self._refine_timer = QTimer(self)
        self._refine_timer.setSingleShot(True)
        self._refine_timer.setInterval(REFINE_DELAY_MS)
        self._refine_timer.timeout.connect(self._render_full_quality)
        self.display.volume_display_changed.connect(self._on_volume_display_changed)
        self.display.label_display_changed.connect(self._on_label_display_changed)
        self._on_volume_display_changed(self.display.volume)
        app = QApplication.instance()
        if app is not None:
            # A weak reference: the application must not keep closed views alive.
            this = weakref.ref(self)
            app.aboutToQuit.connect(lambda: (view := this()) is not None and view.shutdown())

    # ================================================================== construction
    def _build_message(self, layout: QVBoxLayout, reason: str) -> None:
        self._message = QLabel(
            f"3D view unavailable: {reason}.\nThe slice views and every other tool keep working.", self
        )
        self._message.setObjectName("volumeViewMessage")
        self._message.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._message.setWordWrap(True)
        self._message.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._message.setStyleSheet("color: #ddd; background: #202024; padding: 12px;")
        layout.addWidget(self._message)

    def _build_toolbar(self, layout: QVBoxLayout) -> None:
        # Two compact rows (volume; camera and scene) so a 2x2 pane shows every control.
        bar = QToolBar(self)
        bar.setObjectName("volumeViewToolbar")
        scene_bar = QToolBar(self)
        scene_bar.setObjectName("volumeViewSceneToolbar")
        for row in (bar, scene_bar):
            row.setStyleSheet("QToolBar { spacing: 2px; padding: 0px; } QToolButton { padding: 1px 3px; }")
        self.preset_combo = QComboBox(bar)
        self.preset_combo.setObjectName("presetCombo")
        self.preset_combo.addItems(list(PRESETS))
        self.preset_combo.setToolTip("Volume rendering preset")
        self.preset_combo.currentTextChanged.connect(self.set_preset)
        bar.addWidget(self.preset_combo)

        self.shift_slider = QSlider(Qt.Orientation.Horizontal, bar)
        self.shift_slider.setObjectName("opacityShiftSlider")
        self.shift_slider.setRange(-100, 100)
        self.shift_slider.setMinimumWidth(50)
        self.shift_slider.setMaximumWidth(110)
        self.shift_slider.setToolTip("Shift the opacity ramp (lower: more visible; higher: less)")
        self.shift_slider.valueChanged.connect(lambda value: self.set_opacity_shift(value / 100.0))
        bar.addWidget(self.shift_slider)

        self.shading_check = QCheckBox("Shade", bar)
        self.shading_check.setObjectName("shadingCheck")
        self.shading_check.setChecked(True)
        self.shading_check.toggled.connect(self.set_shading)
        bar.addWidget(self.shading_check)

        self.quality_combo = QComboBox(bar)
        self.quality_combo.setObjectName("qualityCombo")
        self.quality_combo.addItem("Fast", QUALITY_FAST)
        self.quality_combo.addItem("Best", QUALITY_BEST)
        self.quality_combo.setToolTip("Fast: lower resolution while rotating; Best: full quality always")
        self.quality_combo.currentIndexChanged.connect(
            lambda index: self.set_quality(self.quality_combo.itemData(index))
        )
        bar.addWidget(self.quality_combo)

        self.camera_buttons: dict[str, QToolButton] = {}
        bar = scene_bar
        for letter in CAMERA_PRESETS:
            button = QToolButton(bar)
            button.setText(letter)
            button.setObjectName(f"camera{letter}")
            button.setToolTip(f"View from the {_SIDE_NAMES[letter]} side")
            button.clicked.connect(lambda _checked=False, letter=letter: self.set_camera_preset(letter))
            bar.addWidget(button)
            self.camera_buttons[letter] = button
        reset = QToolButton(bar)
        reset.setText("\u27f2")
        reset.setObjectName("resetCameraButton")
        reset.setToolTip("Reset the camera (anterior view, whole volume)")
        reset.clicked.connect(self.reset_camera)
        bar.addWidget(reset)
        bar.addSeparator()

        self.volume_check = QCheckBox("Vol", bar)
        self.volume_check.setToolTip("Show the volume rendering")
        self.volume_check.setObjectName("volumeCheck")
        self.volume_check.setChecked(True)
        self.volume_check.toggled.connect(self.set_volume_visible)
        bar.addWidget(self.volume_check)

        self.surfaces_check = QCheckBox("Surf", bar)
        self.surfaces_check.setToolTip("Show the label surfaces")
        self.surfaces_check.setObjectName("surfacesCheck")
        self.surfaces_check.setChecked(True)
        self.surfaces_check.toggled.connect(self.set_surfaces_visible)
        bar.addWidget(self.surfaces_check)

        self.labels_button = QToolButton(bar)
        self.labels_button.setObjectName("labelsButton")
        self.labels_button.setText("Labels")
        self.labels_button.setToolTip("Show or hide the surface of each label")
        self.labels_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.labels_menu = QMenu(self.labels_button)
        self.labels_menu.aboutToShow.connect(self._fill_labels_menu)
        self.labels_button.setMenu(self.labels_menu)
        bar.addWidget(self.labels_button)

        self.surface_opacity_slider = QSlider(Qt.Orientation.Horizontal, bar)
        self.surface_opacity_slider.setObjectName("surfaceOpacitySlider")
        self.surface_opacity_slider.setRange(10, 100)
        self.surface_opacity_slider.setValue(100)
        self.surface_opacity_slider.setMinimumWidth(30)
        self.surface_opacity_slider.setMaximumWidth(70)
        self.surface_opacity_slider.setToolTip("Surface opacity")
        self.surface_opacity_slider.valueChanged.connect(lambda value: self.set_surface_opacity(value / 100.0))
        bar.addWidget(self.surface_opacity_slider)

        self.planes_check = QCheckBox("Planes", bar)
        self.planes_check.setObjectName("planesCheck")
        self.planes_check.setChecked(True)
        self.planes_check.setToolTip("Show the three slice planes through the cursor")
        self.planes_check.toggled.connect(self.set_slice_planes_visible)
        bar.addWidget(self.planes_check)
        self.toolbar = self.preset_combo.parentWidget()
        self.scene_toolbar = scene_bar
        layout.addWidget(self.toolbar)
        layout.addWidget(scene_bar)

    def _build_scene(self, layout: QVBoxLayout) -> None:
        self.vtk_widget = QVTKRenderWindowInteractor(self)
        self.vtk_widget.setObjectName("volumeViewRender")
        self.vtk_widget.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        layout.addWidget(self.vtk_widget, 1)
        self.render_window = self.vtk_widget.GetRenderWindow()
        self.renderer = vtkRenderer()
        self.renderer.GradientBackgroundOn()
        self.renderer.SetBackground(0.02, 0.02, 0.04)
        self.renderer.SetBackground2(0.18, 0.2, 0.26)
        self.render_window.AddRenderer(self.renderer)
        self.interactor = self.render_window.GetInteractor()
        self.interactor.SetInteractorStyle(vtkInteractorStyleTrackballCamera())
        self.interactor.SetDesiredUpdateRate(INTERACTIVE_UPDATE_RATE)
        # In fast mode the style's own frame on mouse release is a quick one too; the
        # view renders the refined frame itself once the mouse rests.
        self.interactor.SetStillUpdateRate(INTERACTIVE_UPDATE_RATE)

        # Volume
        self.volume_mapper = vtkSmartVolumeMapper()
        self.volume_mapper.SetRequestedRenderModeToDefault()
        self.volume_property = vtkVolumeProperty()
        self.volume = vtkVolume()
        self.volume.SetMapper(self.volume_mapper)
        self.volume.SetProperty(self.volume_property)
        self.volume.VisibilityOff()
        self.renderer.AddVolume(self.volume)
        # A decimated copy of large volumes, drawn while the camera moves and for the
        # first frame (its texture uploads in a fraction of the time).
        self.preview_mapper = vtkSmartVolumeMapper()
        self.preview_volume = vtkVolume()
        self.preview_volume.SetMapper(self.preview_mapper)
        self.preview_volume.SetProperty(self.volume_property)
        self.preview_volume.PickableOff()
        self.preview_volume.VisibilityOff()
        self.renderer.AddVolume(self.preview_volume)
        self._has_preview = False
        self._showing_preview = False

        # Cursor sphere
        self.cursor_source = vtkSphereSource()
        self.cursor_source.SetThetaResolution(20)
        self.cursor_source.SetPhiResolution(12)
        self.cursor_actor = self._line_actor(CURSOR_COLOR)
        self.cursor_actor.GetMapper().SetInputConnection(self.cursor_source.GetOutputPort())
        self.cursor_actor.GetProperty().SetRepresentationToSurface()

        # Slice plane outlines and detection boxes
        self.plane_actors = [self._line_actor(color, width=1.5) for color in PLANE_COLORS]
        self.boxes_actor = self._line_actor((1.0, 1.0, 1.0), width=2.0)
        self.boxes_actor.GetMapper().SetScalarModeToUseCellData()
        self.selected_box_actor = self._line_actor(STATUS_COLORS[DetectionStatus.PROPOSED], width=4.0)  # recoloured per box
        for actor in [self.cursor_actor, *self.plane_actors, self.boxes_actor, self.selected_box_actor]:
            actor.VisibilityOff()
            self.renderer.AddActor(actor)

        self.notice = vtkTextActor()
        self.notice.GetTextProperty().SetFontSize(14)
        self.notice.GetTextProperty().SetColor(0.9, 0.9, 0.9)
        self.notice.SetDisplayPosition(10, 10)
        self.renderer.AddViewProp(self.notice)

        self.picker = vtkCellPicker()
        self.picker.SetTolerance(0.0005)
        self.picker.PickFromListOff()

        self.interactor.AddObserver("LeftButtonPressEvent", self._on_left_press, 1.0)
        self.interactor.AddObserver("LeftButtonReleaseEvent", self._on_left_release, 1.0)
        self.interactor.AddObserver("RightButtonPressEvent", self._on_other_press, 1.0)
        self.interactor.AddObserver("MiddleButtonPressEvent", self._on_other_press, 1.0)
        style = self.interactor.GetInteractorStyle()
        style.AddObserver("StartInteractionEvent", self._on_start_interaction)
        style.AddObserver("EndInteractionEvent", self._on_end_interaction)

        self.vtk_widget.Initialize()
        # Qt paints (expose, resize) go through request_render, so they get a quick frame
        # too instead of a full-quality one on the UI thread.
        self.vtk_widget.installEventFilter(self)
        self.orientation_marker = self._make_orientation_marker()
        self.set_camera_preset("A", render=False)
        # Children are not closed with their window: release VTK when this widget dies.
        state = self.__dict__
        self.destroyed.connect(lambda *_args: _release_vtk(state))

    @staticmethod
    def _line_actor(color: tuple[float, float, float], width: float = 1.0) -> vtkActor:
        mapper = vtkPolyDataMapper()
        actor = vtkActor()
        actor.SetMapper(mapper)
        actor.GetProperty().SetColor(*color)
        actor.GetProperty().SetLineWidth(width)
        actor.GetProperty().LightingOff()
        actor.PickableOff()
        return actor

    def _make_orientation_marker(self) -> vtkOrientationMarkerWidget:
        cube = vtkAnnotatedCubeActor()
        # LPS: +x is the patient's left, +y posterior, +z superior.
        cube.SetXPlusFaceText("L")
        cube.SetXMinusFaceText("R")
        cube.SetYPlusFaceText("P")
        cube.SetYMinusFaceText("A")
        cube.SetZPlusFaceText("S")
        cube.SetZMinusFaceText("I")
        cube.SetFaceTextScale(0.6)
        cube.SetZFaceTextRotation(90)  # upright in the S and I camera presets (anterior up)
        cube.GetCubeProperty().SetColor(0.35, 0.4, 0.5)
        cube.GetTextEdgesProperty().SetColor(0.8, 0.8, 0.8)
        for prop in (cube.GetXPlusFaceProperty(), cube.GetXMinusFaceProperty()):
            prop.SetColor(0.95, 0.45, 0.45)
        for prop in (cube.GetYPlusFaceProperty(), cube.GetYMinusFaceProperty()):
            prop.SetColor(0.45, 0.9, 0.45)
        for prop in (cube.GetZPlusFaceProperty(), cube.GetZMinusFaceProperty()):
            prop.SetColor(0.5, 0.6, 1.0)
        marker = vtkOrientationMarkerWidget()
        marker.SetOrientationMarker(cube)
        marker.SetInteractor(self.interactor)
        marker.SetViewport(0.0, 0.0, 0.16, 0.16)
        marker.SetEnabled(1)
        marker.InteractiveOff()
        return marker

    # ================================================================== public state
    @property
    def available(self) -> bool:
        """False when OpenGL is missing and the pane only shows a message (or after ``shutdown``)."""
        return self._status.available and not self._shut_down

    @property
    def unavailable_reason(self) -> str:
        return self._status.reason

    @property
    def message_text(self) -> str:
        """The text shown instead of the 3D scene (empty when the scene is shown)."""
        return self._message.text() if self._message is not None else ""

    @property
    def document(self) -> Document | None:
        return self._document

    @property
    def preset_name(self) -> str:
        return self._preset_name if self.available else ""

    @property
    def surfaces_busy(self) -> bool:
        """True while label surfaces wait for, or are in, a background rebuild."""
        if not self.available:
            return False
        return (
            self._surface_timer.isActive()
            or bool(self._jobs.jobs)
            or any(layer.running or layer.pending is not None for layer in self._layers.values())
        )

    # ================================================================== document
    def set_document(self, document: Document | None) -> None:
        """Show ``document`` (or nothing); follows its signals until replaced."""
        if document is self._document:
            return
        if self._document is not None:
            self._disconnect(self._document)
        self._document = document
        if not self.available:
            return
        self._clear_surfaces()
        if document is None:
            self.volume.VisibilityOff()
            self.volume_mapper.RemoveAllInputs()
            self.preview_volume.VisibilityOff()
            self.preview_mapper.RemoveAllInputs()
            self._has_preview = False
            for actor in [self.cursor_actor, *self.plane_actors, self.boxes_actor, self.selected_box_actor]:
                actor.VisibilityOff()
            self.notice.SetInput("")
            self.request_render()
            return
        self._document_links = SignalLinks.follow(document, self)
        self._load_volume(document)
        self._update_cursor(document.cursor)
        self._update_boxes()
        self._on_label_maps_changed()
        self.set_camera_preset("A", render=False)
        self.request_render()

    def _disconnect(self, document: Document) -> None:
        if self._document_links is not None:
            self._document_links.disconnect()
            self._document_links = None

    def _load_volume(self, document: Document) -> None:
        volume = document.volume
        geometry = volume.geometry
        # Relative presets (MR default, MIP) span the data's own range, not a DICOM display
        # window: a CT's mediastinum window would saturate most of a MIP.
        self._window = percentile_window(volume.array)
        if geometry.is_2d:
            self.volume.VisibilityOff()
            self.volume_mapper.RemoveAllInputs()
            self.preview_volume.VisibilityOff()
            self.preview_mapper.RemoveAllInputs()
            self._has_preview = False
            self.notice.SetInput("2D image: no volume rendering (surfaces and boxes are shown)")
        else:
            image = image_data_from_array(volume.array, geometry.spacing)
            self.volume_mapper.SetInputData(image)
            self.volume.SetUserMatrix(direction_origin_matrix(geometry))
            self._load_preview(volume.array, geometry)
            self.notice.SetInput("")
        self._default_preset = default_preset_name(volume.modality, volume.metadata.units)
        # A new volume starts from its modality's preset (a session's display model is reset already).
        self.display.set_volume_display(preset=None, opacity_shift=0.0, shading=None)
        self._on_volume_display_changed(self.display.volume)
        spacing = np.asarray(geometry.spacing)
        low, high = geometry.world_bounds()
        radius = max(0.006 * float(np.linalg.norm(high - low)), 1.0 * float(spacing.min()))
        self.cursor_source.SetRadius(radius)

    def _load_preview(self, array: np.ndarray, geometry) -> None:
        """Give large volumes a decimated twin (every f-th voxel) at the same world position."""
        factor = int(np.ceil(np.cbrt(array.size / PREVIEW_MAX_VOXELS)))
        self._has_preview = factor > 1
        if not self._has_preview:
            self.preview_mapper.RemoveAllInputs()
            self._show_volume(preview=False)
            return
        decimated = np.ascontiguousarray(array[::factor, ::factor, ::factor])
        spacing = tuple(s * factor for s in geometry.spacing)
        self.preview_mapper.SetInputData(image_data_from_array(decimated, spacing))
        self.preview_volume.SetUserMatrix(direction_origin_matrix(geometry))
        self._show_volume(preview=True)

    def _show_volume(self, preview: bool) -> None:
        """Draw the decimated twin (when there is one) or the full volume."""
        has_volume = self._document is not None and not self._document.geometry.is_2d
        visible = has_volume and self.display.volume.volume_visible
        self._showing_preview = preview and self._has_preview
        self.preview_volume.SetVisibility(visible and self._showing_preview)
        self.volume.SetVisibility(visible and not self._showing_preview)

    # ================================================================== volume settings
    def _apply_volume_settings(self) -> None:
        preset = PRESETS[self._preset_name]
        apply_preset(self.volume_property, self.volume_mapper, preset, self._window, self._opacity_shift, self._shading)
        self._apply_quality()

    def _apply_quality(self) -> None:
        fast = self._quality == QUALITY_FAST
        for mapper in (self.volume_mapper, self.preview_mapper):
            mapper.SetAutoAdjustSampleDistances(fast)
            mapper.SetInteractiveAdjustSampleDistances(fast)
        if not fast and self._document is not None:
            self.volume_mapper.SetSampleDistance(float(min(self._document.geometry.spacing)) * 0.5)
        self.interactor.SetStillUpdateRate(INTERACTIVE_UPDATE_RATE if fast else BEST_UPDATE_RATE)
        if not fast:
            self._show_volume(preview=False)

    # The display model holds the options; these setters change it and the view follows its event.
    @property
    def _preset_name(self) -> str:
        return self.display.volume.preset or self._default_preset

    @property
    def _opacity_shift(self) -> float:
        return self.display.volume.opacity_shift

    @property
    def _shading(self) -> bool:
        shading = self.display.volume.shading
        return PRESETS[self._preset_name].shade if shading is None else shading

    @property
    def _quality(self) -> str:
        return self.display.volume.quality

    def _on_volume_display_changed(self, _volume: VolumeDisplay) -> None:
        if not self.available or self._shut_down:
            return
        options = self.display.volume
        for widget, setter in (
            (self.preset_combo, lambda: self.preset_combo.setCurrentText(self._preset_name)),
            (self.shift_slider, lambda: self.shift_slider.setValue(int(round(options.opacity_shift * 100)))),
            (self.shading_check, lambda: self.shading_check.setChecked(self._shading)),
            (self.quality_combo, lambda: self.quality_combo.setCurrentIndex(self.quality_combo.findData(options.quality))),
            (self.volume_check, lambda: self.volume_check.setChecked(options.volume_visible)),
            (self.surfaces_check, lambda: self.surfaces_check.setChecked(options.surfaces_visible)),
            (self.surface_opacity_slider, lambda: self.surface_opacity_slider.setValue(int(round(options.surface_opacity * 100)))),
        ):
            widget.blockSignals(True)
            setter()
            widget.blockSignals(False)
        self._apply_volume_settings()
        self._show_volume(preview=getattr(self, "_showing_preview", False))
        self._restyle_all()

    def _on_label_display_changed(self, _label_map: LabelMap) -> None:
        if self.available and not self._shut_down:
            self._restyle_all()

    def set_preset(self, name: str) -> None:
        """Switch the volume rendering preset (a name from ``PRESETS``); shading becomes the preset's."""
        if not self.available:
            return
        if name not in PRESETS:
            raise ValueError(f"unknown 3D preset {name!r}; known: {', '.join(PRESETS)}")
        self.display.set_volume_display(preset=name, shading=None)

    def set_opacity_shift(self, shift: float) -> None:
        """Move the opacity and colour ramps: -1..1 of the preset's shift range."""
        if self.available:
            self.display.set_volume_display(opacity_shift=shift)

    def set_shading(self, on: bool) -> None:
        """Gradient lighting of the volume on or off."""
        if self.available:
            self.display.set_volume_display(shading=bool(on))

    def set_quality(self, quality: str) -> None:
        """``"fast"``: coarser sampling and no shading while the camera moves; ``"best"``: always full quality."""
        if not self.available:
            return
        if quality not in (QUALITY_FAST, QUALITY_BEST):
            raise ValueError(f"quality must be '{QUALITY_FAST}' or '{QUALITY_BEST}', got {quality!r}")
        self.display.set_volume_display(quality=quality)

    def set_volume_visible(self, visible: bool) -> None:
        if self.available:
            self.display.set_volume_display(volume_visible=visible)

    # ================================================================== camera
    def set_camera_preset(self, letter: str, render: bool = True) -> None:
        """Look at the volume from the patient's A, P, L, R, S or I side (LPS world)."""
        if not self.available:
            return
        letter = letter.upper()
        if letter not in CAMERA_PRESETS:
            raise ValueError(f"camera preset must be one of {''.join(CAMERA_PRESETS)}, got {letter!r}")
        side, up = CAMERA_PRESETS[letter]
        bounds = self._scene_bounds()
        centre = np.array([(bounds[0] + bounds[1]) / 2, (bounds[2] + bounds[3]) / 2, (bounds[4] + bounds[5]) / 2])
        camera = self.renderer.GetActiveCamera()
        camera.SetFocalPoint(*centre)
        camera.SetPosition(*(centre + np.asarray(side)))
        camera.SetViewUp(*up)
        camera.SetViewAngle(30.0)
        self.renderer.ResetCamera(bounds)
        self.renderer.ResetCameraClippingRange()
        if render:
            self.request_render()

    def reset_camera(self) -> None:
        """Anterior view of the whole volume."""
        self.set_camera_preset("A")

    def _scene_bounds(self) -> tuple[float, ...]:
        if self._document is None:
            return (-50.0, 50.0, -50.0, 50.0, -50.0, 50.0)
        geometry = self._document.geometry
        half_voxel = geometry.index_to_world_matrix[:3, :3] @ np.full(3, 0.5)
        low, high = geometry.world_bounds()
        low = low - np.abs(half_voxel)
        high = high + np.abs(half_voxel)
        return (low[0], high[0], low[1], high[1], low[2], high[2])

    # ================================================================== rendering
    def request_render(self) -> None:
        """Render soon; many requests in one event-loop pass give one frame.

        Fast mode shows a quick frame (the decimated volume, coarse rays) at once and
        the refined frame when nothing changed for ``REFINE_DELAY_MS``, so cursor moves
        and edits never wait for a full-quality frame. Best mode always renders fully.
        """
        if not self.available:
            return
        if not self._render_pending:
            self._render_pending = True
            self._render_timer.start()

    def _render_now(self) -> None:
        self._render_pending = False
        if self._shut_down or not self.isVisible() or self._interacting:
            return
        if self._quality == QUALITY_FAST:
            self._show_volume(preview=True)
            self.render_window.SetDesiredUpdateRate(INTERACTIVE_UPDATE_RATE)
            self.render_window.Render()
            self._refine_timer.start()
        else:
            self._show_volume(preview=False)
            self.render_window.SetDesiredUpdateRate(BEST_UPDATE_RATE)
            self.render_window.Render()

    def _render_full_quality(self) -> None:
        if self._shut_down or self._interacting or not self.isVisible():
            return
        self._show_volume(preview=False)
        fast = self._quality == QUALITY_FAST
        self.render_window.SetDesiredUpdateRate(FAST_STILL_UPDATE_RATE if fast else BEST_UPDATE_RATE)
        self.render_window.Render()

    def render(self) -> None:  # type: ignore[override]
        """Render the full volume at full quality now, whatever the mode (tests, screenshots)."""
        if not self.available:
            return
        self._render_pending = False
        self._render_timer.stop()
        self._refine_timer.stop()
        self._show_volume(preview=False)
        self.render_window.SetDesiredUpdateRate(BEST_UPDATE_RATE)
        self.render_window.Render()

    def render_to_array(self) -> np.ndarray:
        """The rendered image as an (height, width, 3) uint8 array, top row first."""
        if not self.available:
            raise RuntimeError("the 3D view is unavailable: " + self.unavailable_reason)
        self.render()
        grabber = vtkWindowToImageFilter()
        grabber.SetInput(self.render_window)
        grabber.SetInputBufferTypeToRGB()
        grabber.ReadFrontBufferOff()
        grabber.ShouldRerenderOff()
        grabber.Update()
        image = grabber.GetOutput()
        width, height, _ = image.GetDimensions()
        pixels = vtk_to_numpy(image.GetPointData().GetScalars()).reshape(height, width, -1)
        return np.ascontiguousarray(pixels[::-1, :, :3])

    def screenshot(self) -> QImage:
        """The whole pane (toolbar and rendering) as an image."""
        image = self.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
        if not self.available:
            return image
        pixels = self.render_to_array()
        rendered = QImage(pixels.data, pixels.shape[1], pixels.shape[0], 3 * pixels.shape[1], QImage.Format.Format_RGB888)
        target = self.vtk_widget.geometry()
        painter = QPainter(image)
        painter.drawImage(target, rendered.copy())
        painter.end()
        return image

    # ================================================================== interaction
    def _on_start_interaction(self, _style, _event) -> None:
        self._interacting = True
        self._refine_timer.stop()
        if self._quality == QUALITY_FAST:
            self._show_volume(preview=True)
            self.volume_property.SetShade(False)

    def _on_end_interaction(self, _style, _event) -> None:
        self._interacting = False
        if self._quality == QUALITY_FAST:
            self.volume_property.SetShade(self._shading)
            self._refine_timer.start()
        # The camera style grabs the mouse on press, so a left click ends here rather
        # than in the interactor's release event.
        self._on_left_release(self.interactor, _event)

    def _on_left_press(self, interactor, _event) -> None:
        self._press_position = interactor.GetEventPosition()

    def _on_other_press(self, _interactor, _event) -> None:
        self._press_position = None

    def _on_left_release(self, interactor, _event) -> None:
        """A left press and release within 3 pixels is a click: pick there."""
        start, self._press_position = self._press_position, None
        if start is None:
            return
        end = interactor.GetEventPosition()
        if abs(end[0] - start[0]) <= 3 and abs(end[1] - start[1]) <= 3:
            self.pick_display_point(end[0], end[1])

    def pick_display_point(self, x: int, y: int) -> np.ndarray | None:
        """Pick the surface or visible volume under display pixel (x, y) (origin bottom-left).

        On a hit, the document cursor moves there (every view follows) and the world
        position (LPS mm) is returned; otherwise None.
        """
        if not self.available or self._document is None:
            return None
        # Pick on the full-resolution volume even while its quick preview is drawn.
        showing_preview = self._showing_preview
        if showing_preview:
            self._show_volume(preview=False)
        try:
            hit = self.picker.Pick(x, y, 0.0, self.renderer) and self.picker.GetProp3D() is not None
        finally:
            if showing_preview:
                self._show_volume(preview=True)
        if not hit:
            return None
        world = np.asarray(self.picker.GetPickPosition(), dtype=float)
        self._document.set_cursor(world)
        self.picked.emit(world.copy())
        return world

    def world_to_display(self, world) -> tuple[float, float]:
        """Display pixel (x, y), origin bottom-left, where a world point is drawn."""
        self.renderer.SetWorldPoint(*world, 1.0)
        self.renderer.WorldToDisplay()
        x, y, _ = self.renderer.GetDisplayPoint()
        return x, y

    # ================================================================== cursor, planes, boxes
    def _on_cursor_moved(self, world) -> None:
        self._update_cursor(world)
        self.request_render()

    def _update_cursor(self, world) -> None:
        if self._document is None:
            return
        world = np.asarray(world, dtype=float)
        self.cursor_source.SetCenter(*world)
        self.cursor_actor.VisibilityOn()
        index = self._document.geometry.world_to_index(world)
        for actor, outline in zip(self.plane_actors, slice_plane_outlines(self._document.geometry, index)):
            actor.GetMapper().SetInputData(outline)
            actor.SetVisibility(self.planes_check.isChecked() and not self._document.geometry.is_2d)

    def set_slice_planes_visible(self, visible: bool) -> None:
        """Show or hide the outlines of the three slice planes through the cursor."""
        if not self.available:
            return
        if self.planes_check.isChecked() != bool(visible):
            self.planes_check.setChecked(bool(visible))
            return
        for actor in self.plane_actors:
            actor.SetVisibility(bool(visible) and self._document is not None and not self._document.geometry.is_2d)
        self.request_render()

    def _on_detections_changed(self) -> None:
        self._update_boxes()
        self.request_render()

    def _on_selection_changed(self, _detection) -> None:
        self._update_boxes()
        self.request_render()

    def _update_boxes(self) -> None:
        document = self._document
        if document is None:
            return
        geometry = document.geometry
        others: list[Detection] = [d for d in document.detections if d is not document.selected_detection]
        polydata = boxes_polydata(geometry, [d.index_bounds(geometry) for d in others])
        colors = np.repeat(
            np.array([STATUS_COLORS.get(d.status, (1.0, 1.0, 1.0)) for d in others], dtype=float).reshape(-1, 3) * 255,
            12,
            axis=0,
        ).astype(np.uint8)
        color_array = numpy_to_vtk(colors, deep=True)
        color_array.SetName("status colors")
        polydata.GetCellData().SetScalars(color_array)
        self.boxes_actor.GetMapper().SetInputData(polydata)
        self.boxes_actor.SetVisibility(bool(others))
        selected = document.selected_detection
        if selected is not None and selected in document.detections:
            # As in the slice views: the selected box keeps its status colour, drawn thicker.
            self.selected_box_actor.GetProperty().SetColor(STATUS_COLORS.get(selected.status, (1.0, 1.0, 1.0)))
            self.selected_box_actor.GetMapper().SetInputData(boxes_polydata(geometry, [selected.index_bounds(geometry)]))
            self.selected_box_actor.VisibilityOn()
        else:
            self.selected_box_actor.VisibilityOff()

    # ================================================================== label surfaces
    def _on_label_maps_changed(self) -> None:
        document = self._document
        if document is None:
            return
        current = {id(label_map): label_map for label_map in document.label_maps}
        for key in [key for key, layer in self._layers.items() if current.get(key) is not layer.label_map]:
            self._remove_layer(key)
        for key, label_map in current.items():
            if key not in self._layers:
                layer = _SurfaceLayer(label_map)
                layer.add_pending(None)
                self._layers[key] = layer
        self._schedule_surfaces()

    def _on_labels_changed(self, label_map: LabelMap, region: Region | None) -> None:
        layer = self._layers.get(id(label_map))
        if layer is None or layer.label_map is not label_map:
            return
        layer.add_pending(region)
        self._schedule_surfaces()

    def _on_label_table_changed(self, label_map: LabelMap) -> None:
        layer = self._layers.get(id(label_map))
        if layer is None:
            return
        for value, actor in layer.actors.items():
            self._style_surface(layer, value, actor)
        self.request_render()

    def _schedule_surfaces(self) -> None:
        self._surface_timer.start()

    def _start_surface_jobs(self) -> None:
        document = self._document
        if document is None:
            return
        geometry = document.geometry
        for key, layer in self._layers.items():
            if layer.running or layer.pending is None:
                continue
            regions = None if layer.pending == "all" else list(layer.pending)
            layer.pending = None
            layer.running = True
            known = dict(layer.boxes)
            label_map = layer.label_map

            def job(progress, cancel, label_map=label_map, regions=regions, known=known):
                return extract_label_surfaces(label_map.array, geometry, regions, known, progress, cancel)

            handle = self._jobs.submit(job, f"3D surfaces of {label_map.name}")
            handle.finished.connect(lambda result, key=key, layer=layer: self._apply_surfaces(key, layer, result))
            handle.failed.connect(lambda error, key=key, layer=layer: self._surface_job_failed(key, layer, error))
            handle.cancelled.connect(lambda layer=layer: setattr(layer, "running", False))
            layer.job = handle

    def _apply_surfaces(self, key: int, layer: _SurfaceLayer, result: dict[int, LabelSurface]) -> None:
        layer.running = False
        if self._layers.get(key) is not layer:
            return
        for value, surface in result.items():
            actor = layer.actors.get(value)
            if surface.polydata is None or surface.polydata.GetNumberOfPoints() == 0:
                if actor is not None:
                    self.renderer.RemoveActor(actor)
                    del layer.actors[value]
                layer.boxes.pop(value, None)
                continue
            if actor is None:
                actor = vtkActor()
                mapper = vtkPolyDataMapper()
                mapper.ScalarVisibilityOff()
                actor.SetMapper(mapper)
                self.renderer.AddActor(actor)
                layer.actors[value] = actor
            actor.GetMapper().SetInputData(surface.polydata)
            layer.boxes[value] = surface.voxel_box
            self._style_surface(layer, value, actor)
        if layer.pending is not None:
            self._schedule_surfaces()
        self.request_render()
        self.surfaces_updated.emit()

    def _surface_job_failed(self, key: int, layer: _SurfaceLayer, error: BaseException) -> None:
        layer.running = False
        log.error("building label surfaces failed", exc_info=error)
        if self._layers.get(key) is layer and layer.pending is not None:
            self._schedule_surfaces()

    def _style_surface(self, layer: _SurfaceLayer, value: int, actor: vtkActor) -> None:
        info = layer.label_map.table.entries.get(value)
        color = info.color if info is not None else default_color(value)
        table_visible = info.visible if info is not None else True
        prop = actor.GetProperty()
        prop.SetColor(*(c / 255.0 for c in color))
        prop.SetOpacity(self.display.volume.surface_opacity)
        prop.SetSpecular(0.2)
        prop.SetSpecularPower(20.0)
        # Hidden in the Layers panel, surfaces off, or this label's surface hidden: not drawn.
        actor.SetVisibility(table_visible and self.display.surface_visible(layer.label_map, value))

    def _remove_layer(self, key: int) -> None:
        layer = self._layers.pop(key)
        if layer.job is not None:
            layer.job.cancel()
        for actor in layer.actors.values():
            self.renderer.RemoveActor(actor)

    def _clear_surfaces(self) -> None:
        for key in list(self._layers):
            self._remove_layer(key)
        self._surface_timer.stop()

    def set_surfaces_visible(self, visible: bool) -> None:
        """Show or hide every label surface."""
        if self.available:
            self.display.set_volume_display(surfaces_visible=visible)

    def set_surface_opacity(self, opacity: float) -> None:
        """Opacity (0.1..1) of every label surface."""
        if self.available:
            self.display.set_volume_display(surface_opacity=opacity)

    def set_label_surface_visible(self, label_map: LabelMap, value: int, visible: bool) -> None:
        """Show or hide one label's surface in 3D only (the slice views and the label table are untouched)."""
        if self.available:
            self.display.set_surface_visible(label_map, value, visible)

    def is_label_surface_visible(self, label_map: LabelMap, value: int) -> bool:
        """Whether the surface of ``value`` exists and is drawn."""
        layer = self._layers.get(id(label_map)) if self.available else None
        actor = layer.actors.get(int(value)) if layer is not None else None
        return bool(actor is not None and actor.GetVisibility())

    def surface_polydata(self, label_map: LabelMap, value: int):
        """The current mesh of one label (world LPS mm), or None when it has none (yet)."""
        layer = self._layers.get(id(label_map)) if self.available else None
        actor = layer.actors.get(int(value)) if layer is not None else None
        return actor.GetMapper().GetInput() if actor is not None else None

    def _restyle_all(self) -> None:
        for layer in self._layers.values():
            for value, actor in layer.actors.items():
                self._style_surface(layer, value, actor)
        self.request_render()

    def _fill_labels_menu(self) -> None:
        self.labels_menu.clear()
        for layer in self._layers.values():
            label_map = layer.label_map
            for value in sorted(layer.actors):
                info = label_map.table.entries.get(value)
                name = info.name if info is not None else f"Label {value}"
                action = QAction(f"{name}  ({label_map.name})", self.labels_menu)
                action.setCheckable(True)
                action.setChecked(value not in self.display.label_display(label_map).hidden_surfaces)
                action.toggled.connect(
                    lambda checked, label_map=label_map, value=value: self.set_label_surface_visible(
                        label_map, value, checked
                    )
                )
                self.labels_menu.addAction(action)
        if self.labels_menu.isEmpty():
            none = self.labels_menu.addAction("No label surfaces")
            none.setEnabled(False)

    # ================================================================== lifetime
    def eventFilter(self, watched, event) -> bool:  # noqa: N802 - Qt override
        if event.type() == QEvent.Type.Paint and watched is getattr(self, "vtk_widget", None):
            if self.available:
                self.request_render()
            return True
        return super().eventFilter(watched, event)

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        if self.available:
            self.request_render()

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop background work and release the OpenGL window (call before the app exits).

        Afterwards the view is inert: every method is a no-op.
        """
        if not self.available:
            return
        self._surface_timer.stop()
        self._refine_timer.stop()
        self._render_timer.stop()
        self._jobs.shutdown(5000)
        if self._document is not None:
            self._disconnect(self._document)
        self.display.volume_display_changed.disconnect(self._on_volume_display_changed)
        self.display.label_display_changed.disconnect(self._on_label_display_changed)
        self._clear_surfaces()
        try:
            self.vtk_widget.removeEventFilter(self)
            self.vtk_widget._Timer.stop()
            self.vtk_widget.hide()
        except RuntimeError:  # the Qt side is already gone
            pass
        _release_vtk(self.__dict__)
        self._shut_down = True


class _ReleasedVTKObject:
    """Stands in for a freed VTK object: every method exists and does nothing."""

    def __getattr__(self, _name: str):
        return lambda *_args, **_kwargs: None


def _release_vtk(state: dict) -> None:
    """Finalize the render window and drop every reference to it held in a view's ``__dict__``.

    VTK opened its own X display connection; freeing the render window closes it now,
    while the X server is surely alive, not at interpreter exit, where Xlib ends the
    process if the server has gone (as after pytest-xvfb stops Xvfb). Works on the
    plain dict so it can run from the ``destroyed`` signal, when the widget is gone.
    """
    if state.get("_vtk_released"):
        return
    state["_vtk_released"] = True
    marker = state.get("orientation_marker")
    if marker is not None:
        marker.SetEnabled(0)
        marker.SetInteractor(None)
    render_window = state.get("render_window")
    if render_window is not None:
        render_window.Finalize()
    vtk_widget = state.get("vtk_widget")
    if vtk_widget is not None:
        # The Qt widget may still get paint/close events: give it inert stand-ins.
        vtk_widget.__dict__["_RenderWindow"] = _ReleasedVTKObject()
        vtk_widget.__dict__["_Iren"] = _ReleasedVTKObject()
    for name in ("orientation_marker", "interactor", "render_window", "renderer", "picker"):
        state[name] = None

_SIDE_NAMES = {"A": "anterior", "P": "posterior", "L": "left", "R": "right", "S": "superior", "I": "inferior"}

__all__ = ["CAMERA_PRESETS", "QUALITY_BEST", "QUALITY_FAST", "VolumeView"]
