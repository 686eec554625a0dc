"""The built-in demo studies, generated offline on first use and cached.

``ensure_demo_data()`` returns ``DemoData`` with the paths of:

* a synthetic chest CT (seed ``DEMO_SEED``) as a real DICOM series, about 512 x 512 x
  200 voxels, with its ground-truth label map (NIfTI) and nodule boxes (JSON, world mm
  and voxel indices);
* a real MR brain: the MNI ICBM152 2009 T1 template shipped in ``resources/demo``
  (see its README for the licence), as an MR DICOM series and as the original NIfTI;
* a PA chest radiograph computed from the phantom, as a DX DICOM file and a PNG.

Everything is written under ``cache_dir()/demo-<DEMO_VERSION>/``: first into a
temporary folder, then renamed into place with a stamp file written last, so a crash
leaves either a complete folder or none. A folder without a valid stamp is rebuilt.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medviewer import __version__
from medviewer.core.errors import MedviewerError
from medviewer.core.jobs import NO_PROGRESS, CancelToken, ProgressCallback, scaled_progress
from medviewer.core.paths import cache_dir, resources_dir
from medviewer.core.volume import VolumeMetadata, percentile_window
from medviewer.io.atomic import atomic_path, atomic_write_text

#: Bump when the generated content changes: old caches are then ignored.
DEMO_VERSION = "1"
#: Seed of the demo chest phantom (not used by the demo models' training scripts).
DEMO_SEED = 20264
DEMO_CT_SHAPE = (200, 512, 512)
DEMO_CT_SPACING = (0.7, 0.7, 1.5)
STAMP_NAME = "demo-complete.json"

RESOURCES_DEMO_DIR = resources_dir() / "demo"
MNI_TEMPLATE_NAME = "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"


class DemoDataError(MedviewerError):
    """The demo data could not be generated (missing resource, unwritable cache...)."""


@dataclass(frozen=True)
class DemoData:
    """Paths of the demo studies, and a one-line description of each (``descriptions``)."""

    folder: Path
    ct_dicom_dir: Path
    ct_labels_path: Path
    ct_boxes_path: Path
    mr_dicom_dir: Path
    mr_nifti_path: Path
    radiograph_path: Path
    radiograph_png_path: Path
    descriptions: dict[str, str] = field(default_factory=dict)

    @property
    def mr_path(self) -> Path:
        """The MR study to open (its DICOM series, so the modality is known)."""
        return self.mr_dicom_dir

    def items(self) -> list[tuple[str, Path, str]]:
        """(name, path, description) of every demo file or folder."""
        return [(name, getattr(self, name), text) for name, text in self.descriptions.items()]


_LAYOUT = {
    "ct_dicom_dir": "chest-ct-dicom",
    "ct_labels_path": "chest-ct-labels.nii.gz",
    "ct_boxes_path": "chest-ct-nodules.json",
    "mr_dicom_dir": "brain-mr-dicom",
    "mr_nifti_path": MNI_TEMPLATE_NAME,
    "radiograph_path": "chest-xray-dx.dcm",
    "radiograph_png_path": "chest-xray.png",
}


def _descriptions(shape: tuple[int, int, int], spacing: tuple[float, float, float]) -> dict[str, str]:
    size = f"{shape[2]}x{shape[1]}x{shape[0]}"
    mm = "x".join(f"{s:g}" for s in spacing)
    return {
        "ct_dicom_dir": f"Synthetic chest CT phantom (seed {DEMO_SEED}), DICOM series, {size} voxels of {mm} mm",
        "ct_labels_path": "Ground-truth labels of the chest CT (1 right lung, 2 left lung, 3 nodule, 4 heart, "
        "5 aorta, 6 airway, 7 spine, 8 ribs/sternum), NIfTI",
        "ct_boxes_path": "Ground-truth nodule boxes of the chest CT, JSON in world LPS mm and voxel indices",
        "mr_dicom_dir": "Real MR brain: MNI ICBM152 2009a T1 template (average of 152 adults), MR DICOM series",
        "mr_nifti_path": "The same MNI ICBM152 2009a T1 template as the original NIfTI file",
        "radiograph_path": "PA chest radiograph computed from the phantom CT, DX DICOM",
        "radiograph_png_path": "The same chest radiograph as an 8-bit PNG",
    }


def demo_folder() -> Path:
    """Where ``ensure_demo_data`` keeps the demo studies by default."""
    return cache_dir() / f"demo-{DEMO_VERSION}"


def _demo_data(folder: Path, shape, spacing) -> DemoData:
    paths = {name: folder / relative for name, relative in _LAYOUT.items()}
    return DemoData(folder=folder, descriptions=_descriptions(shape, spacing), **paths)


def _valid_stamp(folder: Path, shape, spacing) -> bool:
    stamp = folder / STAMP_NAME
    try:
        data = json.loads(stamp.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if data.get("version") != DEMO_VERSION or data.get("seed") != DEMO_SEED:
        return False
    if data.get("ct_shape") != list(shape) or data.get("ct_spacing") != list(spacing):
        return False
    return all((folder / relative).exists() for relative in data.get("files", [])) and bool(data.get("files"))


def ensure_demo_data(
    progress: ProgressCallback = NO_PROGRESS,
    cancel: CancelToken | None = None,
    *,
    folder: str | os.PathLike[str] | None = None,
    ct_shape: tuple[int, int, int] = DEMO_CT_SHAPE,
    ct_spacing: tuple[float, float, float] = DEMO_CT_SPACING,
) -> DemoData:
    """Return the demo studies, generating them the first time (offline, about 10-20 s).

    Parameters
    ----------
    progress, cancel:
        Job hooks; cancelling leaves the cache as it was.
    folder:
        Where to keep the data (default ``demo_folder()``).
    ct_shape, ct_spacing:
        Grid of the chest CT, (z, y, x) voxels and (x, y, z) mm; smaller grids are for tests.
    """
    ct_shape = tuple(int(s) for s in ct_shape)
    ct_spacing = tuple(float(s) for s in ct_spacing)
    target = Path(folder) if folder is not None else demo_folder()
    if _valid_stamp(target, ct_shape, ct_spacing):
        progress(1.0, "demo data ready")
        return _demo_data(target, ct_shape, ct_spacing)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent))
    except OSError as error:
        raise DemoDataError(f"cannot create the demo data folder: {error}", target) from error
    try:
        files = _generate(staging, ct_shape, ct_spacing, progress, cancel)
        stamp = {
            "version": DEMO_VERSION,
            "seed": DEMO_SEED,
            "ct_shape": list(ct_shape),
            "ct_spacing": list(ct_spacing),
            "medviewer": __version__,
            "files": files,
        }
        atomic_write_text(staging / STAMP_NAME, json.dumps(stamp, indent=2))
        _publish(staging, target, ct_shape, ct_spacing)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    progress(1.0, "demo data ready")
    return _demo_data(target, ct_shape, ct_spacing)


def _publish(staging: Path, target: Path, shape, spacing) -> None:
    """Move the finished staging folder to ``target``, replacing an incomplete one."""
    old = None
    if target.exists():
        if _valid_stamp(target, shape, spacing):  # another process finished first: keep its copy
            shutil.rmtree(staging, ignore_errors=True)
            return
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
        os.replace(target, old / target.name)
    try:
        os.replace(staging, target)
    except OSError:
        if _valid_stamp(target, shape, spacing):
            shutil.rmtree(staging, ignore_errors=True)
        else:
            raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------------------- generation
def _generate(folder: Path, shape, spacing, progress: ProgressCallback, cancel: CancelToken | None) -> list[str]:
    from medviewer.demo.phantoms import LABELS, ChestPhantomParams, generate_chest_ct
    from medviewer.io.dicom_write import write_dicom_series
    from medviewer.io.writers import write_label_map

    params = ChestPhantomParams.from_seed(DEMO_SEED)
    progress(0.0, "generating the chest CT phantom")
    case = generate_chest_ct(params, shape, spacing, scaled_progress(progress, 0.0, 0.35), cancel)
    write_dicom_series(
        case.volume,
        folder / _LAYOUT["ct_dicom_dir"],
        uid_seed=f"medviewer-demo-{DEMO_VERSION}-chest-ct",
        progress=scaled_progress(progress, 0.35, 0.55),
        cancel=cancel,
    )
    progress(0.55, "writing the ground truth")
    write_label_map(case.labels, folder / _LAYOUT["ct_labels_path"])
    boxes = {
        "description": "Ground-truth nodules of the medviewer demo chest CT phantom",
        "phantom": {"seed": DEMO_SEED, "variant": params.variant, "generator": "medviewer.demo.phantoms"},
        "geometry": case.volume.geometry.to_dict(),
        "labels": {str(value): name for value, name in LABELS.items()},
        "nodules": case.nodule_records(),
    }
    atomic_write_text(folder / _LAYOUT["ct_boxes_path"], json.dumps(boxes, indent=2))
    if cancel is not None:
        cancel.raise_if_cancelled()

    progress(0.62, "computing the chest radiograph")
    _write_radiograph(case, params, folder)
    if cancel is not None:
        cancel.raise_if_cancelled()

    progress(0.7, "writing the MR brain")
    _write_mr(folder, scaled_progress(progress, 0.7, 0.98), cancel)
    return sorted(_LAYOUT.values())


def _write_radiograph(case, params, folder: Path) -> None:
    import SimpleITK as sitk

    from medviewer.demo.phantom_radiograph import chest_radiograph
    from medviewer.io.dicom_write import write_dicom_radiograph

    back_of_patient = params.body_offset[1] + params.body_half_depth_back + 3.0  # leave out the table
    image, pixel_spacing = chest_radiograph(case.volume, max_world_y=back_of_patient)
    write_dicom_radiograph(
        image,
        folder / _LAYOUT["radiograph_path"],
        pixel_spacing,
        modality="DX",
        photometric="MONOCHROME2",
        patient_name="PHANTOM^CHEST",
        patient_id=case.volume.metadata.patient_id,
        study_uid=case.volume.metadata.study_uid,
        uid_seed=f"medviewer-demo-{DEMO_VERSION}-chest-xray",
        study_description=case.volume.metadata.study_description,
        series_description="PA chest radiograph (computed from the phantom CT)",
        series_number=2,
    )
    png = sitk.GetImageFromArray((image >> 4).astype(np.uint8))
    png.SetSpacing((pixel_spacing[1], pixel_spacing[0]))
    with atomic_path(folder / _LAYOUT["radiograph_png_path"]) as tmp:
        sitk.WriteImage(png, str(tmp))


def load_mni_template():
    """The MNI ICBM152 2009a T1 template shipped in resources/demo, as an MR ``Volume``."""
    import SimpleITK as sitk

    from medviewer.imaging.sitk_bridge import sitk_to_volume

    path = RESOURCES_DEMO_DIR / MNI_TEMPLATE_NAME
    if not path.exists():
        raise DemoDataError("the MNI brain template is missing from the installation", path)
    volume = sitk_to_volume(sitk.ReadImage(str(path)), modality="MR")
    from pydicom.uid import generate_uid

    tag = f"medviewer-demo-{DEMO_VERSION}-mni-icbm152"
    volume.metadata = VolumeMetadata(
        patient_id="MNI-ICBM152-2009A",
        patient_name="MNI^ICBM152^2009A",
        study_uid=str(generate_uid(entropy_srcs=[tag, "study"])),
        study_description="MNI ICBM152 2009a nonlinear symmetric brain template",
        series_uid=str(generate_uid(entropy_srcs=[tag, "series"])),
        series_description="T1 average of 152 adults (MNI ICBM152 2009a)",
        series_number=1,
        windows=[percentile_window(volume.array, 1.0, 99.5)],
        source_path=str(path),
        source_format="NIfTI",
        extra={"body_part": "HEAD", "licence": "see resources/demo/README.md"},
    )
    volume.name = volume.metadata.series_description
    return volume, path


def _write_mr(folder: Path, progress: ProgressCallback, cancel: CancelToken | None) -> None:
    from medviewer.io.dicom_write import write_dicom_series

    volume, source = load_mni_template()
    write_dicom_series(volume, folder / _LAYOUT["mr_dicom_dir"], progress=progress, cancel=cancel)
    with atomic_path(folder / _LAYOUT["mr_nifti_path"]) as tmp:
        shutil.copyfile(source, tmp)


__all__ = ["DEMO_SEED", "DEMO_VERSION", "DemoData", "DemoDataError", "demo_folder", "ensure_demo_data", "load_mni_template"]
