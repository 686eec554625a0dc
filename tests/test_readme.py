"""The README's examples are real: the model manifest validates, its links and pictures exist."""

from __future__ import annotations

import json
import re
from pathlib import Path

from medviewer.ai.architectures import ARCHITECTURE_NAMES
from medviewer.ai.manifest import ModelManifest
from medviewer.ai.registry import ModelRegistry

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    start = README.index(f"\n{title}\n")
    following = re.search(r"\n#{1,3} ", README[start + len(title) + 2:])
    return README[start: start + len(title) + 2 + (following.start() if following else len(README))]


def _manifest_example() -> dict:
    blocks = re.findall(r"```json\n(.*?)\n```", _section("### Adding your own model"), flags=re.S)
    assert len(blocks) == 1
    return json.loads(blocks[0])


def test_readme_manifest_example_validates_and_is_found_as_a_package(tmp_path):
    data = _manifest_example()
    manifest = ModelManifest.from_dict(data, "README.md")
    assert manifest.ref == "my-liver-seg:1.0.0"
    assert manifest.task == "segmentation" and manifest.modality == ("CT",)
    assert [label.name for label in manifest.outputs.labels] == ["liver", "liver tumour"]
    assert manifest.runtime.type == "torchscript"
    package = tmp_path / "models" / "my-liver-seg"
    package.mkdir(parents=True)
    (package / "model.json").write_text(json.dumps(data))
    registry = ModelRegistry([(tmp_path / "models", "user")])
    assert registry.errors == []
    assert registry.find("my-liver-seg").manifest == manifest
    assert [p.ref for p in registry.for_modality("CT")] == ["my-liver-seg:1.0.0"]


def test_readme_lists_exactly_the_builtin_architectures():
    section = _section("### Adding your own model")
    listed = re.findall(r"`((?:monai|medviewer)\.[A-Za-z0-9]+)`", section)
    assert sorted(set(listed)) == sorted(ARCHITECTURE_NAMES)


def test_readme_links_and_pictures_exist():
    targets = re.findall(r"\]\(([^)\s]+)\)", README) + re.findall(r'<img src="([^"]+)"', README)
    local = [t for t in targets if not t.startswith(("http://", "https://", "#"))]
    assert any(t.startswith("docs/screenshots/") for t in local)
    for target in local:
        assert (REPO / target).exists(), target


def test_readme_names_every_option_of_the_db_and_pacs_commands():
    import argparse

    import medviewer.commands  # noqa: F401 - registers the subcommands
    from medviewer.cli import build_parser

    section = _section("## Studies from the PACS and the local database")
    parser = build_parser()
    checked = 0
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name in ("db", "pacs"):
        actions = next(a for a in commands.choices[name]._actions if isinstance(a, argparse._SubParsersAction))
        for action_name, subparser in actions.choices.items():
            assert f"medviewer {name} {action_name}" in section
            for option in subparser._actions:
                for flag in option.option_strings:
                    if flag not in ("-h", "--help"):
                        assert flag in section, f"medviewer {name} {action_name} {flag}"
                        checked += 1
    assert checked > 40
