"""nnU-Net v2 trained-model folders run as medviewer models, offline and without nnU-Net installed.

* ``folder``: recognises ``<Trainer>__<Plans>__<configuration>/`` and ``Dataset*/`` folders, reads
  ``plans.json`` / ``dataset.json`` and describes the model as a ``ModelManifest`` (torch-free);
* ``preprocessing``: nnU-Net's transpose, crop to the non-zero region, per-channel normalisation and
  resampling to the target spacing (and back), in NumPy/SciPy/scikit-image;
* ``network``: the network from the plans' architecture description (``dynamic_network_architectures``)
  and checkpoints read with ``torch.load(weights_only=True)``;
* ``predictor``: Gaussian-weighted sliding window, mirroring, fold ensembling, labels on the study grid.
"""

from medviewer.ai.nnunet.folder import (
    NnUNetModel,
    find_nnunet_models,
    is_dataset_folder,
    is_trained_model_folder,
    load_nnunet_model,
)

__all__ = ["NnUNetModel", "find_nnunet_models", "is_dataset_folder", "is_trained_model_folder", "load_nnunet_model"]
