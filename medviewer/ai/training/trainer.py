"""The training loop: fine-tune (or train from scratch) a model package on an annotation dataset.

``run_training(request, progress, cancel, on_event)`` is a Qt-free job:

1. read the dataset (clear errors naming a case with missing files or a label whose
   geometry differs from its image), match its labels (or reviewed boxes) to the
   model's outputs, split the cases into a fixed training and validation set;
2. measure the base model on the validation cases through the full pipeline (before);
3. train: balanced patches, flips / small rotations and scaling / intensity
   augmentation, Dice + cross-entropy (segmentation) or a heat-map loss (detection),
   Adam with cosine decay, mixed precision on CUDA; after every epoch a validation
   score on the model grid, a checkpoint (atomic) and early stopping;
4. write the best epoch's weights as a new package (hidden temporary folder), run it
   through the inference engine on the validation cases (after), write the metrics
   into its manifest and model card, and rename it into place.

Cancelling stops at the next batch: the last epoch's checkpoint stays (``resume``
continues from it) and no package is written. Under torchrun the loop runs data
parallel (``medviewer.ai.training.distributed``).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medviewer.ai import devices
from medviewer.ai.architectures import build_architecture
from medviewer.ai.manifest import ModelManifest
from medviewer.ai.packaging import save_package
from medviewer.ai.pipeline import load_package
from medviewer.ai.registry import ModelPackage, ModelRegistry
from medviewer.ai.runtime import load_state_dict_safely
from medviewer.ai.tasks import Task, trainable_tasks
from medviewer.ai.training import data as training_data
from medviewer.ai.training import package as packaging
from medviewer.ai.training.augment import augment_intensity, flip_axes_for, random_affine, random_flips
from medviewer.ai.training.checkpoint import load_checkpoint, remove_checkpoint, save_checkpoint
from medviewer.ai.training.config import (
    IGNORE_VALUE,
    EpochRecord,
    EventCallback,
    TrainingEvent,
    TrainingRequest,
    TrainingResult,
    TrainingSettings,
    no_events,
)
from medviewer.ai.training.distributed import DistributedContext, setup_distributed, weights_checksum
from medviewer.ai.training.evaluate import evaluate_package, model_grid_scores
from medviewer.ai.training.loop import learning_rate_factor, schedule_position
from medviewer.ai.training.losses import DetectionLoss, SegmentationLoss
from medviewer.ai.training.sampling import PatchSampler
from medviewer.core.errors import DatasetError, ModelError, OperationCancelled
from medviewer.core.jobs import NO_PROGRESS, CancelToken, ProgressCallback, scaled_progress
from medviewer.core.paths import user_models_dir
from medviewer.io.nnunet_dataset import NnUNetDataset

TRAINABLE_TASKS = trainable_tasks()
MODEL_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]*$")  # as model.json requires
VERSION_PATTERN = re.compile(r"^\d+(\.\d+)*([.+-][A-Za-z0-9.]+)?$")
#: Largest default training patch per axis (voxels): what fits a CPU or a small GPU.
MAX_DEFAULT_PATCH = 96
# Progress shares of the stages.
_PREPARE, _BEFORE, _TRAIN = 0.08, 0.14, 0.92


def find_base_package(base: str | Path, registry: ModelRegistry) -> ModelPackage:
    """The base model: a package folder, or ``name[:version]`` in the registry."""
    if isinstance(base, ModelPackage):
        return base
    folder = Path(str(base)).expanduser()
    if folder.is_dir() and (folder / "model.json").is_file():
        return load_package(folder)
    return registry.find(str(base))


def check_trainable(package: ModelPackage) -> None:
    """Refuse models that cannot be retrained here (wrong task, no built-in architecture)."""
    manifest = package.manifest
    if manifest.task not in TRAINABLE_TASKS:
        raise ModelError(
            f"{manifest.ref} is a {manifest.task} model; only segmentation and detection models can be retrained",
            package.folder,
        )
    if manifest.runtime.type != "builtin":
        raise ModelError(
            f"{manifest.ref} is stored as {manifest.runtime.type}; only packages with a built-in architecture "
            "(runtime 'builtin') can be retrained",
            package.folder,
        )


def network_divisor(manifest: ModelManifest) -> int:
    """What every patch side must be a multiple of (the product of the network's strides, at least 8)."""
    strides = manifest.runtime.arguments.get("strides")
    if isinstance(strides, (list, tuple)) and strides:
        product = 1
        for stride in strides:
            product *= int(stride if not isinstance(stride, (list, tuple)) else max(stride))
        return max(1, product)
    return 16


def default_patch(manifest: ModelManifest) -> tuple[int, int, int]:
    """A training patch (z, y, x) from the model's inference patch, capped for memory, divisible by its strides."""
    divisor = network_divisor(manifest)
    patch = []
    for size in manifest.inference.patch_size[::-1]:  # manifest is (x, y, z)
        size = min(int(size), MAX_DEFAULT_PATCH)
        patch.append(max(divisor, (size // divisor) * divisor))
    return tuple(patch)  # type: ignore[return-value]


class Trainer:
    """One training run (use ``run_training``)."""

    def __init__(self, request: TrainingRequest, progress: ProgressCallback = NO_PROGRESS,
                 cancel: CancelToken | None = None, on_event: EventCallback = no_events,
                 registry: ModelRegistry | None = None) -> None:
        self.request = request
        self.registry = registry
        self.progress = progress
        self.cancel = cancel or CancelToken()
        self.on_event = on_event
        self.warnings: list[str] = []
        self.context = DistributedContext()

    # ------------------------------------------------------------------ helpers
    def emit(self, event: TrainingEvent) -> None:
        if self.context.is_main:
            self.on_event(event)

    def stage(self, fraction: float, message: str) -> None:
        if self.context.is_main:
            self.progress(fraction, message)
            self.on_event(TrainingEvent("stage", message=message))

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    # ------------------------------------------------------------------ run
    def run(self) -> TrainingResult | None:
        request = self.request
        settings = request.settings
        device, device_warnings = devices.resolve_device(settings.device)
        for note in device_warnings:
            self.warn(note)
        self.context, device = setup_distributed(device)
        try:
            return self._run(device)
        finally:
            self.context.close()

    def _run(self, device: torch.device) -> TrainingResult | None:
        request, context = self.request, self.context
        started = time.perf_counter()
        models_dir = Path(request.models_dir) if request.models_dir else user_models_dir()
        registry = self.registry or ModelRegistry.default(extra_folders=[*request.extra_model_folders])
        if models_dir not in registry.folders:
            registry.add_folder(models_dir, origin="user")

        # ---------------------------------------------------------------- base model and dataset
        self.stage(0.0, "Checking the base model and the dataset")
        name = request.name.strip()
        if not MODEL_NAME_PATTERN.match(name):
            raise ModelError(f"the new model's name {name!r} must start with a lower-case letter or digit and hold "
                             "only lower-case letters, digits, '.', '_' and '-'")
        if request.version is not None and not VERSION_PATTERN.match(request.version):
            raise ModelError(f"the version {request.version!r} must look like 1.2.0")
        base = find_base_package(request.base, registry)
        check_trainable(base)
        base_manifest = base.manifest
        dataset = NnUNetDataset(request.dataset)
        training_data.check_dataset(dataset)
        checkpoint_dir = Path(request.checkpoint_dir) if request.checkpoint_dir else models_dir / ".checkpoints" / name

        state: dict[str, Any] | None = None
        settings = request.settings
        if request.resume:
            state = load_checkpoint(checkpoint_dir)
            info = state["info"]
            if info["base"] != base_manifest.ref or Path(info["dataset"]) != dataset.root.resolve():
                raise ModelError(
                    f"the checkpoint belongs to another run (base {info['base']}, dataset {info['dataset']}); "
                    "start without --resume",
                    checkpoint_dir,
                )
            stored = TrainingSettings.from_dict(info["settings"])
            settings = replace(stored, epochs=max(settings.epochs, 1), minutes=settings.minutes, device=settings.device)
            from_scratch = bool(info["from_scratch"])
            version = info["version"]
        else:
            from_scratch = request.from_scratch
            version = request.version or packaging.choose_version(name, base_manifest, registry, models_dir)
        if (packaging.final_folder(models_dir, name, version) / "model.json").exists():
            raise ModelError(f"model {name}:{version} already exists; choose a new name or version",
                             packaging.final_folder(models_dir, name, version))

        if base_manifest.task == Task.SEGMENTATION:
            plan = (training_data.scratch_plan(dataset.labels) if from_scratch
                    else training_data.segmentation_plan(dataset.labels, base_manifest))
        else:
            plan = training_data.detection_plan(base_manifest)
        for note in plan.warnings():
            self.warn(note)

        if state is not None:
            training_ids, validation_ids = state["info"]["training_cases"], state["info"]["validation_cases"]
        else:
            training_ids, validation_ids, notes = training_data.split_cases(
                dataset.case_ids(), settings.validation_fraction, settings.validation_cases)
            for note in notes:
                self.warn(note)
        if base_manifest.task == Task.DETECTION:
            boxes = sum(1 for c in training_ids for d in dataset.load_detections(c)
                        if d.status in training_data.POSITIVE_STATUSES)
            if boxes == 0:
                raise DatasetError("the training cases hold no accepted or edited boxes (detections/CASE.json) to learn from",
                                   dataset.root)

        # ---------------------------------------------------------------- data on the model grid
        read_progress = scaled_progress(self.progress if context.is_main else NO_PROGRESS, 0.0, _PREPARE)
        self.stage(0.0, f"Reading {len(training_ids)} training and {len(validation_ids)} validation case(s)")
        training_cases, _, notes = training_data.load_cases(
            dataset, training_ids, base_manifest, plan, progress=scaled_progress(read_progress, 0.0, 0.7), cancel=self.cancel)
        validation_cases, evaluation_cases, more_notes = training_data.load_cases(
            dataset, validation_ids, base_manifest, plan, keep_original=context.is_main,
            progress=scaled_progress(read_progress, 0.7, 1.0), cancel=self.cancel)
        for note in notes + more_notes:
            self.warn(note)
        if not any(np.any((c.target > 0) & (c.target != IGNORE_VALUE)) for c in training_cases):
            raise DatasetError(
                f"the training cases hold no voxels of the model's {'labels' if plan.task == Task.SEGMENTATION else 'classes'}"
                f" ({', '.join(plan.class_names)}) to learn from", dataset.root)

        patch = tuple(settings.patch_size) if settings.patch_size else default_patch(base_manifest)
        divisor = network_divisor(base_manifest)
        if any(p % divisor for p in patch):
            raise ModelError(f"the training patch {list(patch)} must be a multiple of {divisor} on every axis "
                             f"for {base_manifest.runtime.architecture} with these strides")
        settings = replace(settings, patch_size=patch)
        activation = "softmax" if base_manifest.task == Task.SEGMENTATION and base_manifest.outputs.activation == "softmax" else "sigmoid"
        threshold = (base_manifest.outputs.threshold if base_manifest.task == Task.SEGMENTATION
                     else base_manifest.outputs.probability_threshold)
        roi = tuple(base_manifest.inference.patch_size[::-1])

        # ---------------------------------------------------------------- network and optimiser
        parts = packaging.output_manifest_dict(base_manifest, plan, from_scratch)
        architecture = base_manifest.runtime.architecture
        arguments = parts["arguments"]
        torch.manual_seed(settings.seed)  # the same initial weights on every rank
        network = build_architecture(architecture, arguments, str(base.folder / "model.json"))
        if not from_scratch:
            network.load_state_dict(load_state_dict_safely(base.weights_path), strict=True)
        network.to(device)
        learning_rate = settings.learning_rate or (3e-3 if from_scratch else 1e-3)
        optimizer = torch.optim.Adam(network.parameters(), lr=learning_rate)
        use_amp = settings.mixed_precision and device.type == "cuda"
        scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
        loss_function: torch.nn.Module = (
            SegmentationLoss(plan.classes, activation) if plan.task == Task.SEGMENTATION else DetectionLoss(plan.classes)
        )
        history: list[EpochRecord] = []
        best_state = {k: v.detach().cpu().clone() for k, v in network.state_dict().items()}
        best_score: float | None = None
        best_epoch = 0
        stale_epochs = 0
        seconds_trained = 0.0
        before: dict[str, Any] = {}
        start_epoch = 1
        if state is not None:
            info = state["info"]
            network.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            if use_amp and state.get("scaler"):
                scaler.load_state_dict(state["scaler"])
            best_state = state["best_model"]
            history = [EpochRecord.from_dict(r) for r in info["history"]]
            best_score, best_epoch, stale_epochs = info["best_score"], info["best_epoch"], info["stale_epochs"]
            seconds_trained = float(info["seconds_trained"])
            before = info["before"]
            start_epoch = int(info["epoch"]) + 1
            self.warnings = [*info.get("warnings", [])] + [w for w in self.warnings if w not in info.get("warnings", [])]
        if context.active:
            network = torch.nn.parallel.DistributedDataParallel(
                network, device_ids=[device.index] if device.type == "cuda" else None)
        module = network.module if context.active else network

        # ---------------------------------------------------------------- before
        if context.is_main and state is None:
            self.stage(_PREPARE, f"Measuring {base_manifest.ref} on the validation cases (before)")
            before = evaluate_package(base, evaluation_cases, plan, scaled_progress(self.progress, _PREPARE, _BEFORE),
                                      self.cancel, device=str(device))
            self.emit(TrainingEvent("evaluation", validation={"before": before}, message="before"))
            start_scores, start_score = model_grid_scores(module, validation_cases, plan, roi, device, activation,
                                                          threshold, self.cancel)
            self.emit(TrainingEvent("epoch", epoch=0, validation=start_scores, score=start_score,
                                    message="starting point"))
            if not from_scratch:
                best_score = start_score  # the base itself is the model to beat
        context.barrier()

        # ---------------------------------------------------------------- training
        sampler = PatchSampler(
            [c.image for c in training_cases], [c.target for c in training_cases], patch,
            foreground_fraction=settings.foreground_fraction, pad_values=[c.background for c in training_cases],
            per_object=plan.task == Task.DETECTION,
            hard_negatives=[c.hard_negatives for c in training_cases] if plan.task == Task.DETECTION else None,
            hard_fraction=settings.hard_negative_fraction if plan.task == Task.DETECTION else 0.0,
            seed=settings.seed,
        )
        flips = flip_axes_for(settings.flip_axes, plan.task, plan.class_names)
        total_epochs = settings.epochs
        total_iterations = total_epochs * settings.iterations_per_epoch
        budget = settings.minutes * 60.0 if settings.minutes else None
        stopped_because = f"{total_epochs} epochs done"
        checkpoint_info_base = {
            "base": base_manifest.ref, "dataset": str(dataset.root.resolve()), "dataset_name": dataset.name,
            "name": name, "version": version, "task": plan.task, "from_scratch": from_scratch,
            "training_cases": training_ids, "validation_cases": validation_ids,
        }
        epoch = start_epoch - 1
        if start_epoch > total_epochs:
            stopped_because = f"{total_epochs} epochs done"
        for epoch in range(start_epoch, total_epochs + 1):
            epoch_started = time.perf_counter()
            sampler.reseed([settings.seed, context.rank, epoch])
            generator = torch.Generator().manual_seed(settings.seed * 100003 + context.rank * 1009 + epoch)
            network.train()
            losses: list[float] = []
            out_of_time = False
            for iteration in range(settings.iterations_per_epoch):
                done_iterations = (epoch - 1) * settings.iterations_per_epoch + iteration
                elapsed = seconds_trained + time.perf_counter() - epoch_started
                done = schedule_position(done_iterations, total_iterations, elapsed, budget)
                cancelled = self.cancel.cancelled
                decision = context.broadcast_values([float(cancelled), float(done >= 1.0 and iteration > 0), done])
                if decision[0]:
                    raise OperationCancelled("training cancelled; the last finished epoch's checkpoint is kept"
                                             " (resume to continue)")
                if decision[1]:
                    out_of_time = True
                    break
                rate = learning_rate * learning_rate_factor(decision[2])
                for group in optimizer.param_groups:
                    group["lr"] = rate
                images, targets = sampler.sample(settings.batch_size)
                images_t, targets_t = torch.from_numpy(images), torch.from_numpy(targets)
                images_t, targets_t = random_flips(images_t, targets_t, flips, generator)
                images_t, targets_t = random_affine(images_t, targets_t, generator, settings.rotation_degrees,
                                                    settings.scale_range, settings.augment_probability)
                if settings.intensity_augmentation:
                    images_t = augment_intensity(images_t, generator)
                images_t, targets_t = images_t.to(device), targets_t.to(device)
                optimizer.zero_grad(set_to_none=True)
                autocast = torch.autocast("cuda", dtype=torch.float16) if use_amp else contextlib.nullcontext()
                with autocast:
                    output = network(images_t)
                    if isinstance(output, (list, tuple)):
                        output = output[0]
                loss = loss_function(output.float(), targets_t)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                losses.append(float(loss.detach()))
                if (iteration + 1) % max(1, settings.report_every) == 0:
                    self.emit(TrainingEvent("iteration", epoch=epoch, iteration=done_iterations + 1,
                                            loss=float(np.mean(losses[-settings.report_every:])), learning_rate=rate))
                if context.is_main:
                    fraction = max((done_iterations + 1) / total_iterations,
                                   (elapsed / budget) if budget else 0.0)
                    self.progress(_BEFORE + (_TRAIN - _BEFORE) * min(1.0, fraction),
                                  f"epoch {epoch}/{total_epochs}, loss {np.mean(losses[-10:]):.4f}")
            epoch_loss = context.mean(float(np.mean(losses)) if losses else float("nan"))
            scores: dict[str, float | None] = {}
            score = None
            if context.is_main:
                scores, score = model_grid_scores(module, validation_cases, plan, roi, device, activation, threshold,
                                                  self.cancel)
            shared = context.broadcast_values([float("nan") if score is None else score])
            score = None if math.isnan(shared[0]) else shared[0]
            seconds = time.perf_counter() - epoch_started
            seconds_trained += seconds
            record = EpochRecord(epoch, round(epoch_loss, 5), None if score is None else round(score, 4),
                                 {k: (None if v is None else round(v, 4)) for k, v in scores.items()},
                                 round(seconds, 2), len(losses), optimizer.param_groups[0]["lr"])
            history.append(record)
            if score is not None and (best_score is None or score > best_score + settings.min_improvement):
                best_score, best_epoch, stale_epochs = score, epoch, 0
                best_state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
            else:
                stale_epochs += 1
            if context.is_main:
                info = {**checkpoint_info_base, "epoch": epoch, "settings": settings.to_dict(),
                        "history": [r.to_dict() for r in history], "best_score": best_score, "best_epoch": best_epoch,
                        "stale_epochs": stale_epochs, "seconds_trained": seconds_trained, "before": before,
                        "warnings": self.warnings}
                save_checkpoint(checkpoint_dir, module.state_dict(), optimizer.state_dict(),
                                scaler.state_dict() if use_amp else {}, best_state, info)
            self.emit(TrainingEvent("epoch", epoch=epoch, loss=record.loss, validation=record.validation,
                                    score=record.score, seconds=record.seconds, learning_rate=record.learning_rate,
                                    message=f"epoch {epoch}/{total_epochs}"))
            if out_of_time or (budget is not None and seconds_trained >= budget):
                stopped_because = f"time budget of {settings.minutes:g} min used"
                break
            if settings.patience and stale_epochs >= settings.patience:
                stopped_because = f"early stopping: no better validation score for {settings.patience} epochs"
                break

        # ---------------------------------------------------------------- agreement between ranks
        checksums = context.gather_strings(weights_checksum(module.state_dict()))
        if len(set(checksums)) > 1:
            raise ModelError(f"the training processes ended with different weights ({checksums}); the run is not used")
        if best_epoch == 0 and history:
            if best_score is not None:
                self.warn("no epoch beat the base model's validation score on the model grid; the package holds "
                          "the last epoch's weights")
            else:
                self.warn("no validation score could be computed; the package holds the last epoch's weights")
            best_state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
            best_epoch = history[-1].epoch
        if not context.is_main:
            context.barrier()
            return None
        try:
            result = self._write_package(base, plan, from_scratch, name, version, models_dir, best_state, settings,
                                         training_ids, validation_ids, evaluation_cases, before, history, best_epoch,
                                         stopped_because, started, dataset, context, checksums, device)
        finally:
            context.barrier()
        remove_checkpoint(checkpoint_dir)
        return result

    # ------------------------------------------------------------------ output
    def _write_package(self, base: ModelPackage, plan, from_scratch: bool, name: str, version: str, models_dir: Path,
                       best_state: dict, settings: TrainingSettings, training_ids: list[str], validation_ids: list[str],
                       evaluation_cases, before: dict, history: list[EpochRecord], best_epoch: int,
                       stopped_because: str, started: float, dataset: NnUNetDataset, context: DistributedContext,
                       checksums: list[str], device: torch.device) -> TrainingResult:
        base_manifest = base.manifest
        command = self.request.command_line or (
            f"medviewer train --dataset {dataset.root} --base {base_manifest.ref} --name {name}"
            + (" --from-scratch" if from_scratch else ""))
        training_description = (
            f"{len(training_ids)} corrected case(s) of the annotation dataset {dataset.name} "
            f"({dataset.root.name}); validation on {len(validation_ids)} other case(s). Parent model: "
            f"{base_manifest.ref} ({base_manifest.provenance.training_data})"
        )
        # Median over full epochs (the last one may have been cut short by the time budget).
        full = [r.seconds for r in history if r.iterations == settings.iterations_per_epoch] or [r.seconds for r in history]
        seconds_per_epoch = float(np.median(full)) if full else 0.0

        def metrics(after: dict) -> dict:
            return {
                "validation_before": before,
                "validation_after": after,
                "dataset": dataset.name,
                "dataset_folder": dataset.root.name,
                "training_cases": training_ids,
                "validation_cases": validation_ids,
                "settings": settings.to_dict(),
                "from_scratch": from_scratch,
                "epochs": len(history),
                "best_epoch": best_epoch,
                "stopped_because": stopped_because,
                "seconds_per_epoch": round(seconds_per_epoch, 2),
                "training_minutes": round(sum(r.seconds for r in history) / 60.0, 2),
                "final_training_loss": history[-1].loss if history else None,
                "history": [r.to_dict() for r in history],
                "distributed": {"world_size": context.world_size, "backend": context.backend or "none",
                                "weight_checksums": checksums},
                "warnings": list(self.warnings),
            }

        partial = packaging.partial_folder(models_dir, name, version)
        packaging.remove_partial(partial)
        try:
            self.stage(_TRAIN, f"Measuring the new model {name}:{version} on the validation cases (after)")
            draft = packaging.new_manifest(base_manifest, name, version, plan, from_scratch, dataset.name,
                                           metrics({}), training_description, command)
            save_package(partial, draft, best_state, f"# {draft.display_name}\n\n(being written)\n")
            written = load_package(partial, origin="user")
            after = evaluate_package(written, evaluation_cases, plan, scaled_progress(self.progress, _TRAIN, 0.99),
                                     self.cancel, device=str(device))
            self.emit(TrainingEvent("evaluation", validation={"before": before, "after": after}, message="after"))
            final = packaging.new_manifest(base_manifest, name, version, plan, from_scratch, dataset.name,
                                           metrics(after), training_description, command)
            result = TrainingResult(
                package_folder=packaging.final_folder(models_dir, name, version), name=name, version=version,
                task=plan.task, base_ref=base_manifest.ref, dataset_name=dataset.name, training_cases=training_ids,
                validation_cases=validation_ids, before=before, after=after, history=history, best_epoch=best_epoch,
                stopped_because=stopped_because, seconds_per_epoch=seconds_per_epoch,
                seconds_total=time.perf_counter() - started, warnings=list(self.warnings),
                world_size=context.world_size,
            )
            card = packaging.model_card(final, base_manifest, result, settings.to_dict(), from_scratch)
            save_package(partial, final, best_state, card)
            self.cancel.raise_if_cancelled()
            packaging.publish(partial, result.package_folder)
        except BaseException:
            packaging.remove_partial(partial)
            raise
        self.progress(1.0, f"wrote {name}:{version}")
        return result


def run_training(request: TrainingRequest, progress: ProgressCallback = NO_PROGRESS, cancel: CancelToken | None = None,
                 on_event: EventCallback = no_events, registry: ModelRegistry | None = None) -> TrainingResult | None:
    """Train as ``request`` says; returns the result on rank 0 (``None`` on other ranks of a torchrun group).

    ``registry`` is where the base model is looked up (default: the user's registry).
    """
    return Trainer(request, progress, cancel, on_event, registry).run()


def is_distributed_launch() -> bool:
    """True when this process was started by torchrun with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1) > 1
