"""DICOM series and radiograph writer: exact geometry and voxels through SimpleITK and pydicom."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.data import get_testdata_file
from scipy.spatial.transform import Rotation

from medviewer.core import Geometry, Volume, VolumeMetadata
from medviewer.core.errors import MedviewerError, OperationCancelled
from medviewer.core.jobs import CancelToken
from medviewer.io.dicom_write import (
    CT_IMAGE_STORAGE,
    DX_PRESENTATION_STORAGE,
    MR_IMAGE_STORAGE,
    DicomWriteError,
    write_dicom_radiograph,
    write_dicom_series,
)


def read_series(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def assert_same_geometry(image: sitk.Image, geometry: Geometry, tolerance: float = 1e-4) -> None:
    assert image.GetSize() == geometry.size
    assert np.allclose(image.GetSpacing(), geometry.spacing, rtol=0, atol=tolerance)
    assert np.allclose(image.GetOrigin(), geometry.origin, rtol=0, atol=tolerance)
    assert np.allclose(image.GetDirection(), geometry.direction, rtol=0, atol=tolerance)


def ct_volume(geometry: Geometry, seed: int = 0) -> Volume:
    rng = np.random.default_rng(seed)
    array = rng.integers(-1024, 3071, size=geometry.shape, dtype=np.int16)
    metadata = VolumeMetadata(
        patient_name="TEST^WRITER", patient_id="W1", series_description="writer test",
        windows=[(40.0, 400.0), (-600.0, 1500.0)], units="HU",
    )
    return Volume(array, geometry, "CT", metadata)


def test_axial_ct_series_round_trips_exactly(tmp_path):
    geometry = Geometry((24, 20, 9), (0.68359375, 0.68359375, 1.25), (-175.158203125, -180.3, -412.75))
    volume = ct_volume(geometry)
    files = write_dicom_series(volume, tmp_path / "ct", series_number=7, uid_seed="test-axial")
    assert [f.name for f in files] == [f"CT{k:05d}.dcm" for k in range(1, 10)]
    image = read_series(tmp_path / "ct")
    assert_same_geometry(image, geometry)
    assert np.array_equal(sitk.GetArrayFromImage(image), volume.array)
    first = pydicom.dcmread(files[0])
    assert first.SOPClassUID == CT_IMAGE_STORAGE and first.file_meta.MediaStorageSOPClassUID == CT_IMAGE_STORAGE
    assert first.Modality == "CT" and first.SeriesNumber == 7
    assert first.PatientName == "TEST^WRITER" and first.SeriesDescription == "writer test"
    assert [float(v) for v in first.WindowCenter] == [40.0, -600.0]
    assert [float(v) for v in first.WindowWidth] == [400.0, 1500.0]
    assert float(first.RescaleSlope) == 1.0 and float(first.RescaleIntercept) == 0.0
    assert float(first.SliceThickness) == 1.25 == float(first.SpacingBetweenSlices)
    assert [float(v) for v in first.PixelSpacing] == [0.68359375, 0.68359375]
    last = pydicom.dcmread(files[-1])
    assert np.allclose([float(v) for v in last.ImagePositionPatient], geometry.index_to_world([0, 0, 8]))
    uids = {pydicom.dcmread(f).SOPInstanceUID for f in files}
    assert len(uids) == 9 and all(pydicom.uid.UID(u).is_valid for u in uids)


def test_oblique_anisotropic_series_round_trips(tmp_path):
    rotation = Rotation.from_euler("xyz", [17.0, -11.0, 33.0], degrees=True).as_matrix()
    geometry = Geometry.from_matrix((21, 17, 11), (0.83, 0.91, 2.7), (-101.27, 33.31, -412.72), rotation)
    assert geometry.is_oblique()
    volume = ct_volume(geometry, seed=3)
    write_dicom_series(volume, tmp_path / "oblique", uid_seed="test-oblique")
    image = read_series(tmp_path / "oblique")
    assert_same_geometry(image, geometry)
    assert np.array_equal(sitk.GetArrayFromImage(image), volume.array)


def test_mr_series_with_flipped_axes_keeps_unsigned_values_without_rescale(tmp_path):
    ras = np.diag([-1.0, -1.0, 1.0])  # as the MNI template: i runs to patient right, j anterior
    geometry = Geometry.from_matrix((16, 14, 6), (1.0, 1.0, 1.0), (98.0, 134.0, -72.0), ras)
    array = np.random.default_rng(1).integers(0, 65535, size=geometry.shape, dtype=np.uint16)
    volume = Volume(array, geometry, "MR", VolumeMetadata(series_description="T1"))
    files = write_dicom_series(volume, tmp_path / "mr", uid_seed="test-mr")
    image = read_series(tmp_path / "mr")
    assert_same_geometry(image, geometry)
    assert image.GetPixelID() == sitk.sitkUInt16
    assert np.array_equal(sitk.GetArrayFromImage(image), array)
    ds = pydicom.dcmread(files[0])
    assert ds.SOPClassUID == MR_IMAGE_STORAGE and ds.Modality == "MR" and ds.PixelRepresentation == 0
    assert "RescaleSlope" not in ds and ds.MRAcquisitionType == "3D"


def test_float_volume_is_stored_with_rescale_within_half_a_step(tmp_path):
    geometry = Geometry((8, 8, 3), (1.5, 1.5, 3.0))
    array = np.random.default_rng(2).uniform(-3.5, 1200.25, size=geometry.shape).astype(np.float32)
    files = write_dicom_series(Volume(array, geometry, "CT"), tmp_path / "float", uid_seed="float")
    back = sitk.GetArrayFromImage(read_series(tmp_path / "float"))
    slope = float(pydicom.dcmread(files[0]).RescaleSlope)
    assert slope < 0.02
    assert np.max(np.abs(back - array)) <= slope / 2 + 1e-3


def test_same_uid_seed_writes_identical_files(tmp_path):
    volume = ct_volume(Geometry((6, 5, 3), (1.0, 1.0, 2.0)))
    first = write_dicom_series(volume, tmp_path / "a", uid_seed="same")
    second = write_dicom_series(volume, tmp_path / "b", uid_seed="same")
    assert [f.read_bytes() for f in first] == [f.read_bytes() for f in second]
    other = write_dicom_series(volume, tmp_path / "c", uid_seed="other")
    assert pydicom.dcmread(other[0]).SeriesInstanceUID != pydicom.dcmread(first[0]).SeriesInstanceUID


def test_folder_is_written_completely_or_not_at_all(tmp_path):
    volume = ct_volume(Geometry((6, 5, 4), (1.0, 1.0, 2.0)))
    target = tmp_path / "series"
    write_dicom_series(volume, target, uid_seed="one")
    with pytest.raises(DicomWriteError, match="not empty") as caught:
        write_dicom_series(volume, target, uid_seed="two")
    assert isinstance(caught.value, MedviewerError) and str(target) in str(caught.value)
    replaced = ct_volume(volume.geometry, seed=9)
    write_dicom_series(replaced, target, uid_seed="two", overwrite=True)
    assert np.array_equal(sitk.GetArrayFromImage(read_series(target)), replaced.array)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["series"]  # no staging or old folders left

    token = CancelToken()
    token.cancel()
    with pytest.raises(OperationCancelled):
        write_dicom_series(volume, tmp_path / "cancelled", cancel=token)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["series"]


def test_left_handed_grid_keeps_every_voxel_at_its_world_position(tmp_path):
    flipped = np.diag([1.0, 1.0, -1.0])  # k runs towards the feet: det -1
    geometry = Geometry.from_matrix((7, 6, 5), (1.0, 1.2, 2.5), (10.0, -20.0, 50.0), flipped)
    volume = ct_volume(geometry, seed=4)
    write_dicom_series(volume, tmp_path / "lh", uid_seed="lh")
    image = read_series(tmp_path / "lh")
    back = sitk.GetArrayFromImage(image)
    for k in range(5):
        world = geometry.index_to_world([0, 0, k])
        index = image.TransformPhysicalPointToIndex(tuple(world))
        assert np.array_equal(back[index[2]], volume.array[k])


def test_real_ct_slice_from_pydicom_round_trips(tmp_path):
    source = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    hu = source.pixel_array.astype(np.int16) * int(source.RescaleSlope) + int(source.RescaleIntercept)
    row, column = np.array(source.ImageOrientationPatient[:3], float), np.array(source.ImageOrientationPatient[3:], float)
    direction = np.column_stack([row, column, np.cross(row, column)])
    spacing = (float(source.PixelSpacing[1]), float(source.PixelSpacing[0]), float(source.SliceThickness))
    geometry = Geometry.from_matrix((source.Columns, source.Rows, 1), spacing, [float(v) for v in source.ImagePositionPatient], direction)
    (written,) = write_dicom_series(Volume(hu.astype(np.int16), geometry, "CT"), tmp_path / "small", uid_seed="small")
    back = pydicom.dcmread(written)
    assert np.array_equal(back.pixel_array, hu)
    assert [float(v) for v in back.ImagePositionPatient] == pytest.approx([float(v) for v in source.ImagePositionPatient], abs=1e-6)
    assert [float(v) for v in back.ImageOrientationPatient] == pytest.approx([float(v) for v in source.ImageOrientationPatient], abs=1e-9)
    assert [float(v) for v in back.PixelSpacing] == pytest.approx([float(v) for v in source.PixelSpacing])


def test_radiograph_has_imager_pixel_spacing_and_exact_pixels(tmp_path):
    image = np.random.default_rng(5).integers(0, 4096, size=(40, 30), dtype=np.uint16)
    path = write_dicom_radiograph(image, tmp_path / "cxr.dcm", (0.2, 0.25), window=(2048, 4096), uid_seed="cxr")
    ds = pydicom.dcmread(path)
    assert ds.Modality == "DX" and ds.SOPClassUID == DX_PRESENTATION_STORAGE
    assert [float(v) for v in ds.ImagerPixelSpacing] == [0.2, 0.25]
    assert [float(v) for v in ds.PixelSpacing] == [0.2, 0.25]
    assert ds.PhotometricInterpretation == "MONOCHROME2" and ds.PresentationLUTShape == "IDENTITY"
    assert float(ds.WindowCenter) == 2048 and float(ds.WindowWidth) == 4096
    assert list(ds.PatientOrientation) == ["L", "F"]
    assert np.array_equal(ds.pixel_array, image)
    read = sitk.ReadImage(str(path))
    assert read.GetSize()[:2] == (30, 40)
    assert np.array_equal(sitk.GetArrayFromImage(read).reshape(40, 30), image)

    inverted = write_dicom_radiograph(image, tmp_path / "cr.dcm", (0.1, 0.1), modality="CR", photometric="MONOCHROME1")
    ds = pydicom.dcmread(inverted)
    assert ds.Modality == "CR" and ds.PhotometricInterpretation == "MONOCHROME1"


def test_radiograph_rejects_bad_input(tmp_path):
    with pytest.raises(DicomWriteError, match="2D"):
        write_dicom_radiograph(np.zeros((2, 3, 4), np.uint16), tmp_path / "x.dcm", (1.0, 1.0))
    with pytest.raises(DicomWriteError, match="unsigned"):
        write_dicom_radiograph(np.full((3, 3), -5, np.int16), tmp_path / "x.dcm", (1.0, 1.0))
    with pytest.raises(DicomWriteError, match="modality"):
        write_dicom_radiograph(np.zeros((3, 3), np.uint16), tmp_path / "x.dcm", (1.0, 1.0), modality="CT")
    assert not (tmp_path / "x.dcm").exists()
