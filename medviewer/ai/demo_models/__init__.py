"""Training scripts of the built-in demo models: ``python -m medviewer.ai.demo_models.<name>`` (see each model card)."""
