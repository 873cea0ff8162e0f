"""Loads the model store's SavedModels (``app/model_store.py``) and chooses the version that
answers each request.

Several models may answer one task (``ner`` and ``ner-fine``), and several versions of a model
may be loaded at once. A request names what answers it (:class:`Target`: a model, a version or a
label) or gets its model's traffic split, sticky per caller, or else its serving version (the one
the last reload chose). Whatever it gets, it holds from admission to answer (:meth:`ModelRegistry.lease`).
"""

from __future__ import annotations

import gc
import logging
import os
import resource
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Literal

import tensorflow as tf

from app import model_store
from app.tasks.catalog import RUNTIMES, TaskRuntime
from app.tasks.choice import Target
from app.tasks.spec import ModelSpec, validate_spec
from app.tfserving import RemoteSavedModel, TFServingClient
from app.traffic import TrafficSplit

Backend = Literal["inprocess", "tfserving"]
ServeVersions = Literal["latest", "all"]
# A version is estimated at this many bytes of memory per byte on disk (a second copy of each
# bundled model measured 6× for NER and QA, 7× for headlines, 28× for spectra's templates and
# scans), or at what a loaded version of the same model took, if more (docs/serving.md, Versions).
MEMORY_PER_DISK_BYTE = 8

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


def resident_bytes() -> int:
    """The process's resident memory now (Linux), else its peak."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class ModelUnavailable(Exception):
    """No version of the model is loaded (503)."""


class NotServed(LookupError):
    """The model, version or label a request or an admin named is not loaded or does not exist (404)."""


class Refused(Exception):
    """An admin action that cannot be done as asked; the message says why (409)."""


class MemoryRefused(Refused):
    def __init__(self, needed: int, left: int):
        super().__init__(
            f"loading it needs about {needed / 2**20:.0f} MB (an estimate) and {max(left, 0) / 2**20:.0f} MB "
            "are left under APP_MEMORY_LIMIT_MB; unload a version first"
        )


@dataclass(eq=False)
class LoadedModel:
    """One loaded version: its spec (the validated manifest) and its task's pipeline bound to it.

    A request holds it from admission to answer (:meth:`ModelRegistry.lease`), so a reload never
    mixes two versions in one answer; ``in_flight`` counts those requests.
    """

    model: str
    task: str
    version: int
    path: Path
    spec: ModelSpec
    saved_model: Any = field(repr=False)  # a loaded SavedModel, or a RemoteSavedModel
    backend: Backend = "inprocess"
    pipeline: Any = field(default=None, repr=False)
    resident_bytes: int = 0  # what loading it added to the process, measured
    in_flight: int = 0
    retired: bool = False  # no longer chosen; released when in_flight drops to 0

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
        return {"model": self.model, "task": self.task, "version": self.version, "backend": self.backend, **self.spec.public()}


def _tensor(value) -> tf.Tensor:
    """A warm-up input: literal values, or ``{"shape", "dtype", "fill"}`` for a filled tensor."""
    if isinstance(value, dict):
        return tf.fill(value["shape"], tf.constant(value["fill"], dtype=value["dtype"]))
    return tf.constant(value)


class ServedModel:
    """One model of the store: its loaded versions, its labels (in the store) and its traffic split."""

    def __init__(self, name: str, task: str, directory: Path):
        self.name, self.task, self.directory = name, task, directory
        self.versions: dict[int, LoadedModel] = {}
        self.serving: int | None = None  # what a request that names nothing gets without a split
        self.labels = model_store.Labels(directory)
        self.traffic = TrafficSplit()

    def pick(self, target: Target, caller: str) -> LoadedModel:
        """The loaded version ``target`` names, or the split's or the serving one."""
        if not self.versions:
            raise ModelUnavailable(f"no version of model {self.name!r} is loaded")
        if target.label is not None:
            labels = self.labels.read()
            if target.label not in labels:
                raise NotServed(f"model {self.name!r} has no label {target.label!r} (labels: {_listed(labels)})")
            version, named = labels[target.label], f"label {target.label!r} (version {labels[target.label]})"
            if target.version is not None and target.version != version:
                raise NotServed(f"{named} of model {self.name!r} is not version {target.version}")
        elif target.version is not None:
            version, named = target.version, f"version {target.version}"
        else:
            version, named = self.traffic.choose(caller) or self.serving, "its serving version"
        if version not in self.versions:
            raise NotServed(f"{named} of model {self.name!r} is not loaded (loaded: {_listed(sorted(self.versions))})")
        return self.versions[version]

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.name,
            "task": self.task,
            "default": self.name == self.task,
            "serving_version": self.serving,
            "loaded_versions": sorted(self.versions),
            "labels": self.labels.read(),
            "traffic": {str(v): w for v, w in self.traffic.weights.items()},
        }


