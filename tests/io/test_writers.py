"""Writers round-trip voxels bit-exact and geometry to 1e-6; label maps refuse other grids."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from medviewer.core.errors import CorruptFileError, GeometryMismatchError, UnsupportedFormatError
from medviewer.core.geometry import Geometry
from medviewer.core.labels import LabelMap, LabelTable
from medviewer.core.volume import Volume
from medviewer.io import read_label_map, read_volume, write_label_map, write_volume

EXTENSIONS = [".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd"]


def random_geometry(seed: int, shape_zyx=(5, 7, 6)) -> Geometry:
    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))[None, :]
    if seed % 2:
        q[:, 2] *= -1  # mirrored (left-handed) directions occur in real data
    # NIfTI stores geometry as float32: use values it can hold exactly so 1e-6 is a fair bar.
    spacing = rng.uniform(0.3, 4.0, size=3).astype(np.float32).astype(float)
    origin = rng.uniform(-250, 250, size=3).astype(np.float32).astype(float)
    return Geometry.from_matrix(shape_zyx[::-1], spacing, origin, q)


def assert_geometry_equal(actual: Geometry, expected: Geometry, tolerance: float = 1e-6) -> None:
    assert actual.size == expected.size
    np.testing.assert_allclose(actual.spacing, expected.spacing, rtol=0, atol=tolerance)
    np.testing.assert_allclose(actual.origin, expected.origin, rtol=0, atol=tolerance)
    np.testing.assert_allclose(actual.direction, expected.direction, rtol=0, atol=tolerance)


@pytest.mark.parametrize("extension", EXTENSIONS)
@pytest.mark.parametrize("dtype", [np.int16, np.float32, np.uint8])
def test_volume_round_trip(tmp_path, extension, dtype):
    seed = EXTENSIONS.index(extension) * 7 + np.dtype(dtype).itemsize
    geometry = random_geometry(seed)
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        array = rng.normal(0, 300, size=geometry.shape).astype(dtype)
    else:
        info = np.iinfo(dtype)
        array = rng.integers(info.min, info.max, size=geometry.shape, endpoint=True).astype(dtype)
    path = tmp_path / f"volume{extension}"
    write_volume(Volume(array, geometry), path)

    back = read_volume(path)
    assert back.array.dtype == dtype
    np.testing.assert_array_equal(back.array, array)
    assert_geometry_equal(back.geometry, geometry)
    # Exactly what SimpleITK reads.
    image = sitk.ReadImage(str(path))
    np.testing.assert_array_equal(back.geometry.direction, image.GetDirection())
    np.testing.assert_array_equal(back.geometry.origin, image.GetOrigin())
    # Nothing but the written files is left behind (no temporary files).
    expected = {path.name} | ({path.with_suffix(".raw").name} if extension in (".mhd", ".nhdr") else set())
    assert {p.name for p in tmp_path.iterdir()} == expected


@pytest.mark.parametrize("extension", [".nii.gz", ".nrrd", ".mha"])
def test_label_map_round_trip_with_table(tmp_path, extension):
    geometry = random_geometry(3)
    array = np.zeros(geometry.shape, np.uint8)
    array[1:3, 2:5, 1:4] = 1
    array[4, 0, 0] = 7
    table = LabelTable.from_names({1: "lung", 7: "nodule"})
    table.add(9, "unused", (1, 2, 3))
    path = tmp_path / f"labels{extension}"
    write_label_map(LabelMap(array, geometry, table, name="Lungs"), path)

    back = read_label_map(path, geometry)
    np.testing.assert_array_equal(back.array, array)
    assert back.array.dtype == np.uint8
    if extension == ".nii.gz":
        assert sorted(back.table) == [1, 7]  # NIfTI keeps no names: defaults for present values
    else:
        assert back.table.to_dict() == table.to_dict()
    assert read_label_map(path, geometry, table=LabelTable.from_names({1: "x"}), name="given").table[1].name == "x"


def test_uint16_labels_stay_uint16(tmp_path):
    geometry = random_geometry(4)
    array = np.zeros(geometry.shape, np.uint16)
    array[0, 0, 0] = 300
    write_label_map(LabelMap(array, geometry), tmp_path / "big.nrrd")
    back = read_label_map(tmp_path / "big.nrrd", geometry)
    assert back.array.dtype == np.uint16 and back.array[0, 0, 0] == 300


def test_label_map_on_another_grid_is_refused_naming_the_file(tmp_path):
    geometry = random_geometry(5)
    write_label_map(LabelMap(np.zeros(geometry.shape, np.uint8), geometry), tmp_path / "labels.nrrd")
    shifted = geometry.replace(origin=tuple(np.asarray(geometry.origin) + (0.0, 0.5, 0.0)))
    with pytest.raises(GeometryMismatchError, match="labels.nrrd") as error:
        read_label_map(tmp_path / "labels.nrrd", shifted)
    assert "origin" in str(error.value)
    with pytest.raises(GeometryMismatchError, match="size"):
        read_label_map(tmp_path / "labels.nrrd", geometry.replace(size=(6, 7, 4)))



@pytest.mark.parametrize("extension", [".nii.gz", ".nrrd"])
def test_label_map_written_in_another_axis_order_opens_on_the_image_grid(tmp_path, extension):
    """A file from another tool (rows bottom-up, RAS order, axes swapped) covering the same voxels opens exactly."""
    geometry = Geometry((12, 10, 6), (0.7, 0.8, 2.5), (-30.0, 12.5, 88.0))
    truth = np.zeros(geometry.shape, np.uint8)
    truth[1:4, 2:6, 3:9] = 3
    truth[5, 9, 11] = 7  # a corner voxel: any off-by-one shows
    image = sitk.GetImageFromArray(truth)
    image.SetSpacing(geometry.spacing)
    image.SetOrigin(geometry.origin)
    image.SetDirection(geometry.direction)
    stored = sitk.PermuteAxes(sitk.Flip(image, [True, True, False]), [2, 0, 1])  # SimpleITK keeps the world grid
    assert stored.GetSize() == (6, 12, 10)
    path = tmp_path / f"reference{extension}"
    sitk.WriteImage(stored, str(path))
    label_map = read_label_map(path, geometry)
    assert label_map.geometry == geometry
    np.testing.assert_array_equal(label_map.array, truth)


def test_label_map_with_fractions_or_negative_values_is_refused(tmp_path):
    geometry = Geometry((4, 3, 2))
    sitk.WriteImage(sitk.GetImageFromArray(np.full((2, 3, 4), 0.5, np.float32)), str(tmp_path / "float.nrrd"))
    with pytest.raises(CorruptFileError, match="whole numbers"):
        read_label_map(tmp_path / "float.nrrd", geometry)
    sitk.WriteImage(sitk.GetImageFromArray(np.full((2, 3, 4), -1, np.int16)), str(tmp_path / "negative.nrrd"))
    with pytest.raises(CorruptFileError, match="0..65535"):
        read_label_map(tmp_path / "negative.nrrd", geometry)
    integral = np.zeros((2, 3, 4), np.float32)
    integral[1, 1, 1] = 2.0
    sitk.WriteImage(sitk.GetImageFromArray(integral), str(tmp_path / "integral.nii"))
    assert read_label_map(tmp_path / "integral.nii", geometry).voxel_count(2) == 1


def test_unsupported_output_extension(tmp_path):
    volume = Volume(np.zeros((2, 2, 2), np.int16), Geometry((2, 2, 2)))
    with pytest.raises(UnsupportedFormatError, match="out.png"):
        write_volume(volume, tmp_path / "out.png")
    assert not list(tmp_path.iterdir())


def test_overwrite_replaces_atomically(tmp_path):
    geometry = Geometry((3, 3, 3))
    path = tmp_path / "v.mha"
    write_volume(Volume(np.zeros(geometry.shape, np.int16), geometry), path)
    write_volume(Volume(np.ones(geometry.shape, np.int16), geometry), path)
    assert read_volume(path).array.sum() == 27
    assert [p.name for p in tmp_path.iterdir()] == ["v.mha"]


# ---------------------------------------------------------------- verified writes
def _noise_volume(seed: int, shape_zyx=(10, 40, 40)) -> Volume:  # 32 kB that do not compress
    rng = np.random.default_rng(seed)
    geometry = Geometry(shape_zyx[::-1], (0.9, 0.9, 2.0), (1.0, 2.0, 3.0))
    return Volume(rng.integers(-1000, 1000, shape_zyx).astype(np.int16), geometry, "CT")


@pytest.mark.parametrize("extension", EXTENSIONS)
def test_a_full_disk_keeps_the_previous_file(tmp_path, extension):
    """SimpleITK leaves a short NIfTI without raising on ENOSPC; it must never replace the good file."""
    from small_disk import fill_to, small_disk, snapshot

    from medviewer.io.atomic import DiskFullError

    first, second = _noise_volume(1), _noise_volume(2)
    labels = LabelMap((first.array > 0).astype(np.uint8), first.geometry, LabelTable.from_names({1: "bone"}))
    with small_disk(tmp_path / "disk", 512) as disk:
        target, label_target = disk / f"scan{extension}", disk / f"labels{extension}"
        write_volume(first, target)
        write_label_map(labels, label_target)
        for free in (0, 4096, 8192, 16384):
            before = snapshot(disk)
            before.pop("filler.bin", None)
            fill_to(disk, free)
            with pytest.raises(DiskFullError, match=r"disk is full \(ENOSPC\).*the previous file is unchanged"):
                write_volume(second, target)
            after = snapshot(disk)
            after.pop("filler.bin")
            assert after == before, f"{free} bytes free"
            (disk / "filler.bin").unlink()
        np.testing.assert_array_equal(read_volume(target).array, first.array)
        np.testing.assert_array_equal(read_label_map(label_target, first.geometry).array, labels.array)
        write_volume(second, target)  # with room again the write succeeds
        np.testing.assert_array_equal(read_volume(target).array, second.array)


@pytest.mark.parametrize("name", ["a.nii.nii.gz", "scan.nii.gz.nii.gz", "f.nii.nii", "x.mha.mha", "y.nrrd.nrrd"])
def test_doubled_extensions_write_exactly_that_file(tmp_path, name):
    """NIfTI's writer used to "fix" the temporary name and write beside it; a 0-byte file replaced the target."""
    volume = _noise_volume(3)
    written = write_volume(volume, tmp_path / name)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
    assert written.stat().st_size > 348
    back = sitk.ReadImage(str(tmp_path / name))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(back), volume.array)


def test_a_short_write_is_refused_without_a_full_disk(tmp_path, monkeypatch):
    from medviewer.io.atomic import WriteFailedError

    target = tmp_path / "scan.nii.gz"
    write_volume(_noise_volume(4), target)
    before = target.read_bytes()
    real_write = sitk.WriteImage

    def short_write(image, path, *args, **kwargs):  # what NIfTI's writer leaves on ENOSPC, without raising
        real_write(image, path, *args, **kwargs)
        with open(path, "rb+") as handle:
            handle.truncate(200)

    monkeypatch.setattr(sitk, "WriteImage", short_write)
    with pytest.raises(WriteFailedError, match="previous file is unchanged"):
        write_volume(_noise_volume(5), target)
    assert target.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["scan.nii.gz"]
