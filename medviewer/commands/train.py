"""``medviewer train --dataset DIR --base MODEL --name NEW [--epochs N | --minutes M] ...``: retrain without a display.

Fine-tunes a segmentation or detection model (or trains one from scratch) on an
annotation dataset, prints one line per epoch and ends with the validation metrics
before vs after. The new model is a versioned package in the user's models folder.
Works unchanged under ``torchrun --nproc_per_node=N -m medviewer train ...``
(data parallel; only rank 0 prints and writes).
"""

from __future__ import annotations

import argparse
import sys

from medviewer.ai.training.cli import add_arguments
from medviewer.cli import command


@command("train", "fine-tune a segmentation or detection model on an annotation dataset (or train from scratch)",
         add_arguments)
def run(args: argparse.Namespace) -> int:
    from medviewer.ai.training.cli import ConsoleReporter, print_result, request_from_arguments
    from medviewer.services.training import run_training_job

    argv = sys.argv[sys.argv.index("train") + 1:] if "train" in sys.argv else None
    try:
        result = run_training_job(request_from_arguments(args, argv), on_event=ConsoleReporter())
    except KeyboardInterrupt:
        print("medviewer: interrupted; the last finished epoch's checkpoint is kept (rerun with --resume)",
              file=sys.stderr)
        return 130
    if result is not None:
        print_result(result)
    return 0
