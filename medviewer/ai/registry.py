"""The model registry: built-in packages, the user's models folder and folders the user added.

Packages are found by their ``model.json`` (a package folder directly in a models
folder, or one level deeper, e.g. ``models/lung-seg/1.1.0/model.json``). Several
versions of one model name coexist; ``find("name")`` gives the newest and
``find("name:1.0.0")`` an exact one. A broken package does not stop the others
from loading: its ``ModelError`` (naming the file and the field) is kept in
``errors`` for the UI or the CLI to show.

nnU-Net v2 result folders are models too (``medviewer.ai.nnunet``): a trained-model folder
(``<Trainer>__<Plans>__<configuration>/``) that is a models folder itself, sits in one, or sits in a
``Dataset*/`` folder there. They are named after the dataset, versioned by the folder name, and the
3d_fullres configuration is the default; ``name:2d`` picks the one whose folder ends in ``__2d``.

MONAI bundles (``medviewer.ai.bundle``: ``configs/metadata.json``, ``configs/inference.json|yaml``,
``models/model.pt|ts``) are models too, named and versioned by their metadata.json, found as a models
folder themselves or directly in one.

Fine-tuned models are simply new packages (same or new name, new version) written
into ``user_models_dir()``; ``refresh()`` picks them up.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from medviewer.ai.bundle.folder import RUNTIME_TYPE as BUNDLE_RUNTIME
from medviewer.ai.bundle.folder import find_bundles, load_bundle
from medviewer.ai.bundle.folder import model_name_for as bundle_name_for
from medviewer.ai.manifest import MANIFEST_NAME, MODEL_CARD_NAME, ModelManifest, load_manifest, version_key
from medviewer.ai.nnunet.folder import RUNTIME_TYPE as NNUNET_RUNTIME
from medviewer.ai.nnunet.folder import default_first_key, find_nnunet_models, load_nnunet_model, model_name_for
from medviewer.ai.tasks import Task
from medviewer.core.errors import ModelError
from medviewer.core.paths import config_dir, resources_dir, user_models_dir
from medviewer.io.atomic import atomic_write_text

#: Where the built-in packages live (a checkout's resources/, the installed package, the frozen app).
BUILTIN_MODELS_DIR = resources_dir() / "models"
_EXTRA_FOLDERS_FILE = "model_folders.json"


@dataclass(frozen=True)
class BrokenPackage:
    """A ``model.json`` that could not be loaded, with the name it seems to carry (for ``find``'s message)."""

    manifest_path: Path
    error: ModelError
    names: frozenset[str]
    version: str | None = None


@dataclass(frozen=True)
class DuplicatePackage:
    """A package refused because an earlier one in search order has its name and version."""

    package: "ModelPackage"
    used: "ModelPackage"

    def error(self) -> ModelError:
        used = self.used
        return ModelError(
            f"model {self.package.ref} ({self.package.origin}) is not used: the {used.origin} package in {used.folder} "
            f"has the same name and version and is used, because it comes first in the search order (built-in models, "
            f"added folders, your models folder); one name:version must mean one model, so give this copy "
            f"another 'version' (or 'name') to use both",
            self.package.folder,
        )


@dataclass(frozen=True)
class ModelPackage:
    """A validated model package on disk."""

    folder: Path
    manifest: ModelManifest
    origin: str  # "builtin", "user" or "extra"

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def ref(self) -> str:
        return self.manifest.ref

    @property
    def task(self) -> Task:
        return self.manifest.task

    @property
    def weights_path(self) -> Path:
        return self.folder / self.manifest.runtime.file

    def model_card(self) -> str:
        """The package's MODEL_CARD.md (Markdown), or a short note when it has none."""
        path = self.folder / MODEL_CARD_NAME
        try:
            return path.read_text(encoding="utf-8")
        except OSError:
            if self.manifest.runtime.type == NNUNET_RUNTIME:
                return _nnunet_card(self)
            if self.manifest.runtime.type == BUNDLE_RUNTIME:
                return _bundle_card(self)
            return f"# {self.manifest.display_name}\n\n(This package has no {MODEL_CARD_NAME}.)\n"


def _nnunet_card(package: "ModelPackage") -> str:
    """A card for an nnU-Net result folder, from what its plans and dataset.json say."""
    manifest = package.manifest
    labels = "\n".join(f"- {label.value}: {label.name}" for label in manifest.outputs.labels)
    return (
        f"# {manifest.display_name}\n\n{manifest.description}\n\n"
        f"Folder: `{package.folder}`\n\n## Labels\n\n{labels}\n\n"
        f"## Provenance\n\n- Training data: {manifest.provenance.training_data}\n"
        f"- Licence (dataset.json): {manifest.provenance.license}\n\n"
        "Runs offline as nnU-Net's own predictor does (mirroring on unless switched off).\n"
    )


def _bundle_card(package: "ModelPackage") -> str:
    """A card for a MONAI bundle: its docs/README.md, or what its metadata and inference config say."""
    manifest = package.manifest
    try:
        readme = (package.folder / "docs" / "README.md").read_text(encoding="utf-8")
    except OSError:
        readme = ""
    labels = "\n".join(f"- {label.value}: {label.name}" for label in manifest.outputs.labels)
    spacing = " x ".join(f"{v:g}" for v in manifest.input.spacing) + " mm" if manifest.input.spacing else "as given"
    return (
        f"# {manifest.display_name}\n\n{manifest.description}\n\nFolder: `{package.folder}`\n\n"
        f"## Labels\n\n{labels}\n\nResampled to {spacing}.\n\n"
        f"- Licence: {manifest.provenance.license}\n\n{readme}"
    )


def parse_model_ref(ref: str) -> tuple[str, str | None]:
    """``"name:version"`` -> (name, version); ``"name"`` -> (name, None)."""
    name, _, version = ref.strip().partition(":")
    return name.strip(), (version.strip() or None)


class ModelRegistry:
    """All model packages in a list of folders (the first package of a name and version wins; see the module)."""

    def __init__(self, folders: Iterable[tuple[str | Path, str]] = ()) -> None:
        self._folders: list[tuple[Path, str]] = [(Path(f), origin) for f, origin in folders]
        self.packages: list[ModelPackage] = []
        #: every problem to show the user: broken packages, then refused duplicates
        self.errors: list[ModelError] = []
        self.broken: list[BrokenPackage] = []
        self.duplicates: list[DuplicatePackage] = []
        self.refresh()

    @classmethod
    def default(cls, extra_folders: Iterable[str | Path] = ()) -> "ModelRegistry":
        """Built-in models, the user's models folder, saved extra folders and ``extra_folders``."""
        folders: list[tuple[str | Path, str]] = [(BUILTIN_MODELS_DIR, "builtin")]
        folders += [(folder, "extra") for folder in load_extra_folders()]
        folders += [(folder, "extra") for folder in extra_folders]
        folders.append((user_models_dir(), "user"))
        return cls(folders)

    @property
    def folders(self) -> list[Path]:
        return [folder for folder, _ in self._folders]

    def add_folder(self, folder: str | Path, origin: str = "extra", remember: bool = False) -> None:
        """Look for models in ``folder`` too; ``remember`` saves it for the next session."""
        folder = Path(folder)
        if folder not in self.folders:
            self._folders.insert(len(self._folders) - 1 if self._folders else 0, (folder, origin))
        if remember:
            saved = load_extra_folders()
            if folder not in saved:
                save_extra_folders([*saved, folder])
        self.refresh()

    def remove_folder(self, folder: str | Path) -> None:
        folder = Path(folder)
        self._folders = [(f, o) for f, o in self._folders if f != folder]
        save_extra_folders([f for f in load_extra_folders() if f != folder])
        self.refresh()

    def refresh(self) -> None:
        """Rescan every folder; broken packages and refused duplicates go to ``errors``, the rest to ``packages``."""
        found: dict[tuple[str, str], ModelPackage] = {}
        broken: list[BrokenPackage] = []
        duplicates: list[DuplicatePackage] = []
        seen: set[Path] = set()
        for folder, origin in self._folders:
            for manifest_path in _manifest_paths(folder):
                resolved = manifest_path.resolve()
                if resolved in seen:  # the same package reached twice (a folder added twice, a link): not a duplicate
                    continue
                seen.add(resolved)
                try:
                    manifest = load_manifest(manifest_path)
                except ModelError as error:
                    broken.append(_broken_package(manifest_path, folder, error))
                    continue
                package = ModelPackage(manifest_path.parent, manifest, origin)
                used = found.get((manifest.name, manifest.version))
                if used is not None:
                    duplicates.append(DuplicatePackage(package, used))
                    continue
                found[(manifest.name, manifest.version)] = package
            for model_folder in find_nnunet_models(folder):
                resolved = model_folder.resolve()
                if resolved in seen or (model_folder / MANIFEST_NAME).is_file():
                    continue
                seen.add(resolved)
                try:
                    manifest = load_nnunet_model(model_folder).manifest()
                except ModelError as error:
                    broken.append(BrokenPackage(model_folder / "plans.json", error,
                                                frozenset({model_name_for(model_folder.parent.name)}), model_folder.name))
                    continue
                package = ModelPackage(model_folder, manifest, origin)
                used = found.get((manifest.name, manifest.version))
                if used is not None:
                    duplicates.append(DuplicatePackage(package, used))
                    continue
                found[(manifest.name, manifest.version)] = package
            for bundle_folder in find_bundles(folder):
                resolved = bundle_folder.resolve()
                if resolved in seen or (bundle_folder / MANIFEST_NAME).is_file():
                    continue
                seen.add(resolved)
                try:
                    manifest = load_bundle(bundle_folder).manifest()
                except ModelError as error:
                    broken.append(BrokenPackage(bundle_folder / "configs" / "metadata.json", error,
                                                frozenset({bundle_name_for(bundle_folder.name)})))
                    continue
                package = ModelPackage(bundle_folder, manifest, origin)
                used = found.get((manifest.name, manifest.version))
                if used is not None:
                    duplicates.append(DuplicatePackage(package, used))
                    continue
                found[(manifest.name, manifest.version)] = package
        self.packages = sorted(found.values(), key=_package_sort_key)
        self.broken = broken
        self.duplicates = duplicates
        self.errors = [b.error for b in broken] + [d.error() for d in duplicates]

    # ------------------------------------------------------------------ queries
    def names(self) -> list[str]:
        return sorted({package.name for package in self.packages})

    def versions(self, name: str) -> list[ModelPackage]:
        """All versions of ``name``, oldest first."""
        return [package for package in self.packages if package.name == name]

    def latest(self) -> list[ModelPackage]:
        """The newest version of every model name."""
        return [self.versions(name)[-1] for name in self.names()]

    def find(self, ref: str) -> ModelPackage:
        """The package for ``"name"`` (newest version) or ``"name:version"``; ``ModelError`` when absent."""
        name, version = parse_model_ref(ref)
        candidates = self.versions(name)
        broken = [b for b in self.broken if name in b.names and (version is None or b.version in (None, version))]
        if not candidates:
            if broken:
                raise ModelError(f"model '{name}' is unavailable: its package could not be loaded: {broken[0].error}")
            known = ", ".join(self.names()) or "none"
            raise ModelError(f"no model named '{name}' (available: {known})")
        if version is None:
            return candidates[-1]
        for package in candidates:
            if package.version == version:
                return package
        # nnU-Net models: "name:2d" is the configuration part of "Trainer__Plans__2d"
        by_configuration = [p for p in candidates if p.version.endswith(f"__{version}")]
        if by_configuration:
            return by_configuration[-1]
        available = ", ".join(p.version for p in candidates)
        if broken:
            raise ModelError(
                f"model {name}:{version} is unavailable: its package could not be loaded: {broken[0].error} "
                f"(loaded versions: {available})"
            )
        raise ModelError(f"model '{name}' has no version {version} (available: {available})")

    def for_modality(self, modality: str, task: Task | str | None = None, all_versions: bool = False) -> list[ModelPackage]:
        """Packages meant for ``modality`` (and ``task`` if given); newest version of each name by default."""
        pool = self.packages if all_versions else self.latest()
        return [
            package for package in pool
            if package.manifest.accepts_modality(modality) and (task is None or package.task == task)
        ]


def _package_sort_key(package: ModelPackage) -> tuple:
    """Name, then version: oldest first, so the last is the default (3d_fullres for nnU-Net models)."""
    if package.manifest.runtime.type == NNUNET_RUNTIME:
        return (package.name, ((), ""), default_first_key(package.version))
    return (package.name, version_key(package.version), ())


def _broken_package(manifest_path: Path, folder: Path, error: ModelError) -> BrokenPackage:
    """What a broken package is called: its manifest's ``name`` if that much is readable, and its folder names."""
    nested = manifest_path.parent.parent != folder  # the layout name/version/model.json
    names = {manifest_path.parent.parent.name if nested else manifest_path.parent.name}
    version = manifest_path.parent.name if nested else None
    try:
        data = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = None
    if isinstance(data, dict):
        if isinstance(data.get("name"), str) and data["name"].strip():
            names.add(data["name"].strip())
        if isinstance(data.get("version"), str) and data["version"].strip():
            version = data["version"].strip()
    return BrokenPackage(manifest_path, error, frozenset(names), version)


def _manifest_paths(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    paths = []
    for child in sorted(folder.iterdir()):
        if not child.is_dir() or child.name.startswith("."):
            continue
        if (child / MANIFEST_NAME).is_file():
            paths.append(child / MANIFEST_NAME)
            continue
        paths.extend(sorted(p for p in child.glob(f"*/{MANIFEST_NAME}") if not p.parent.name.startswith(".")))
    return paths


def load_extra_folders() -> list[Path]:
    """Model folders the user added in earlier sessions."""
    path = config_dir() / _EXTRA_FOLDERS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [Path(p) for p in data.get("folders", []) if isinstance(p, str)] if isinstance(data, dict) else []


def save_extra_folders(folders: Iterable[str | Path]) -> None:
    atomic_write_text(
        config_dir() / _EXTRA_FOLDERS_FILE,
        json.dumps({"folders": [str(Path(f)) for f in folders]}, indent=2) + "\n",
    )


def new_package_folder(name: str, version: str, root: str | Path | None = None) -> Path:
    """Where a new package ``name:version`` goes (``user_models_dir()/name/version``); must not exist yet."""
    folder = Path(root or user_models_dir()) / name / version
    if (folder / MANIFEST_NAME).exists():
        raise ModelError(f"model {name}:{version} already exists; choose a new version", folder)
    return folder
