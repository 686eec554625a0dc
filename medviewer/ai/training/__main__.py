"""``python -m medviewer.ai.training ...`` (also under ``torchrun``): see ``medviewer.ai.training.cli``."""

from medviewer.ai.training.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
