"""DICOM SEG export round trip over a small CT series built from pydicom's CT_small.dcm."""

from __future__ import annotations

import copy

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from medviewer.core import Geometry, LabelMap, LabelTable
from medviewer.core.errors import GeometryMismatchError, MedviewerError
from medviewer.io.dicom_seg import export_dicom_seg, series_files

SLICES = 5
SLICE_SPACING = 2.5


def write_ct_series(folder):
    """Five slices of CT_small stacked along the slice normal, written in shuffled order; (uid, geometry)."""
    template = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    series_uid = generate_uid()
    orientation = np.asarray(template.ImageOrientationPatient, float)
    normal = np.cross(orientation[:3], orientation[3:])
    origin = np.asarray(template.ImagePositionPatient, float)
    folder.mkdir(parents=True)
    for n in (3, 0, 4, 1, 2):
        ds = copy.deepcopy(template)
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.InstanceNumber = n + 1
        ds.ImagePositionPatient = [float(v) for v in origin + n * SLICE_SPACING * normal]
        ds.save_as(folder / f"slice{n}.dcm")
    row_spacing, col_spacing = (float(v) for v in template.PixelSpacing)
    direction = np.stack([orientation[:3], orientation[3:], normal], axis=1)
    geometry = Geometry.from_matrix((template.Columns, template.Rows, SLICES), (col_spacing, row_spacing, SLICE_SPACING),
                                    origin, direction)
    return series_uid, geometry


@pytest.fixture
def ct_series(tmp_path):
    folder = tmp_path / "series"
    series_uid, geometry = write_ct_series(folder)
    return folder, series_uid, geometry


def _labels(geometry: Geometry) -> LabelMap:
    array = np.zeros(geometry.shape, np.uint8)
    array[1, 10:20, 30:50] = 4  # 200 voxels of "liver" on slice 1
    array[3, 60:64, 60:65] = 9  # 20 voxels of "lesion" on slice 3
    array[3, 10:12, 30:31] = 4  # 2 more liver voxels
    return LabelMap(array, geometry, LabelTable.from_names({4: "liver", 9: "lesion"}))


def test_export_round_trip_by_source_instance(ct_series, tmp_path):
    folder, series_uid, geometry = ct_series
    label_map = _labels(geometry)
    files = series_files([folder], series_uid)
    assert len(files) == SLICES
    out = export_dicom_seg(label_map, files, tmp_path / "seg.dcm", algorithm=("liver-net", "1.0"))
    seg = hd.seg.segread(out)
    assert seg.SeriesDescription == "medviewer segmentation"
    assert [seg.get_segment_description(n).segment_label for n in (1, 2)] == ["liver", "lesion"]
    assert seg.get_segment_description(1).algorithm_type == hd.seg.SegmentAlgorithmTypeValues.SEMIAUTOMATIC
    sources = sorted((pydicom.dcmread(f) for f in files), key=lambda ds: ds.InstanceNumber)
    for k, ds in enumerate(sources):
        expected = np.zeros(label_map.array[k].shape, np.uint8)
        expected[label_map.array[k] == 4] = 1
        expected[label_map.array[k] == 9] = 2
        if not expected.any():
            continue  # empty frames are omitted
        pixels = seg.get_pixels_by_source_instance([ds.SOPInstanceUID], combine_segments=True)
        np.testing.assert_array_equal(pixels[0], expected)
    # the SEG references the same patient/study as its source (it goes back to the archive)
    assert seg.StudyInstanceUID == sources[0].StudyInstanceUID
    assert seg.FrameOfReferenceUID == sources[0].FrameOfReferenceUID


