"""The learning-rate schedule and a plain iteration loop, shared by fine-tuning and the demo-model scripts.

``Trainer`` (epochs, validation, checkpoints, data parallel) and ``train_iterations``
(a fixed number of steps, used to build the demo models from phantoms) follow the
same schedule: Adam with cosine decay from the full rate to 5 %, driven by whichever
is further along, the iterations done or the time budget used.
"""

from __future__ import annotations

import math
import time
from typing import Callable

import numpy as np
import torch

#: Last share of the learning rate at the end of the schedule.
FINAL_RATE_FACTOR = 0.05


def learning_rate_factor(done: float) -> float:
    """Cosine decay from 1 to ``FINAL_RATE_FACTOR`` over ``done`` = 0..1."""
    done = min(max(done, 0.0), 1.0)
    return FINAL_RATE_FACTOR + (1 - FINAL_RATE_FACTOR) * 0.5 * (1 + math.cos(math.pi * done))


def schedule_position(iterations_done: int, iterations_total: int, seconds: float, budget_s: float | None) -> float:
    """How far along the schedule is (0..1 and beyond): iterations or time budget, whichever is further."""
    done = iterations_done / max(1, iterations_total)
    if budget_s:
        done = max(done, seconds / budget_s)
    return done


def train_iterations(network: torch.nn.Module, step: Callable[[int], torch.Tensor], iterations: int,
                     learning_rate: float, minutes: float | None = None, report_every: int = 25,
                     report: Callable[[str], None] = print) -> list[float]:
    """Train ``network`` with Adam on the shared schedule; ``step(i)`` returns the loss of iteration ``i``.

    Stops early when the time budget ``minutes`` is used (then the learning rate has
    fully decayed). A run that finishes its iterations within the budget (or has
    none, ``minutes=None``) is reproducible bit for bit. Returns the loss of every
    iteration run.
    """
    optimizer = torch.optim.Adam(network.parameters(), lr=learning_rate)
    network.train()
    losses: list[float] = []
    started = time.perf_counter()
    budget = minutes * 60 if minutes else None
    for iteration in range(iterations):
        done = schedule_position(iteration, iterations, time.perf_counter() - started, budget)
        if done >= 1.0:
            report(f"time budget of {minutes} min reached after {iteration} iterations")
            break
        for group in optimizer.param_groups:
            group["lr"] = learning_rate * learning_rate_factor(done)
        optimizer.zero_grad(set_to_none=True)
        loss = step(iteration)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        if (iteration + 1) % report_every == 0:
            recent = np.mean(losses[-report_every:])
            report(f"iteration {iteration + 1}/{iterations}: loss {recent:.4f} ({time.perf_counter() - started:.0f} s)")
    network.eval()
    return losses
