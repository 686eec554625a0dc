"""Demo data: generated once offline, complete or absent, consistent ground truth, cached afterwards."""

from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from scipy import ndimage

from medviewer.core.errors import OperationCancelled
from medviewer.core.jobs import CancelToken
from medviewer.services import demo
from medviewer.services.demo import STAMP_NAME, DemoData, ensure_demo_data

SMALL = {"ct_shape": (40, 96, 96), "ct_spacing": (3.75, 3.75, 7.5)}


def read_series(folder) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory) -> DemoData:
    return ensure_demo_data(folder=tmp_path_factory.mktemp("demo") / "demo-small", **SMALL)


def test_every_demo_file_exists_with_a_description(small_demo):
    names = [name for name, _, _ in small_demo.items()]
    assert names == [
        "ct_dicom_dir", "ct_labels_path", "ct_boxes_path", "mr_dicom_dir",
        "mr_nifti_path", "radiograph_path", "radiograph_png_path",
    ]
    for _, path, description in small_demo.items():
        assert path.exists() and path.is_relative_to(small_demo.folder)
        assert description and "\n" not in description
    assert small_demo.mr_path == small_demo.mr_dicom_dir
    stamp = json.loads((small_demo.folder / STAMP_NAME).read_text())
    assert stamp["seed"] == demo.DEMO_SEED and stamp["ct_shape"] == [40, 96, 96]


def test_ct_series_labels_and_boxes_agree(small_demo):
    ct = read_series(small_demo.ct_dicom_dir)
    labels = sitk.ReadImage(str(small_demo.ct_labels_path))
    assert ct.GetSize() == labels.GetSize() == (96, 96, 40)
    assert np.allclose(ct.GetOrigin(), labels.GetOrigin(), atol=1e-4)
    assert np.allclose(ct.GetSpacing(), labels.GetSpacing(), atol=1e-4)
    assert np.allclose(ct.GetDirection(), labels.GetDirection(), atol=1e-6)
    hu = sitk.GetArrayFromImage(ct)
    label_array = sitk.GetArrayFromImage(labels)
    assert np.median(hu[label_array == 1]) < -700 and np.median(hu[label_array == 2]) < -700
    header = pydicom.dcmread(sorted(small_demo.ct_dicom_dir.iterdir())[0])
    assert header.Modality == "CT" and header.PatientName == "PHANTOM^CHEST"

    boxes = json.loads(small_demo.ct_boxes_path.read_text())
    components, count = ndimage.label(label_array == 3)
    assert len(boxes["nodules"]) == count >= 3
    assert boxes["geometry"]["size"] == [96, 96, 40]
    for nodule in boxes["nodules"]:
        lo, hi = np.array(nodule["voxel_min"]), np.array(nodule["voxel_max"])
        inside = components[lo[2] : hi[2] + 1, lo[1] : hi[1] + 1, lo[0] : hi[0] + 1]
        ids = set(np.unique(inside)) - {0}
        assert len(ids) == 1
        assert np.count_nonzero(inside) == np.count_nonzero(components == ids.pop())
        centre_index = np.array(ct.TransformPhysicalPointToContinuousIndex(nodule["center_mm"]))
        assert np.allclose(centre_index, nodule["center_index"], atol=1e-6)
        assert nodule["label"] == "nodule" and nodule["status"] == "accepted" and 4 <= nodule["diameter_mm"] <= 30


def test_mr_is_the_shipped_template(small_demo):
    mr = read_series(small_demo.mr_dicom_dir)
    template = sitk.ReadImage(str(demo.RESOURCES_DEMO_DIR / demo.MNI_TEMPLATE_NAME))
    assert mr.GetSize() == template.GetSize()
    assert np.allclose(mr.GetOrigin(), template.GetOrigin(), atol=1e-4)
    assert np.allclose(mr.GetDirection(), template.GetDirection(), atol=1e-6)
    assert np.array_equal(sitk.GetArrayFromImage(mr), sitk.GetArrayFromImage(template))
    assert pydicom.dcmread(sorted(small_demo.mr_dicom_dir.iterdir())[0]).Modality == "MR"
    assert small_demo.mr_nifti_path.read_bytes() == (demo.RESOURCES_DEMO_DIR / demo.MNI_TEMPLATE_NAME).read_bytes()


def test_radiograph_is_a_chest_projection(small_demo):
    ds = pydicom.dcmread(small_demo.radiograph_path)
    assert ds.Modality == "DX" and ds.ViewPosition == "PA"
    spacing = [float(v) for v in ds.ImagerPixelSpacing]
    assert spacing == [3.75, 3.75]
    image = ds.pixel_array.astype(float)
    # 300 mm of body height at 3.75 mm per pixel, 96 columns.
    assert image.shape == (80, 96)
    # Lungs are dark, the spine between them bright: compare lung and midline columns at mid-height.
    row = image[30:50]
    assert row[:, 46:50].mean() > row[:, 25:35].mean() + 300
    assert row[:, 46:50].mean() > row[:, 61:71].mean() + 300
    png = sitk.GetArrayFromImage(sitk.ReadImage(str(small_demo.radiograph_png_path)))
    assert png.shape[-2:] == (80, 96) and png.dtype == np.uint8


def test_second_call_regenerates_nothing(small_demo, monkeypatch):
    stamp_time = (small_demo.folder / STAMP_NAME).stat().st_mtime_ns

    def must_not_run(*args, **kwargs):
        raise AssertionError("demo data regenerated")

    monkeypatch.setattr(demo, "_generate", must_not_run)
    again = ensure_demo_data(folder=small_demo.folder, **SMALL)
    assert again == small_demo
    assert (small_demo.folder / STAMP_NAME).stat().st_mtime_ns == stamp_time


def test_folder_without_stamp_is_regenerated(tmp_path):
    folder = tmp_path / "demo"
    first = ensure_demo_data(folder=folder, **SMALL)
    before = {p.name: p.read_bytes() for p in sorted(first.ct_dicom_dir.iterdir())}
    (folder / STAMP_NAME).unlink()
    (folder / "half-written.tmp").write_text("junk")
    second = ensure_demo_data(folder=folder, **SMALL)
    assert (folder / STAMP_NAME).exists() and not (folder / "half-written.tmp").exists()
    # Regenerated from the same seed: byte-identical DICOM files.
    assert {p.name: p.read_bytes() for p in sorted(second.ct_dicom_dir.iterdir())} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]


def test_cancel_leaves_nothing_behind(tmp_path):
    token = CancelToken()
    seen = []

    def progress(fraction, message=""):
        seen.append(fraction)
        if fraction > 0.2:
            token.cancel()

    with pytest.raises(OperationCancelled):
        ensure_demo_data(progress, token, folder=tmp_path / "demo", **SMALL)
    assert list(tmp_path.iterdir()) == []
    assert seen and max(seen) < 1.0


def test_default_folder_is_in_the_user_cache(medviewer_home):
    assert demo.demo_folder() == medviewer_home / "cache" / f"demo-{demo.DEMO_VERSION}"