def test_manual_labels_and_errors(ct_series, tmp_path):
    folder, series_uid, geometry = ct_series
    files = series_files([folder])
    out = export_dicom_seg(_labels(geometry), files, tmp_path / "manual.dcm")
    seg = hd.seg.segread(out)
    assert seg.get_segment_description(1).algorithm_type == hd.seg.SegmentAlgorithmTypeValues.MANUAL
    with pytest.raises(MedviewerError, match="empty"):
        export_dicom_seg(LabelMap.empty(geometry), files, tmp_path / "x.dcm")
    resampled = geometry.replace(spacing=(geometry.spacing[0], geometry.spacing[1], 1.0))
    with pytest.raises(MedviewerError, match="resampled"):
        export_dicom_seg(_labels(resampled), files, tmp_path / "x.dcm")
    shifted = geometry.replace(origin=tuple(np.asarray(geometry.origin) + [0.0, 0.0, 0.5]))
    with pytest.raises(MedviewerError, match="does not lie on the label map's grid"):
        export_dicom_seg(_labels(shifted), files, tmp_path / "x.dcm")
    assert not (tmp_path / "x.dcm").exists()


def test_import_places_frames_on_the_loaded_series(ct_series, tmp_path):
    """Export, then open the SEG over the series as the DICOM loader reads it: voxel-exact, names and colours kept."""
    from medviewer.io import read_label_map, read_volume

    folder, series_uid, geometry = ct_series
    label_map = _labels(geometry)
    out = export_dicom_seg(label_map, series_files([folder], series_uid), tmp_path / "seg.dcm")
    volume = read_volume(folder)
    assert volume.geometry.is_close(geometry)
    opened = read_label_map(out, volume.geometry)
    expected = np.select([label_map.array == 4, label_map.array == 9], [1, 2], 0).astype(np.uint8)
    np.testing.assert_array_equal(opened.array, expected)  # frames only on slices 1 and 3: the rest padded
    assert opened.geometry == volume.geometry and opened.source == "DICOM SEG"
    assert [opened.table[n].name for n in (1, 2)] == ["liver", "lesion"]
    for number, value in ((1, 4), (2, 9)):  # CIELab round trip: within a step or two of the original RGB
        assert max(abs(a - b) for a, b in zip(opened.table[number].color, label_map.table[value].color)) <= 2
    # an image grid that stores the rows bottom-up (as a NIfTI conversion may): frames land flipped, exactly
    direction = volume.geometry.direction_matrix * [1, -1, 1]
    far_row = volume.geometry.index_to_world([0, volume.geometry.size[1] - 1, 0])
    flipped = Geometry.from_matrix(volume.geometry.size, volume.geometry.spacing, far_row, direction)
    np.testing.assert_array_equal(read_label_map(out, flipped).array, expected[:, ::-1, :])
    # ... and one whose x and y index axes are swapped: frames land transposed
    g = volume.geometry
    swapped = Geometry.from_matrix((g.size[1], g.size[0], g.size[2]), (g.spacing[1], g.spacing[0], g.spacing[2]), g.origin,
                                   g.direction_matrix[:, [1, 0, 2]])
    np.testing.assert_array_equal(read_label_map(out, swapped).array, expected.transpose(0, 2, 1))


