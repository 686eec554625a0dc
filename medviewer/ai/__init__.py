"""Model packages, registry, runtimes, inference and training: the only place torch/monai are imported."""
