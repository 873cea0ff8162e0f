"""Discovers and loads the SavedModels under ``<model_root>/<task>/<version>/``."""

from __future__ import annotations

import gc
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import tensorflow as tf

from app.tfserving import RemoteSavedModel, TFServingClient
from training import model_store

Backend = Literal["inprocess", "tfserving"]

log = logging.getLogger("app.registry")


def settle_heap() -> None:
    """Exempt what is alive now (loaded models, TensorFlow, the libraries) from the cyclic
    garbage collector's full passes.

    Call once the process's long-lived objects exist: at startup after loading, and after a
    reload. A loaded service holds some 400,000 tracked objects, and each full collection walked
    all of them, stopping every thread for 140–250 ms (measured): the one-in-a-hundred
    request that took 270 ms in the benchmark. Unfreezing first lets the collection free the
    version a reload replaced.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


@dataclass(frozen=True)
class LoadedModel:
    task: str
    version: int
    path: Path
    manifest: dict[str, Any]
    saved_model: Any = field(repr=False)  # a loaded SavedModel, or a RemoteSavedModel
    backend: Backend = "inprocess"

    @property
    def predict(self) -> Callable[..., dict[str, tf.Tensor]]:
        """The ``serving_default`` signature (thread-safe; call it off the event loop)."""
        return self.saved_model.signatures["serving_default"]

    def warm_up(self) -> None:
        """Run the manifest's ``warmup_inputs`` once, so the first request is not the slow one.

        It doubles as a smoke check: a model that cannot answer it fails to load.
        """
        inputs = self.manifest.get("warmup_inputs")
        if inputs:
            self.predict(**{name: _tensor(value) for name, value in inputs.items()})

    def describe(self) -> dict[str, Any]:
        calibration = self.manifest.get("calibration")
        return {
            "task": self.task,
            "version": self.version,
            "metrics": self.manifest.get("metrics", {}),
            "signature": self.manifest.get("signature", {}),
            "created": self.manifest.get("created"),
            "backend": self.backend,
            # How a score becomes a probability, and the default answer threshold (QA); the fitting
            # table stays in the manifest.
            **({"calibration": {k: v for k, v in calibration.items() if k != "thresholds"}} if calibration else {}),
            **({"decoding": self.manifest["decoding"]} if self.manifest.get("decoding") else {}),
        }


def _tensor(value) -> tf.Tensor:
    """A warm-up input: literal values, or ``{"shape", "dtype", "fill"}`` for a filled tensor."""
    if isinstance(value, dict):
        return tf.fill(value["shape"], tf.constant(value["fill"], dtype=value["dtype"]))
    return tf.constant(value)


class ModelRegistry:
    """Holds the serving version of each task.

    Loading a version builds it beside the one serving, warms it up (the smoke
    check), and only then swaps it in; if any step fails, the old version
    keeps serving untouched.

    A task whose entry in ``backends`` is ``tfserving`` is not loaded here: its signatures
    call the same version on TensorFlow Serving through ``tfserving`` (warm-up included, so
    a version TensorFlow Serving lacks fails to load like a broken one).
    """

    def __init__(self, root: Path, backends: dict[str, Backend] | None = None, tfserving: TFServingClient | None = None):
        self.root = Path(root)
        self.backends = backends or {}
        self.tfserving = tfserving
        if "tfserving" in self.backends.values() and tfserving is None:
            raise ValueError("a task uses the tfserving backend but no TensorFlow Serving client was given")
        self._models: dict[str, LoadedModel] = {}
        self._errors: dict[str, str] = {}
        self._lock = threading.Lock()  # guards the two dicts; held only for the swap
        self._loading = threading.Lock()  # one load at a time, so reloads cannot interleave

    def discover(self) -> list[str]:
        """Tasks with at least one complete version on disk."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if model_store.versions(p))

    def load_all(self) -> None:
        """Serve the highest version of every task that loads.

        A version that fails (half-copied, corrupt, failing its warm-up) is reported in
        :meth:`errors` and the next lower one is tried, so one bad directory never takes a
        task down; a task with no loadable version is reported, and the others still serve.
        """
        for task in self.discover():
            failures = []
            for version in reversed(model_store.versions(self.root / task)):
                try:
                    self.load(task, version)
                    break
                except Exception as exc:  # noqa: BLE001 - a broken version must not stop the service
                    log.exception("model version failed to load", extra={"task": task, "version": version})
                    failures.append(f"version {version}: {type(exc).__name__}: {exc}")
            if failures:
                with self._lock:
                    self._errors[task] = "; ".join(failures)

    def load(self, task: str, version: int | None = None) -> LoadedModel:
        """Load ``version`` (default: the highest) of ``task`` and make it the serving one.

        Raises ``FileNotFoundError`` when there is no such version, and whatever loading
        or warming it up raised; in both cases the serving version is unchanged.
        """
        with self._loading:
            return self._load(task, version)

    def _load(self, task: str, version: int | None) -> LoadedModel:
        path = model_store.resolve_version(self.root / task, version)
        backend = self.backends.get(task, "inprocess")
        model = LoadedModel(
            task=task,
            version=int(path.name),
            path=path,
            manifest=model_store.read_manifest(path),
            saved_model=(
                RemoteSavedModel(self.tfserving, task, int(path.name))
                if backend == "tfserving"
                else tf.saved_model.load(str(path))
            ),
            backend=backend,
        )
        model.warm_up()
        with self._lock:
            self._models[task] = model
            self._errors.pop(task, None)
        log.info("model loaded", extra={"task": task, "version": model.version, "path": str(path), "backend": backend})
        return model

    def get(self, task: str) -> LoadedModel | None:
        with self._lock:
            return self._models.get(task)

    def loaded(self) -> list[LoadedModel]:
        with self._lock:
            return sorted(self._models.values(), key=lambda m: m.task)

    def errors(self) -> dict[str, str]:
        with self._lock:
            return dict(self._errors)