def test_import_of_fractional_overlapping_segments_and_a_foreign_grid(ct_series, tmp_path):
    from medviewer.io import read_label_map
    from medviewer.io.dicom_seg import read_dicom_seg

    folder, series_uid, geometry = ct_series
    sources = sorted((pydicom.dcmread(f) for f in series_files([folder])), key=lambda ds: ds.InstanceNumber)
    fractions = np.zeros((SLICES, geometry.size[1], geometry.size[0], 3), np.float32)
    fractions[2, 5:15, 5:15, 0] = 0.8  # segment 1: 100 voxels >= 50 %
    fractions[2, 5:15, 15:20, 0] = 0.3  # below 50 %: not labelled
    fractions[2, 10:12, 10:30, 1] = 1.0  # segment 2 overlaps 10 voxels of segment 1: a second layer
    fractions[3, 40:42, 40:43, 2] = 0.5  # segment 3 overlaps nothing: first layer, exactly 50 % counts
    descriptions = [
        hd.seg.SegmentDescription(n, label, codes.SCT.Tissue, codes.SCT.Tissue, hd.seg.SegmentAlgorithmTypeValues.MANUAL)
        for n, label in ((1, "organ"), (2, "vessel"), (3, "node"))
    ]
    seg = hd.seg.Segmentation(sources, fractions, hd.seg.SegmentationTypeValues.FRACTIONAL, descriptions, hd.UID(), 9,
                              hd.UID(), 1, "test", "test", "1", "0", max_fractional_value=100)
    path = tmp_path / "fractional.dcm"
    seg.save_as(path)
    first, second = read_dicom_seg(path, geometry)  # no voxel of either overlapping segment is lost
    assert first.voxel_count(1) == 100 and first.voxel_count(3) == 6 and first.present_values() == [1, 3]
    assert second.voxel_count(2) == 40 and second.present_values() == [2]  # values stay the segment numbers
    assert first.array[2, 5, 5] == 1 and first.array[2, 10, 10] == 1 and first.array[2, 5, 17] == 0
    assert [first.table[n].name for n in (1, 3)] == ["organ", "node"] and second.table[2].name == "vessel"
    assert first.name.endswith("(1 of 2)") and first.source == "DICOM SEG"
    with pytest.raises(MedviewerError, match="overlap and need 2 label layers"):
        read_label_map(path, geometry)
    shifted = geometry.replace(origin=tuple(np.asarray(geometry.origin) + [0.0, 0.0, 1.0]))
    with pytest.raises(GeometryMismatchError, match="fractional.dcm"):
        read_dicom_seg(path, shifted)
    (tmp_path / "broken.dcm").write_bytes(path.read_bytes()[:2000])
    with pytest.raises(MedviewerError, match="broken.dcm"):
        read_dicom_seg(tmp_path / "broken.dcm", geometry)


def test_is_dicom_seg_tells_segmentations_from_other_files(ct_series, tmp_path):
    from medviewer.io.dicom_seg import is_dicom_seg

    folder, series_uid, geometry = ct_series
    out = export_dicom_seg(_labels(geometry), series_files([folder]), tmp_path / "seg.dcm")
    (tmp_path / "notes.txt").write_text("not DICOM")
    assert is_dicom_seg(out)
    assert not is_dicom_seg(next(folder.iterdir())) and not is_dicom_seg(tmp_path / "notes.txt")


def test_import_of_a_labelmap_seg(ct_series, tmp_path):
    """LABELMAP SEGs (DICOM 2024) store segment numbers as pixel values."""
    from medviewer.io.dicom_seg import read_dicom_seg

    folder, series_uid, geometry = ct_series
    sources = sorted((pydicom.dcmread(f) for f in series_files([folder])), key=lambda ds: ds.InstanceNumber)
    label_map = _labels(geometry)
    numbers = np.select([label_map.array == 4, label_map.array == 9], [1, 2], 0).astype(np.uint8)
    descriptions = [
        hd.seg.SegmentDescription(n, label, codes.SCT.Tissue, codes.SCT.Tissue, hd.seg.SegmentAlgorithmTypeValues.MANUAL)
        for n, label in ((1, "liver"), (2, "lesion"))
    ]
    seg = hd.seg.Segmentation(sources, numbers, hd.seg.SegmentationTypeValues.LABELMAP, descriptions, hd.UID(), 9,
                              hd.UID(), 1, "test", "test", "1", "0")
    seg.save_as(tmp_path / "labelmap.dcm")
    (labels,) = read_dicom_seg(tmp_path / "labelmap.dcm", geometry)
    np.testing.assert_array_equal(labels.array, numbers)
    assert [labels.table[n].name for n in (1, 2)] == ["liver", "lesion"]


def test_export_onto_a_full_disk_keeps_the_previous_seg(ct_series, tmp_path):
    from small_disk import fill_to, small_disk

    from medviewer.io.atomic import DiskFullError

    folder, _, geometry = ct_series
    files = series_files([folder])
    with small_disk(tmp_path / "disk", 512) as disk:
        out = export_dicom_seg(_labels(geometry), files, disk / "seg.dcm")
        before = out.read_bytes()
        fill_to(disk, 0)
        with pytest.raises(DiskFullError, match=r"ENOSPC.*the previous file is unchanged"):
            export_dicom_seg(_labels(geometry), files, out)
        assert out.read_bytes() == before
        assert sorted(p.name for p in disk.iterdir()) == ["filler.bin", "seg.dcm"]
