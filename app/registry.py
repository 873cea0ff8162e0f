"""Discovers and loads the SavedModels under ``<model_root>/<task>/<version>/``."""

from __future__ import annotations

import gc
import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Literal

import tensorflow as tf

from app import model_store
from app.tasks.catalog import RUNTIMES, TaskRuntime
from app.tasks.spec import ModelSpec, validate_spec
from app.tfserving import RemoteSavedModel, TFServingClient

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


class ModelUnavailable(Exception):
    """No version of the task is loaded."""


@dataclass(eq=False)
class LoadedModel:
    """One loaded version: its spec (the validated manifest) and its task's pipeline bound to it.

    A request holds it from admission to answer (:meth:`ModelRegistry.lease`), so a reload never
    mixes two versions in one answer; ``in_flight`` counts those requests.
    """

    task: str
    version: int
    path: Path
    spec: ModelSpec
    saved_model: Any = field(repr=False)  # a loaded SavedModel, or a RemoteSavedModel
    backend: Backend = "inprocess"
    pipeline: Any = field(default=None, repr=False)
    in_flight: int = 0
    retired: bool = False  # a newer version serves; released when in_flight drops to 0

    @property
    def predict(self) -> Callable[..., dict[str, tf.Tensor]]:
        """The ``serving_default`` signature (thread-safe; call it off the event loop)."""
        return self.saved_model.signatures["serving_default"]

    def warm_up(self) -> None:
        """Run the manifest's ``warmup_inputs`` once, so the first request is not the slow one.

        It doubles as a smoke check: a model that cannot answer it fails to load.
        """
        inputs = self.spec.warmup_inputs
        if inputs:
            self.predict(**{name: _tensor(value) for name, value in inputs.items()})

    def describe(self) -> dict[str, Any]:
        return {"task": self.task, "version": self.version, "backend": self.backend, **self.spec.public()}


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

    def __init__(
        self,
        root: Path,
        backends: dict[str, Backend] | None = None,
        tfserving: TFServingClient | None = None,
        runtimes: dict[str, TaskRuntime] = RUNTIMES,
    ):
        self.root = Path(root)
        self.runtimes = runtimes
        self.backends = backends or {}
        self.tfserving = tfserving
        if "tfserving" in self.backends.values() and tfserving is None:
            raise ValueError("a task uses the tfserving backend but no TensorFlow Serving client was given")
        self._models: dict[str, LoadedModel] = {}
        self._errors: dict[str, str] = {}
        self._lock = threading.Lock()  # guards the two dicts; held only for the swap
        self._loading = threading.Lock()  # one load at a time, so reloads cannot interleave

    def discover(self) -> list[str]:
        """Tasks with a runtime and at least one complete version on disk."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.name in self.runtimes and model_store.versions(p))

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
        runtime = self.runtimes[task]
        spec = validate_spec(runtime.spec, model_store.read_manifest(path))  # before the weights: a bad manifest fails fast
        model = LoadedModel(
            task=task,
            version=int(path.name),
            path=path,
            spec=spec,
            saved_model=(
                RemoteSavedModel(self.tfserving, task, int(path.name))
                if backend == "tfserving"
                else tf.saved_model.load(str(path))
            ),
            backend=backend,
        )
        model.pipeline = runtime.bind(model.predict, spec)
        model.warm_up()
        with self._lock:
            previous = self._models.get(task)
            self._models[task] = model
            self._errors.pop(task, None)
            if previous is not None:
                previous.retired = True
                released = previous.in_flight == 0
        log.info("model loaded", extra={"task": task, "version": model.version, "path": str(path), "backend": backend})
        if previous is not None and released:
            log.info("model released", extra={"task": task, "version": previous.version})
        return model

    @contextmanager
    def lease(self, task: str) -> Iterator[LoadedModel]:
        """The version serving ``task`` now, held until the block ends: what a request is answered
        by from admission to answer, whatever reloads meanwhile. A retired version is released
        (for the garbage collector) when its last lease ends."""
        with self._lock:
            model = self._models.get(task)
            if model is None:
                raise ModelUnavailable(f"no {task} model is loaded")
            model.in_flight += 1
        try:
            yield model
        finally:
            with self._lock:
                model.in_flight -= 1
                released = model.retired and model.in_flight == 0
            if released:
                log.info("model released", extra={"task": task, "version": model.version})
                # The reload's settle_heap ran while this version was still held, and froze it; its
                # reference cycles are collectable only after another pass.
                threading.Thread(target=settle_heap, name="settle-heap", daemon=True).start()

    def get(self, task: str) -> LoadedModel | None:
        with self._lock:
            return self._models.get(task)

    def loaded(self) -> list[LoadedModel]:
        with self._lock:
            return sorted(self._models.values(), key=lambda m: m.task)

    def errors(self) -> dict[str, str]:
        with self._lock:
            return dict(self._errors)
