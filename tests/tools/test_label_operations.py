"""One-shot label operations and label table edits, each one undo step."""

from __future__ import annotations

import numpy as np
import pytest
from tool_helpers import make_session

from medviewer.tools import operations
from medviewer.tools.session import OverwriteMode


def _disc(shape, centre, radius):
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    return (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius**2


def test_fill_between_slices_is_one_step_and_keeps_drawn_slices(session):
    labels = session.ensure_label_map().array
    disc = _disc((30, 40), (15, 20), 6)
    session.label_map.write(np.s_[1:2], 1, disc[None])
    session.label_map.write(np.s_[9:10], 1, disc[None])
    command = operations.fill_between_slices(session, view_axis=2)
    assert command is not None and session.undo_stack.count == 1
    assert all(((labels[z] == 1) == disc).all() for z in range(1, 10))
    assert not labels[0].any() and not labels[10:].any()
    session.undo()
    assert (labels == 1).sum() == 2 * disc.sum()


def test_grow_from_seeds_labels_the_two_halves():
    image = np.zeros((12, 30, 40), np.int16)
    image[:, :, 20:] = 400
    session = make_session(image=image)
    labels = session.ensure_label_map().array
    session.label_map.write(np.s_[6, 15, 8:12], 1)
    session.label_map.write(np.s_[6, 15, 28:32], 2)
    operations.grow_from_seeds(session, region=(slice(0, 12), slice(0, 30), slice(0, 40)))
    assert (labels[:, :, :19] == 1).all() and (labels[:, :, 21:] == 2).all()
    session.undo()
    assert (labels != 0).sum() == 8


def test_grow_from_seeds_default_region_is_seed_box_plus_margin():
    session = make_session(size=(60, 30, 12))
    labels = session.ensure_label_map().array
    session.label_map.write(np.s_[6, 15, 20], 1)
    session.label_map.write(np.s_[6, 15, 30], 2)
    operations.grow_from_seeds(session, margin_mm=3.0)
    # seeds box (1 x 1 x 11) grown by 3 voxels each way: 7 x 7 x 17
    assert (labels != 0).sum() == 7 * 7 * 17
    with pytest.raises(ValueError):
        operations.grow_from_seeds(make_session(), margin_mm=1.0)


def test_islands_and_largest_component(session):
    labels = session.ensure_label_map().array
    session.label_map.write(np.s_[1:4, 1:6, 1:6], 1)  # 75
    session.label_map.write(np.s_[8, 20, 20], 1)  # island of 1
    session.label_map.write(np.s_[8, 25:27, 30:32], 2)  # label 2: 4 voxels
    session.label_map.write(np.s_[2, 25, 35], 2)  # island of label 2
    operations.remove_small_islands(session, min_voxels=2)
    assert (labels == 1).sum() == 75 and (labels == 2).sum() == 4
    session.undo()
    operations.keep_largest_component(session, values=2)
    assert (labels == 1).sum() == 76 and (labels == 2).sum() == 4
    session.undo()
    session.active_value = 1
    operations.keep_largest_component(session)
    assert (labels == 1).sum() == 75 and (labels == 2).sum() == 5
    assert session.undo_stack.count == 1


def test_smoothing_never_takes_other_labels(session):
    labels = session.ensure_label_map().array
    session.label_map.write(np.s_[5, 5:15, 5:15], 1)
    session.label_map.write(np.s_[5, 10, 10], 0)  # pinhole
    session.label_map.write(np.s_[5, 5:15, 15], 2)  # neighbour label
    session.label_map.write(np.s_[5, 2, 2], 1)  # speck
    operations.smooth_label(session, value=1, method="median", radius_mm=1.0, in_plane_of=2)
    assert labels[5, 10, 10] == 1 and labels[5, 2, 2] == 0
    assert (labels == 2).sum() == 10
    with pytest.raises(ValueError):
        operations.smooth_label(session, method="blur")


def test_label_table_operations_undo(session):
    label_map = session.ensure_label_map()
    labels = label_map.array
    session.label_map.write(np.s_[0, 0, :4], 1)
    session.label_map.write(np.s_[0, 1, :3], 2)
    label_map.table.ensure([1, 2])
    operations.rename_label(session, 1, "liver")
    operations.recolor_label(session, 1, (10, 20, 30))
    operations.set_label_visible(session, 2, False)
    assert label_map.table[1].name == "liver" and label_map.table[1].color == (10, 20, 30)
    assert not label_map.table[2].visible
    operations.merge_labels(session, [2], 1)
    assert (labels == 1).sum() == 7 and 2 not in label_map.table
    session.undo()
    assert (labels == 2).sum() == 3 and 2 in label_map.table and not label_map.table[2].visible
    operations.change_label_value(session, 1, 5)
    assert (labels == 5).sum() == 4 and label_map.table[5].name == "liver" and 1 not in label_map.table
    with pytest.raises(ValueError, match="in use"):
        operations.change_label_value(session, 5, 2)
    operations.delete_label(session, 2)
    assert (labels == 2).sum() == 0 and 2 not in label_map.table
    value = operations.add_label(session, "tumour", (255, 0, 0))
    assert value == 6 and session.active_value == 6 and label_map.table[6].name == "tumour"
    with pytest.raises(ValueError):
        operations.rename_label(session, 6, "  ")
    steps = session.undo_stack.count
    assert steps == 6  # the undone merge was dropped by the next edit
    while session.undo():
        pass
    assert (labels == 1).sum() == 4 and (labels == 2).sum() == 3
    assert label_map.table[1].name == "Label 1" and 6 not in label_map.table


def test_apply_block_respects_overwrite_rule(session):
    labels = session.ensure_label_map().array
    session.label_map.write(np.s_[0, 0, 0:2], 2)
    session.overwrite = OverwriteMode.BACKGROUND
    region = (slice(0, 1), slice(0, 1), slice(0, 4))
    session.apply_block(region, np.full((1, 1, 4), 1, np.uint8), "test")
    assert list(labels[0, 0, :4]) == [2, 2, 1, 1]


def test_job_result_keeps_edits_made_while_it_ran(session):
    labels = session.ensure_label_map().array
    disc = _disc((30, 40), (15, 20), 6)
    session.label_map.write(np.s_[1:2], 1, disc[None])
    session.label_map.write(np.s_[9:10], 1, disc[None])
    job = operations.fill_between_slices_job(session, view_axis=2)
    edit = session.document.edit_labels
    edit(session.label_map, np.s_[5:6, 0:3, 0:3], 7)  # painted on the UI thread while the job runs
    edit(session.label_map, np.s_[5:6, 15:16, 20:21], 7)  # even inside the area the job fills: the later edit wins
    change = job()
    assert change.changed_voxels == 7 * disc.sum()
    operations.apply_block_change(session, change)
    assert (labels[5, 0:3, 0:3] == 7).all() and labels[5, 15, 20] == 7
    assert (labels[5] == 1).sum() == disc.sum() - 1 and (labels[4] == 1).sum() == disc.sum()
    session.undo()
    assert labels[5, 15, 20] == 7 and (labels[4] == 0).all() and (labels[5] == 1).sum() == 0
