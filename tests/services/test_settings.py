"""User settings survive restarts and never stop the app from starting."""

from __future__ import annotations

from medviewer.services.settings import MAX_RECENT_FILES, Settings, load_settings, save_settings, settings_path


def test_round_trip_and_recent_files(tmp_path):
    path = tmp_path / "settings.json"
    settings = Settings(layout="2x2", annotator_name="Dr. Who")
    for index in range(MAX_RECENT_FILES + 3):
        settings.add_recent_file(tmp_path / f"scan{index}.nii.gz")
    settings.add_recent_file(tmp_path / "scan5.nii.gz")  # moves to the front, no duplicate
    save_settings(settings, path)
    loaded = load_settings(path)
    assert loaded == settings
    assert len(loaded.recent_files) == MAX_RECENT_FILES
    assert loaded.recent_files[0].endswith("scan5.nii.gz")
    assert len(set(loaded.recent_files)) == MAX_RECENT_FILES


def test_damaged_or_odd_files_give_defaults(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text("{not json")
    assert load_settings(path) == Settings()
    path.write_text('{"layout": "9x9", "recent_files": "oops", "annotator_name": 5, "unknown": 1}')
    assert load_settings(path) == Settings()
    assert load_settings(tmp_path / "missing.json") == Settings()


def test_default_location_is_the_config_dir(medviewer_home):
    assert settings_path().is_relative_to(medviewer_home)
    save_settings(Settings(annotator_name="A"))
    assert load_settings().annotator_name == "A"