def _listed(items) -> str:
    return ", ".join(map(str, items)) or "none"


class ModelRegistry:
    """Holds the loaded versions of every model.

    Loading a version builds it beside the ones serving, warms it up (the smoke check), and only
    then makes it choosable; if any step fails, what served before still serves untouched.

    A task whose entry in ``backends`` is ``tfserving`` is not loaded here: its signatures call
    the same model and version on TensorFlow Serving through ``tfserving`` (warm-up included, so
    a version TensorFlow Serving lacks fails to load like a broken one).

    ``observe(model, outcome, seconds)`` is told of every lease that ends (``outcome``: ``ok`` or
    ``error``), for per-version metrics.
    """

    def __init__(
        self,
        root: Path,
        backends: dict[str, Backend] | None = None,
        tfserving: TFServingClient | None = None,
        runtimes: dict[str, TaskRuntime] = RUNTIMES,
        serve_versions: ServeVersions = "latest",
        memory_limit_mb: int = 0,
        observe: Callable[[LoadedModel, str, float], None] | None = None,
    ):
        self.root = Path(root)
        self.runtimes = runtimes
        self.backends = backends or {}
        self.tfserving = tfserving
        self.serve_versions = serve_versions
        self.memory_limit = memory_limit_mb * 2**20
        self.observe = observe
        if "tfserving" in self.backends.values() and tfserving is None:
            raise ValueError("a task uses the tfserving backend but no TensorFlow Serving client was given")
        self._served: dict[str, ServedModel] = {}
        self._errors: dict[str, str] = {}
        self._lock = threading.Condition()  # guards the models' versions; held only for swaps and picks
        self._loading = threading.Lock()  # one load at a time, so loads cannot interleave

    def discover(self) -> dict[str, str]:
        """Each model in the store with a version and a runtime for its task: model → task."""
        return model_store.models(self.root, set(self.runtimes))

    def load_all(self) -> None:
        """Load every model: its highest version that loads (``serve_versions="latest"``) or every
        version that loads (``"all"``), the highest serving.

        A version that fails (half-copied, corrupt, failing its warm-up) is reported in
        :meth:`errors` and, with ``latest``, the next lower one is tried, so one bad directory never
        takes a model down; a model with no loadable version is reported, and the others still serve.
        """
        for name in self.discover():
            failures = []
            present = model_store.versions(self.root / name)
            # Ascending with "all", so the highest that loads ends up serving.
            for version in present if self.serve_versions == "all" else reversed(present):
                try:
                    self.load(name, version)
                except Exception as exc:  # noqa: BLE001 - a broken version must not stop the service
                    log.exception("model version failed to load", extra={"model": name, "version": version})
                    failures.append(f"version {version}: {type(exc).__name__}: {exc}")
                    continue
                if self.serve_versions == "latest":
                    break
            if failures:
                with self._lock:
                    self._errors[name] = "; ".join(failures)

    def load(self, model: str, version: int | None = None) -> LoadedModel:
        """Load ``version`` (default: the highest) of ``model`` and make it the serving one (a
        reload). With ``serve_versions="latest"`` the version serving before is unloaded once its
        requests finish, unless the traffic split still sends callers to it.

        Raises ``FileNotFoundError`` when there is no such version, :class:`MemoryRefused`, and
        whatever loading or warming it up raised; in every case what served before still serves.
        """
        with self._loading:
            loaded = self._build(model, version)
            with self._lock:
                served = self._entry(model, loaded.task)
                before = served.versions.get(served.serving)
                replaced = served.versions.get(loaded.version)
                served.versions[loaded.version] = loaded
                served.serving = loaded.version
                self._errors.pop(model, None)
                retire = [replaced] if replaced else []
                if (
                    self.serve_versions == "latest" and before is not None and before.version != loaded.version
                    and before.version not in served.traffic.weights
                ):
                    retire.append(served.versions.pop(before.version))
                released = [m for m in retire if self._retire(m)]
        log.info("model loaded", extra={"model": model, "version": loaded.version, "path": str(loaded.path), "backend": loaded.backend})
        for old in released:
            log.info("model released", extra={"model": model, "version": old.version})
        return loaded

    def add(self, model: str, version: int) -> LoadedModel:
        """Load ``version`` of ``model`` beside the loaded ones (serving only if none was); a
        version already loaded is returned as it is. Raises as :meth:`load` does."""
        with self._loading:
            with self._lock:
                served = self._served.get(model)
                if served is not None and version in served.versions:
                    return served.versions[version]
            loaded = self._build(model, version)
            with self._lock:
                served = self._entry(model, loaded.task)
                served.versions[version] = loaded
                if served.serving is None:
                    served.serving = version
                    self._errors.pop(model, None)
        log.info("model loaded", extra={"model": model, "version": version, "path": str(loaded.path), "backend": loaded.backend})
        return loaded

    def unload(self, model: str, version: int, wait_s: float = 60.0) -> int:
        """Stop choosing ``version`` of ``model`` at once (later requests naming it get
        :class:`NotServed`) and wait up to ``wait_s`` for the requests holding it to finish;
        returns how many still hold it then (0: it is released).

        Refused for the only loaded version and for one the traffic split sends callers to.
        """
        with self._lock:
            served = self._served.get(model)
            if served is None or version not in served.versions:
                raise NotServed(f"version {version} of model {model!r} is not loaded")
            if len(served.versions) == 1:
                raise Refused(f"version {version} is the only loaded version of {model!r}; load another first")
            if version in served.traffic.weights:
                raise Refused(f"the traffic split of {model!r} sends callers to version {version}; change it first")
            unloaded = served.versions.pop(version)
            if served.serving == version:
                served.serving = max(served.versions)
            self._retire(unloaded)
            deadline = time.monotonic() + wait_s
            while unloaded.in_flight and (left := deadline - time.monotonic()) > 0:
                self._lock.wait(left)
            remaining = unloaded.in_flight
        log.info("model unloaded", extra={"model": model, "version": version, "in_flight": remaining})
        return remaining

    def set_label(self, model: str, label: str, version: int) -> dict[str, int]:
        """Point ``label`` of ``model`` at ``version`` (which must be in the store) in the store's
        labels file; returns the model's labels."""
        model_store.resolve_version(self.root / model, version)  # FileNotFoundError: no such version
        with self._lock:
            served = self._served.get(model)
            if served is None:
                raise NotServed(f"no model {model!r} is loaded")
            try:
                return served.labels.set(label, version)
            except OSError as exc:  # a read-only store (a model store baked into an image)
                raise Refused(f"the labels of {model!r} cannot be written: the model store is not writable ({exc.strerror})") from None

    def set_traffic(self, model: str, weights: dict[int, int]) -> dict[int, int]:
        """Split the callers that name no version of ``model`` by ``weights`` over its loaded
        versions (``{}``: no split, the serving version answers)."""
        with self._lock:
            served = self._served.get(model)
            if served is None:
                raise NotServed(f"no model {model!r} is loaded")
            missing = [v for v, w in weights.items() if w > 0 and v not in served.versions]
            if missing:
                raise Refused(f"versions {_listed(missing)} of {model!r} are not loaded (loaded: {_listed(sorted(served.versions))})")
            if weights and not any(w > 0 for w in weights.values()):
                raise Refused("at least one version needs a weight above 0 (send {} to end the split)")
            served.traffic.set(weights)
            return served.traffic.weights

    @contextmanager
    def lease(self, task: str, target: Target = Target(), caller: str = "") -> Iterator[LoadedModel]:
        """The version that answers ``caller``'s request to ``task`` for ``target``, held until the
        block ends: what the request is answered by from admission to answer, whatever loads,
        reloads or unloads meanwhile. A retired version is released when its last lease ends."""
        name = target.model or task
        with self._lock:
            served = self._served.get(name)
            if served is None or served.task != task:
                if name == task:
                    raise ModelUnavailable(f"no {task} model is loaded")
                models = [m.name for m in self._served.values() if m.task == task]
                raise NotServed(f"no model {name!r} answers {task} (models: {_listed(models)})")
            model = served.pick(target, caller)
            model.in_flight += 1
        started, outcome = time.perf_counter(), "error"
        try:
            yield model
            outcome = "ok"
        finally:
            with self._lock:
                model.in_flight -= 1
                released = model.retired and model.in_flight == 0
                self._lock.notify_all()
            if self.observe is not None:
                self.observe(model, outcome, time.perf_counter() - started)
            if released:
                log.info("model released", extra={"model": model.model, "version": model.version})
                # The reload's settle_heap ran while this version was still held, and froze it; its
                # reference cycles are collectable only after another pass.
                threading.Thread(target=settle_heap, name="settle-heap", daemon=True).start()

    def get(self, model: str) -> LoadedModel | None:
        """``model``'s serving version."""
        with self._lock:
            served = self._served.get(model)
            return served.versions.get(served.serving) if served else None

    def loaded(self) -> list[LoadedModel]:
        """Every loaded version, by model and version."""
        with self._lock:
            return [m for name in sorted(self._served) for _, m in sorted(self._served[name].versions.items())]

    def models(self) -> list[dict[str, Any]]:
        """Per model: its task, serving and loaded versions, labels and traffic weights."""
        with self._lock:
            return [self._served[name].describe() for name in sorted(self._served)]

    def errors(self) -> dict[str, str]:
        """Per model, why a version of it failed to load."""
        with self._lock:
            return dict(self._errors)

    def _entry(self, name: str, task: str) -> ServedModel:
        served = self._served.get(name)
        if served is None:
            served = self._served[name] = ServedModel(name, task, self.root / name)
        return served

    def _retire(self, model: LoadedModel) -> bool:
        """Mark ``model`` no longer chosen; whether it is released already (no request holds it)."""
        model.retired = True
        return model.in_flight == 0

    def _build(self, name: str, version: int | None) -> LoadedModel:
        """Load and warm up a version, within the memory limit; nothing serving changes."""
        path = model_store.resolve_version(self.root / name, version)
        manifest = model_store.read_manifest(path)
        task = manifest.get("task", name)
        if task not in self.runtimes:
            raise FileNotFoundError(f"model {name!r} answers task {task!r}, which this service does not serve")
        backend = self.backends.get(task, "inprocess")
        if backend == "inprocess":
            self._check_memory(name, path)
        runtime = self.runtimes[task]
        spec = validate_spec(runtime.spec, manifest)  # before the weights: a bad manifest fails fast
        before = resident_bytes()
        saved_model = (
            RemoteSavedModel(self.tfserving, name, int(path.name)) if backend == "tfserving" else tf.saved_model.load(str(path))
        )
        loaded = LoadedModel(name, task, int(path.name), path, spec, saved_model, backend)
        loaded.pipeline = runtime.bind(loaded.predict, spec)
        loaded.warm_up()
        loaded.resident_bytes = max(resident_bytes() - before, 0)
        return loaded

    def _check_memory(self, name: str, path: Path) -> None:
        if not self.memory_limit:
            return
        with self._lock:
            served = self._served.get(name)
            siblings = [m.resident_bytes for m in served.versions.values()] if served else []
        needed = max([MEMORY_PER_DISK_BYTE * model_store.version_bytes(path), *siblings])
        left = self.memory_limit - resident_bytes()
        if needed > left:
            raise MemoryRefused(needed, left)
