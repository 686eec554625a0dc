"""The demo package's modules import each other in one direction only (no cycle), and imaging knows nothing of them."""

from __future__ import annotations

import itertools

import grimp
import pytest

DEMO_MODULES = ("phantom_tissues", "phantom_anatomy", "phantoms", "phantom_radiograph")


@pytest.fixture(scope="module")
def graph():
    # Function-level and TYPE_CHECKING imports count too: a lazy import is still a cycle.
    return grimp.build_graph("medviewer", include_external_packages=False)


def test_no_import_cycle_between_demo_modules(graph):
    modules = sorted(m for m in graph.find_children("medviewer.demo"))
    assert {m.rsplit(".", 1)[1] for m in modules} == set(DEMO_MODULES)
    for a, b in itertools.permutations(modules, 2):
        if graph.chain_exists(importer=a, imported=b):
            assert not graph.chain_exists(importer=b, imported=a), f"{a} and {b} import each other"


def test_demo_modules_follow_their_order(graph):
    """tissues <- anatomy <- phantoms: each module imports only those below it."""
    order = ["medviewer.demo." + name for name in ("phantom_tissues", "phantom_anatomy", "phantoms")]
    for low, high in itertools.combinations(order, 2):
        assert not graph.chain_exists(importer=low, imported=high), f"{low} imports {high}"
    assert graph.direct_import_exists(importer=order[1], imported=order[0])
    assert graph.direct_import_exists(importer=order[2], imported=order[1])


def test_imaging_holds_no_demo_content(graph):
    names = {m.rsplit(".", 1)[1] for m in graph.find_children("medviewer.imaging")}
    assert not {n for n in names if n.startswith("phantom")}
    assert not graph.chain_exists(importer="medviewer.imaging", imported="medviewer.demo", as_packages=True)
