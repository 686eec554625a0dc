import json

import pytest
from conftest import manifest_for, write_package

from medviewer.ai.registry import ModelRegistry, load_extra_folders, new_package_folder, parse_model_ref
from medviewer.core.errors import ModelError
from medviewer.core.paths import user_models_dir


def _write_manifest_only(folder, **changes):
    folder.mkdir(parents=True)
    (folder / "model.json").write_text(json.dumps(manifest_for("segmentation", **changes)))


def test_broken_package_is_reported_while_others_load(tmp_path):
    _write_manifest_only(tmp_path / "good", name="good")
    _write_manifest_only(tmp_path / "bad", name="bad", inference={"patch_size": [16, 16]})
    (tmp_path / "not-json").mkdir()
    (tmp_path / "not-json" / "model.json").write_text("{")
    (tmp_path / "no-manifest").mkdir()  # ignored: not a package
    registry = ModelRegistry([(tmp_path, "extra")])
    assert [p.name for p in registry.packages] == ["good"]
    messages = sorted(str(e) for e in registry.errors)
    assert len(messages) == 2
    assert "field 'inference.patch_size'" in messages[0] and str(tmp_path / "bad" / "model.json") in messages[0]
    assert "not valid JSON" in messages[1]


def test_versions_coexist_and_find(tmp_path):
    # Nested layout name/version/ (as fine-tuning writes) and flat folders mix.
    for version in ("1.0.0", "1.10.0", "1.2.0"):
        _write_manifest_only(tmp_path / "lungs" / version, name="lungs", version=version)
    _write_manifest_only(tmp_path / "other-model", name="other", modality=["MR"])
    registry = ModelRegistry([(tmp_path, "user")])
    assert [p.version for p in registry.versions("lungs")] == ["1.0.0", "1.2.0", "1.10.0"]
    assert registry.find("lungs").version == "1.10.0"
    assert registry.find("lungs:1.2.0").folder == tmp_path / "lungs" / "1.2.0"
    assert [p.ref for p in registry.latest()] == ["lungs:1.10.0", "other:1.0.0"]
    assert [p.name for p in registry.for_modality("CT")] == ["lungs"]
    assert [p.name for p in registry.for_modality("MR")] == ["other"]
    assert len(registry.for_modality("CT", all_versions=True)) == 3
    with pytest.raises(ModelError, match=r"no version 9.9 \(available: 1.0.0, 1.2.0, 1.10.0\)"):
        registry.find("lungs:9.9")
    with pytest.raises(ModelError, match=r"no model named 'nope' \(available: lungs, other\)"):
        registry.find("nope")


def test_first_folder_wins_same_name_and_version_and_the_other_is_reported(tmp_path):
    _write_manifest_only(tmp_path / "a" / "m", name="m", title="first")
    _write_manifest_only(tmp_path / "b" / "m", name="m", title="second")
    registry = ModelRegistry([(tmp_path / "a", "builtin"), (tmp_path / "b", "user")])
    assert registry.find("m").manifest.title == "first"
    assert registry.find("m").origin == "builtin"
    assert [p.folder for p in registry.packages] == [tmp_path / "a" / "m"]
    (duplicate,) = registry.duplicates
    assert duplicate.package.manifest.title == "second" and duplicate.used.folder == tmp_path / "a" / "m"
    (error,) = registry.errors
    assert error.path == str(tmp_path / "b" / "m") and str(tmp_path / "a" / "m") in error.message
    assert error.message.startswith("model m:1.0.0 (user) is not used: the builtin package in")


def test_default_registry_sees_user_models_and_remembered_folders(tmp_path, medviewer_home):
    write_package(user_models_dir() / "mine" / "2.0.0", name="mine", version="2.0.0")
    extra = tmp_path / "shared-models"
    write_package(extra / "theirs", name="theirs")
    registry = ModelRegistry.default()
    assert registry.find("mine").origin == "user"
    with pytest.raises(ModelError):
        registry.find("theirs")
    registry.add_folder(extra, remember=True)
    assert registry.find("theirs").origin == "extra"
    assert extra in load_extra_folders()
    assert ModelRegistry.default().find("theirs").name == "theirs"  # remembered for the next session
    registry.remove_folder(extra)
    assert extra not in load_extra_folders()
    assert "theirs" not in registry.names()


def test_new_package_folder_refuses_existing(tmp_path):
    write_package(tmp_path / "m" / "1.0.0", name="m")
    assert new_package_folder("m", "1.1.0", tmp_path) == tmp_path / "m" / "1.1.0"
    with pytest.raises(ModelError, match="already exists"):
        new_package_folder("m", "1.0.0", tmp_path)


def test_parse_model_ref():
    assert parse_model_ref("lungs") == ("lungs", None)
    assert parse_model_ref(" lungs:1.2 ") == ("lungs", "1.2")
