"""Callbacks shared by the training tasks."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import keras

from training.runs import BEST_WEIGHTS


class HeldOutMetrics(keras.callbacks.Callback):
    """After each epoch, compute task metrics on held-out data and add them to the logs.

    The metrics appear as ``val_<name>`` so that ``ModelCheckpoint``,
    ``EarlyStopping`` and ``TensorBoard`` placed after this callback can use
    them (e.g. ``monitor="val_f1"``).
    """

    def __init__(self, compute: Callable[[], dict[str, float]]):
        super().__init__()
        self.compute = compute

    def on_epoch_end(self, epoch, logs=None):
        metrics = {f"val_{name}": value for name, value in self.compute().items()}
        if logs is not None:
            logs.update(metrics)
        print(" — " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()), flush=True)


class TrainingState(keras.callbacks.Callback):
    """Training time, epochs and the best monitored value, kept in ``path`` (JSON) across resumed runs."""

    def __init__(self, path: Path, monitor: str, baseline: float | None = None):
        super().__init__()
        self.path = Path(path)
        self.monitor = monitor
        self.state = {"seconds": 0.0, "epochs": 0, "best": baseline}
        if self.path.exists():
            self.state.update(json.loads(self.path.read_text()))

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        self.state["seconds"] += time.monotonic() - self._start
        self.state["epochs"] = epoch + 1
        value = (logs or {}).get(self.monitor)
        if value is not None and (self.state["best"] is None or value > self.state["best"]):
            self.state["best"] = float(value)
        self.path.write_text(json.dumps(self.state, indent=2))


def ema_options(momentum: float) -> dict:
    """Optimizer arguments for ``--ema MOMENTUM`` (0: off); pair with ``standard_callbacks(swap_ema=...)``."""
    # Keras checks the momentum even when the average is off.
    return {"use_ema": momentum > 0, "ema_momentum": momentum or 0.99}


def standard_callbacks(
    run_dir: Path,
    held_out: Callable[[], dict[str, float]],
    monitor: str,
    patience: int,
    baseline: float | None = None,
    plateau_patience: int = 1,
    schedule_monitor: str | None = None,
    swap_ema: bool = False,
) -> list:
    """Held-out metrics, best-on-dev weights, LR halving on a plateau, early stopping, resumable
    backups, TensorBoard, and the training state.

    A resumed run (same ``run_dir``) keeps its best weights unless it beats them; so does a
    warm-started one whose starting weights scored ``baseline``. The learning rate halves after
    ``plateau_patience`` epochs without a better ``schedule_monitor`` (default: ``monitor``), and
    training stops after ``patience`` such epochs.

    ``swap_ema`` (for an optimizer with ``use_ema=True``): the held-out metrics, the best weights
    and everything after them see the weights' exponential moving average, not the last step's.
    """
    state = TrainingState(run_dir / "timing.json", monitor, baseline)
    schedule_monitor = schedule_monitor or monitor
    return [
        # First, so that it backs up the training weights before the EMA ones are swapped in
        # (and restores them before they are swapped back).
        # Kept after the last epoch too, so a finished run can be extended with a larger --epochs
        # (Keras deletes it by default, and the extension would silently start from scratch).
        keras.callbacks.BackupAndRestore(str(run_dir / "backup"), delete_checkpoint=False),
        *([keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if swap_ema else []),
        HeldOutMetrics(held_out),
        keras.callbacks.ModelCheckpoint(
            str(run_dir / BEST_WEIGHTS),
            monitor=monitor,
            mode="max",
            save_best_only=True,
            save_weights_only=True,
            initial_value_threshold=state.state["best"],
        ),
        keras.callbacks.ReduceLROnPlateau(
            monitor=schedule_monitor, mode="max", factor=0.5, patience=plateau_patience, min_lr=1e-5
        ),
        keras.callbacks.EarlyStopping(monitor=schedule_monitor, mode="max", patience=patience),
        keras.callbacks.TensorBoard(str(run_dir / "logs")),
        state,
    ]
