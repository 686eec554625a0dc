"""MONAI bundles run as medviewer models, offline, with their configuration checked before anything is built.

* ``folder``: recognises a bundle (``configs/metadata.json``, ``configs/inference.json|yaml``,
  ``models/model.pt`` or ``model.ts``) and describes it as a ``ModelManifest`` (torch-free);
* ``safety``: scans the whole configuration for what it would instantiate or evaluate (torch-free);
* ``trust``: bundles the user marked as trusted, remembered by a hash of their code and configuration;
* ``runner``: the bundle's own preprocessing, network, inferer and postprocessing built with MONAI's
  ``ConfigParser`` (after the scan), weights loaded safely, labels on the study's grid.
"""

from medviewer.ai.bundle.folder import MonaiBundle, find_bundles, is_bundle_folder, load_bundle

__all__ = ["MonaiBundle", "find_bundles", "is_bundle_folder", "load_bundle"]
