"""Volume-rendering presets: transfer functions for CT (in HU) and for other data.

CT presets are written in Hounsfield units. Presets marked ``relative`` are written
on a 0..1 scale that is stretched over the data's own range (its 0.5-99.5
percentiles), so they fit MR and any other unit.
"""

from __future__ import annotations

from dataclasses import dataclass

from vtkmodules.vtkCommonDataModel import vtkPiecewiseFunction
from vtkmodules.vtkRenderingCore import vtkColorTransferFunction, vtkVolumeProperty
from vtkmodules.vtkRenderingVolume import vtkVolumeMapper

BLEND_COMPOSITE = "composite"
BLEND_MIP = "mip"


@dataclass(frozen=True)
class VolumePreset:
    """Colour and opacity ramps plus lighting for one kind of rendering.

    Attributes
    ----------
    name:
        Shown in the preset box.
    opacity:
        ``(value, opacity)`` points, opacity 0..1.
    colors:
        ``(value, red, green, blue)`` points, colours 0..1.
    relative:
        Values are fractions of the display window instead of data units.
    blend:
        ``"composite"`` (ray compositing) or ``"mip"`` (maximum intensity projection).
    shade:
        Gradient lighting on by default.
    shift_range:
        Data units (or window fractions for relative presets) that the opacity-shift
        control moves the ramps at its ends.
    """

    name: str
    opacity: tuple[tuple[float, float], ...]
    colors: tuple[tuple[float, float, float, float], ...]
    relative: bool = False
    blend: str = BLEND_COMPOSITE
    shade: bool = True
    ambient: float = 0.2
    diffuse: float = 0.9
    specular: float = 0.3
    specular_power: float = 15.0
    shift_range: float = 500.0


CT_BONE = VolumePreset(
    "CT bone",
    opacity=((-1024, 0.0), (140, 0.0), (260, 0.3), (600, 0.8), (3071, 0.9)),
    colors=((-1024, 0.0, 0.0, 0.0), (140, 0.55, 0.25, 0.15), (260, 0.88, 0.75, 0.6), (600, 1.0, 0.96, 0.88), (3071, 1.0, 1.0, 1.0)),
)
CT_SOFT_TISSUE = VolumePreset(
    "CT soft tissue",
    opacity=((-1024, 0.0), (-250, 0.0), (-80, 0.03), (40, 0.25), (200, 0.45), (600, 0.8), (3071, 0.85)),
    colors=((-1024, 0.0, 0.0, 0.0), (-250, 0.5, 0.2, 0.12), (-80, 0.75, 0.45, 0.32), (40, 0.86, 0.52, 0.42), (200, 0.95, 0.85, 0.75), (600, 1.0, 1.0, 0.95)),
)
CT_LUNG = VolumePreset(
    "CT lung",
    opacity=((-1024, 0.0), (-970, 0.0), (-900, 0.12), (-750, 0.35), (-500, 0.0), (3071, 0.0)),
    colors=((-1024, 0.3, 0.4, 0.9), (-900, 0.55, 0.7, 1.0), (-750, 0.95, 0.75, 0.75), (-500, 1.0, 0.9, 0.85)),
    specular=0.1,
)
CT_ANGIOGRAPHY = VolumePreset(
    "CT angiography",
    opacity=((-1024, 0.0), (120, 0.0), (200, 0.35), (400, 0.7), (3071, 0.85)),
    colors=((-1024, 0.0, 0.0, 0.0), (120, 0.55, 0.05, 0.05), (220, 0.9, 0.15, 0.1), (400, 1.0, 0.75, 0.65), (800, 1.0, 1.0, 0.95)),
    specular=0.5,
)
MR_DEFAULT = VolumePreset(
    "MR default",
    opacity=((0.0, 0.0), (0.2, 0.0), (0.55, 0.25), (1.0, 0.75)),
    colors=((0.0, 0.0, 0.0, 0.0), (0.3, 0.6, 0.45, 0.35), (0.6, 0.9, 0.8, 0.7), (1.0, 1.0, 1.0, 1.0)),
    relative=True,
    shift_range=0.5,
)
MIP = VolumePreset(
    "MIP",
    opacity=((0.0, 0.0), (1.0, 1.0)),
    colors=((0.0, 0.0, 0.0, 0.0), (1.0, 1.0, 1.0, 1.0)),
    relative=True,
    blend=BLEND_MIP,
    shade=False,
    shift_range=0.5,
)

#: Presets in the order the preset box lists them.
PRESETS: dict[str, VolumePreset] = {p.name: p for p in (CT_BONE, CT_SOFT_TISSUE, CT_LUNG, CT_ANGIOGRAPHY, MR_DEFAULT, MIP)}


def default_preset_name(modality: str, units: str = "") -> str:
    """The preset a freshly opened volume gets: CT bone for CT, MR default otherwise."""
    return CT_BONE.name if modality.upper() == "CT" or units.upper() == "HU" else MR_DEFAULT.name


def preset_values(preset: VolumePreset, window: tuple[float, float], shift: float) -> tuple[list, list]:
    """Opacity and colour points in data units.

    Parameters
    ----------
    window:
        ``(centre, width)`` of the data's range; relative presets map 0..1 onto it.
    shift:
        -1..1, the opacity-shift control; moves every point by ``shift * shift_range``.
    """
    centre, width = window
    low = centre - width / 2.0
    scale = width if preset.relative else 1.0
    offset = low if preset.relative else 0.0
    delta = float(shift) * preset.shift_range * scale

    def place(value: float) -> float:
        return offset + value * scale + delta

    opacity = [(place(v), o) for v, o in preset.opacity]
    colors = [(place(v), r, g, b) for v, r, g, b in preset.colors]
    return opacity, colors


def apply_preset(
    volume_property: vtkVolumeProperty,
    mapper: vtkVolumeMapper,
    preset: VolumePreset,
    window: tuple[float, float],
    shift: float = 0.0,
    shade: bool | None = None,
) -> None:
    """Put ``preset``'s transfer functions, lighting and blend mode on a VTK volume."""
    opacity_points, color_points = preset_values(preset, window, shift)
    opacity = vtkPiecewiseFunction()
    for value, alpha in opacity_points:
        opacity.AddPoint(value, alpha)
    colors = vtkColorTransferFunction()
    for value, red, green, blue in color_points:
        colors.AddRGBPoint(value, red, green, blue)
    volume_property.SetScalarOpacity(opacity)
    volume_property.SetColor(colors)
    volume_property.SetInterpolationTypeToLinear()
    volume_property.SetShade(preset.shade if shade is None else bool(shade))
    volume_property.SetAmbient(preset.ambient)
    volume_property.SetDiffuse(preset.diffuse)
    volume_property.SetSpecular(preset.specular)
    volume_property.SetSpecularPower(preset.specular_power)
    if preset.blend == BLEND_MIP:
        mapper.SetBlendModeToMaximumIntensity()
    else:
        mapper.SetBlendModeToComposite()
