"""Window/level maths: grey levels, lookup tables, presets and colour maps."""

from __future__ import annotations

import numpy as np
import pytest

from medviewer.core import Geometry, Volume, VolumeMetadata
from medviewer.imaging.window_level import (
    COLORMAPS,
    CT_PRESETS,
    SliceWindowing,
    Window,
    auto_window,
    colormap_lookup_table,
    mr_auto_window,
    parse_window,
    window_for_preset,
    window_level_to_uint8,
    window_lookup_table,
)


def test_linear_window_maps_edges_to_black_and_white():
    values = np.array([-100, 0, 40, 80, 500], dtype=np.int16)
    grey = window_level_to_uint8(values, center=40, width=80)
    assert grey.dtype == np.uint8
    assert grey.tolist() == [0, 0, 128, 255, 255]
    assert window_level_to_uint8(values, 40, 80, invert=True).tolist() == [255, 255, 127, 0, 0]


@pytest.mark.parametrize("dtype", [np.int16, np.uint16, np.uint8, np.int8])
def test_lookup_table_equals_direct_formula_for_every_value(dtype):
    info = np.iinfo(dtype)
    every_value = np.arange(info.min, info.max + 1, dtype=np.int64).astype(dtype)
    table = window_lookup_table(dtype, -600, 1500, invert=False)
    unsigned = np.uint8 if np.dtype(dtype).itemsize == 1 else np.uint16
    assert np.array_equal(table[every_value.view(unsigned)], window_level_to_uint8(every_value, -600, 1500))


def test_slice_windowing_handles_views_floats_and_reuses_tables():
    rng = np.random.default_rng(1)
    volume = rng.integers(-1024, 3000, size=(5, 6, 7)).astype(np.int16)
    windowing = SliceWindowing()
    sagittal = volume[:, :, 3][::-1]  # a strided, flipped view like the slice views use
    assert np.array_equal(windowing.apply(sagittal, 50, 350), window_level_to_uint8(sagittal, 50, 350))
    floats = volume.astype(np.float32)[2]
    out = windowing.apply(floats, 50, 350)
    assert out.flags["C_CONTIGUOUS"] and np.array_equal(out, window_level_to_uint8(floats, 50, 350))
    assert window_lookup_table(np.float32, 0, 1) is None


def test_ct_presets_and_default_window_from_dicom():
    array = np.zeros((2, 4, 4), np.int16)
    volume = Volume(array, Geometry((4, 4, 2)), "CT", VolumeMetadata(windows=[(35.0, 350.0), (-600, 1200)]))
    assert window_for_preset("default", volume) == Window(35, 350)
    assert window_for_preset("lung", volume) == Window(-600, 1500)
    assert window_for_preset("brain", volume) == Window(*CT_PRESETS["brain"])
    assert parse_window("bone", volume) == Window(400, 1800)
    assert parse_window("10,20", volume) == Window(10, 20)
    with pytest.raises(ValueError):
        window_for_preset("nonsense", volume)
    with pytest.raises(ValueError):
        parse_window("10,-5", volume)


def test_auto_windows_follow_the_data():
    values = np.concatenate([np.zeros(5000), np.linspace(100, 200, 5000)]).reshape(10, 10, 100)
    auto = auto_window(values)
    assert auto.low == pytest.approx(np.percentile(values, 1))
    assert auto.high == pytest.approx(np.percentile(values, 99))
    mr = mr_auto_window(values)  # zero background is ignored
    assert mr.low == pytest.approx(100.5, abs=0.01)
    assert mr.high == pytest.approx(199.5, abs=0.01)
    assert mr_auto_window(np.zeros((3, 3, 3))).width > 0


def test_colormaps_run_from_dark_to_bright_and_invert():
    for name in COLORMAPS:
        table = colormap_lookup_table(name)
        assert table.shape == (256, 3) and table.dtype == np.uint8
    gray = colormap_lookup_table("gray")
    assert gray[0].tolist() == [0, 0, 0] and gray[255].tolist() == [255, 255, 255] and gray[128].tolist() == [128] * 3
    assert colormap_lookup_table("gray", invert=True)[0].tolist() == [255, 255, 255]
    assert colormap_lookup_table("hot")[-1].tolist() == [255, 255, 255]
    with pytest.raises(ValueError):
        colormap_lookup_table("rainbow-unicorn")

