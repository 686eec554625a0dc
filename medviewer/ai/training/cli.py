"""Command-line arguments and console output of a training run (``medviewer train`` and ``python -m medviewer.ai.training``).

Both entry points share these arguments, so the same command line works alone and
under ``torchrun --nproc_per_node=N`` (data parallel; only rank 0 prints).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from typing import Sequence, TextIO

from medviewer.ai.training.config import TrainingEvent, TrainingRequest, TrainingResult, TrainingSettings

#: Epoch cap when only a time budget is given.
EPOCHS_FOR_TIME_BUDGET = 10000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``train`` arguments."""
    parser.add_argument("--dataset", required=True, metavar="DIR", help="annotation dataset (nnU-Net v2 raw folder DatasetNNN_Name)")
    parser.add_argument("--base", required=True, metavar="MODEL",
                        help="model to start from: name, name:version, or a package folder")
    parser.add_argument("--name", required=True, metavar="NEW",
                        help="name of the new model (the base's own name makes a new version of it)")
    parser.add_argument("--version", default=None, help="version of the new model (default: the next free one)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=int, default=None, help="number of epochs (default 20)")
    budget.add_argument("--minutes", type=float, default=None, help="time budget in minutes instead of a number of epochs")
    parser.add_argument("--from-scratch", action="store_true", help="start from random weights (the base gives architecture and input settings)")
    parser.add_argument("--resume", action="store_true", help="continue an interrupted run of the same --name from its last checkpoint")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"],
                        help="where to train (auto: CUDA, then Apple MPS, then CPU)")
    parser.add_argument("--iterations-per-epoch", type=int, default=50, help="patch batches per epoch (default 50)")
    parser.add_argument("--batch-size", type=int, default=2, help="patches per batch and process (default 2)")
    parser.add_argument("--patch", type=int, nargs=3, default=None, metavar=("Z", "Y", "X"),
                        help="training patch in voxels of the model grid (default: from the model, at most 96)")
    parser.add_argument("--learning-rate", type=float, default=None, help="default 1e-3 (fine-tuning) or 3e-3 (from scratch)")
    parser.add_argument("--validation-fraction", type=float, default=0.2, help="share of cases kept for validation (default 0.2)")
    parser.add_argument("--validation-cases", default=None, metavar="ID,ID", help="comma-separated case ids to validate on")
    parser.add_argument("--patience", type=int, default=5, help="early stopping after this many epochs without improvement (0: off)")
    parser.add_argument("--flip-axes", default="auto", help="'auto', 'none' or axis letters from 'zyx'")
    parser.add_argument("--no-mixed-precision", action="store_true", help="train in float32 on CUDA too")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model-dir", action="append", default=[], metavar="DIR", help="also look for the base model in DIR")
    parser.add_argument("--checkpoint-dir", default=None, metavar="DIR",
                        help="where checkpoints go (default: the models folder's .checkpoints/NEW)")


def settings_from_arguments(args: argparse.Namespace) -> TrainingSettings:
    epochs = args.epochs if args.epochs is not None else (EPOCHS_FOR_TIME_BUDGET if args.minutes else 20)
    validation_cases = tuple(c.strip() for c in args.validation_cases.split(",") if c.strip()) if args.validation_cases else None
    return TrainingSettings(
        epochs=epochs,
        minutes=args.minutes,
        iterations_per_epoch=args.iterations_per_epoch,
        batch_size=args.batch_size,
        patch_size=tuple(args.patch) if args.patch else None,
        learning_rate=args.learning_rate,
        validation_fraction=args.validation_fraction,
        validation_cases=validation_cases,
        patience=args.patience,
        flip_axes=args.flip_axes,
        mixed_precision=not args.no_mixed_precision,
        seed=args.seed,
        device=args.device,
    )


def request_from_arguments(args: argparse.Namespace, argv: Sequence[str] | None = None) -> TrainingRequest:
    """A ``TrainingRequest`` from parsed ``train`` arguments (``argv`` is recorded in the model's provenance)."""
    command = "medviewer train " + " ".join(shlex.quote(a) for a in argv) if argv is not None else ""
    return TrainingRequest(
        dataset=args.dataset,
        base=args.base,
        name=args.name,
        settings=settings_from_arguments(args),
        version=args.version,
        from_scratch=args.from_scratch,
        resume=args.resume,
        checkpoint_dir=args.checkpoint_dir,
        extra_model_folders=tuple(args.model_dir),
        command_line=command,
    )


class ConsoleReporter:
    """Prints stages and one line per epoch (rank 0 only: the trainer sends events from rank 0 alone)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream  # None: whatever sys.stdout is when printing
        self.started = time.perf_counter()

    def __call__(self, event: TrainingEvent) -> None:
        if event.kind == "stage":
            self._print(event.message)
        elif event.kind == "epoch":
            labels = ", ".join(f"{k} {v:.3f}" for k, v in event.validation.items() if v is not None)
            score = "n/a" if event.score is None else f"{event.score:.3f}"
            if event.epoch == 0:
                self._print(f"starting point: validation score {score} ({labels})")
            else:
                self._print(f"{event.message}: loss {event.loss:.4f}, validation score {score} ({labels}), "
                            f"{event.seconds:.1f} s")

    def _print(self, text: str) -> None:
        elapsed = time.perf_counter() - self.started
        print(f"[{elapsed:7.1f} s] {text}", file=self.stream or sys.stdout, flush=True)


def print_result(result: TrainingResult, stream: TextIO | None = None) -> None:
    for line in result.summary_lines():
        print(line, file=stream or sys.stdout)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m medviewer.ai.training ...``: the same as ``medviewer train ...``."""
    from medviewer.ai.training.trainer import run_training
    from medviewer.core.errors import MedviewerError

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m medviewer.ai.training",
                                     description="fine-tune a model on an annotation dataset")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        result = run_training(request_from_arguments(args, argv), on_event=ConsoleReporter())
    except MedviewerError as error:
        print(f"medviewer: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("medviewer: interrupted; the last finished epoch's checkpoint is kept (rerun with --resume)", file=sys.stderr)
        return 130
    if result is not None:
        print_result(result)
    return 0
