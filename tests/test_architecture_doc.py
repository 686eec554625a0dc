"""docs/ARCHITECTURE.md stays true: every module it names exists, and every name it gives a module has."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "ARCHITECTURE.md"


def _dotted_names() -> set[str]:
    text = DOC.read_text(encoding="utf-8")
    return set(re.findall(r"\bmedviewer(?:\.[A-Za-z_][A-Za-z0-9_]*)+", text))


def _resolves(name: str) -> bool:
    """True for an importable module, or a module attribute (a class or function in it)."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            target = importlib.import_module(module_name)
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(target, attribute):
                return False
            target = getattr(target, attribute)
        return True
    return False


def test_every_module_the_architecture_doc_names_exists():
    names = _dotted_names()
    assert len(names) > 30  # the doc names the modules a newcomer needs
    missing = sorted(n for n in names if not _resolves(n))
    assert not missing, f"docs/ARCHITECTURE.md names modules that do not exist: {missing}"


def test_named_methods_exist():
    from medviewer.core.document import Document
    from medviewer.core.labels import LabelMap
    from medviewer.services.study_session import StudySession
    from medviewer.ui.main_window import MainWindow

    text = DOC.read_text(encoding="utf-8")
    for owner, cls in (("Document", Document), ("LabelMap", LabelMap), ("StudySession", StudySession),
                       ("MainWindow", MainWindow)):
        for method in re.findall(rf"`{owner}\.([a-z_]+)", text):
            assert hasattr(cls, method), f"{owner}.{method} named in docs/ARCHITECTURE.md does not exist"
