"""The on-disk model store: ``<root>/<task>/<version>/`` with a SavedModel and ``manifest.json``.

Versions are positive integers, the layout TensorFlow Serving loads. Shared by
the export commands (writers) and the service's registry (reader).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Callable

MANIFEST = "manifest.json"
WARM_START = "warm_start.json"  # in a run directory: the exported version its weights started from


def versions(task_dir: Path) -> list[int]:
    """Complete versions under ``task_dir`` (those with a ``saved_model.pb``), ascending."""
    if not task_dir.is_dir():
        return []
    return sorted(
        int(p.name) for p in task_dir.iterdir() if p.name.isdigit() and int(p.name) > 0 and (p / "saved_model.pb").is_file()
    )


def resolve_version(task_dir: Path, version: int | None = None) -> Path:
    """The directory of ``version``, or of the highest version when it is ``None``."""
    present = versions(task_dir)
    if not present:
        raise FileNotFoundError(f"no model versions under {task_dir}")
    if version is None:
        version = present[-1]
    if version not in present:
        raise FileNotFoundError(f"version {version} not found under {task_dir} (have {present})")
    return task_dir / str(version)


def read_manifest(version_dir: Path) -> dict[str, Any]:
    path = version_dir / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else {}


def write_saved_model(
    model, endpoint: Callable, task_dir: Path, extra_endpoints: dict[str, Callable] | None = None
) -> Path:
    """Export ``endpoint`` (a ``tf.function`` closing over ``model``) as ``serving_default``,
    and each of ``extra_endpoints`` as a signature of its name.

    The SavedModel goes to a staging directory beside the versions; add the
    manifest there, then :func:`publish` it.
    """
    import keras

    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=_mkdir(task_dir)))
    archive = keras.export.ExportArchive()
    # add_endpoint tracks the variables the endpoint uses; lookup tables need tracking by hand.
    # Only weightless layers are tracked: tracking the whole model stores every variable a
    # second time (Keras 3.15). Nested models (an ensemble's members) are searched too.
    for layer in leaf_layers(model):
        if not layer.weights:
            archive.track(layer)
    archive.add_endpoint("serving_default", endpoint)
    for name, function in (extra_endpoints or {}).items():
        archive.add_endpoint(name, function)
    archive.write_out(str(staging), verbose=False)
    return staging


def quantize_embeddings(model) -> None:
    """Store every embedding table of ``model`` (and of its members) as int8 with a scale per row
    (Keras' own quantization): a quarter of the size. Measured per task before use (NER: F1
    +0.0003 on MSRA test)."""
    import keras

    for layer in leaf_layers(model):
        if isinstance(layer, keras.layers.Embedding):
            layer.quantize("int8")


def leaf_layers(model):
    """The layers of ``model`` and of the models nested in it (an ensemble's members)."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from leaf_layers(layer)
        else:
            yield layer


def publish(staging: Path, version: int | None = None) -> Path:
    """Rename a staged export to ``<version>/`` (default: one above the highest), so readers never
    see a half-written version. The manifest's version is set to match."""
    task_dir = staging.parent
    present = versions(task_dir)
    version = version if version is not None else (present[-1] + 1 if present else 1)
    manifest = read_manifest(staging)
    if manifest:
        manifest["version"] = version
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    final = task_dir / str(version)
    shutil.rmtree(final, ignore_errors=True)
    staging.rename(final)
    return final


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def read_run_file(run_dir: Path, name: str, default):
    """A run directory's JSON file parsed, or its text file stripped; ``default`` if absent."""
    path = Path(run_dir) / name
    if not path.exists():
        return default
    return json.loads(path.read_text()) if name.endswith(".json") else path.read_text().strip()


def run_record(run_dir: Path) -> dict:
    """How a run was trained: its commands — those of the version it was warm-started from, then
    each (resumed) stage of this run —, its training time (this run only), and its warm start."""
    warm_start = read_run_file(run_dir, WARM_START, None)
    return {
        "training_commands": (warm_start or {}).get("training_commands", []) + read_run_file(run_dir, "command.txt", "").splitlines(),
        "training_time": read_run_file(run_dir, "timing.json", {}),
        **({"warm_started_from": warm_start} if warm_start else {}),
    }


def member_record(run_dir: Path, **settings: Any) -> dict:
    """What a manifest says of one ensemble member: its run, how it was trained, and the
    ``settings`` that tell it from the other members."""
    return {"run_dir": str(run_dir), **run_record(run_dir), **settings}


def write_manifest(
    version_dir: Path, *, task: str, run_dir: Path, metrics: dict, data_source: str, params: int, extra: dict
) -> None:
    """Record what the model is, how it was trained and how well it does on the test split."""
    manifest = {
        "task": task,
        "version": None,  # set by publish()
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": _git_commit(),
        "data_source": data_source,
        **run_record(run_dir),
        "params": params,
        "metrics": metrics,
        **extra,
    }
    (version_dir / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")


def update_manifest(version_dir: Path, **fields: Any) -> None:
    """Replace top-level ``fields`` of a published version's manifest (a calibration fitted later,
    and the metrics it gives); written to a temporary file first, so readers never see half of it."""
    manifest = read_manifest(version_dir)
    manifest.update(fields)
    staged = version_dir / (MANIFEST + ".tmp")
    staged.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    staged.replace(version_dir / MANIFEST)


def warm_start(model, version_dir: Path, run_dir: Path) -> None:
    """Copy an exported version's weights into ``model`` (same architecture and vocabularies), and
    record in ``run_dir`` where they came from so the next export's manifest can say so.

    Variables are matched by their Keras path (``encoder/forward_lstm/lstm_cell/kernel``), which the
    SavedModel keeps as the variable name. Embeddings exported as int8 (``--int8-embeddings``) are
    dequantised as Keras does (int8 values / the row's ``embeddings_scale``).
    """
    import tensorflow as tf

    exported = {v.name.removesuffix(":0"): v.numpy() for v in tf.saved_model.load(str(version_dir))._all_variables}
    for name in [n for n in exported if n.endswith("_scale") and n.removesuffix("_scale") in exported]:
        values = exported[name.removesuffix("_scale")]
        if values.dtype == "int8":
            exported[name.removesuffix("_scale")] = values.astype("float32") / exported[name][:, None]
    missing = [w.path for w in model.trainable_weights if w.path not in exported]
    if missing:
        raise ValueError(f"{version_dir} has no weights for {missing}: not the same architecture")
    for weight in model.weights:
        if weight.path in exported:
            source = exported[weight.path]
            if tuple(source.shape) != tuple(weight.shape):
                raise ValueError(
                    f"{weight.path}: {tuple(source.shape)} in {version_dir}, {tuple(weight.shape)} here "
                    "(different hyper-parameters or vocabulary)"
                )
            weight.assign(source)
    record = run_dir / WARM_START
    if not record.exists():
        manifest = read_manifest(version_dir)
        record.write_text(json.dumps({
            "path": str(version_dir),
            "version": manifest.get("version"),
            "training_commands": manifest.get("training_commands", []),
            "training_time": manifest.get("training_time", {}),
        }, indent=2, ensure_ascii=False))


def warm_start_run(model, version_dir: Path, run_dir: Path, held_out) -> float | None:
    """Start a new run in ``run_dir`` from an exported version's weights (:func:`warm_start`) and
    keep them as its best until beaten; returns their held-out score (``held_out()["f1"]``), the
    baseline later epochs must beat. A resumed run (it has best weights) restores its own backup
    instead and gets ``None``."""
    if (run_dir / "best.weights.h5").exists():
        return None
    warm_start(model, version_dir, run_dir)
    # Same split and vocabularies as the source run give back its held-out score: a cheap check.
    scores = held_out()
    baseline = scores["f1"]
    others = ", ".join(f"{name} {value:.4f}" for name, value in scores.items() if name != "f1")
    print(f"warm start from {version_dir}: held-out F1 {baseline:.4f}" + (f" ({others})" if others else ""), flush=True)
    model.save_weights(run_dir / "best.weights.h5")
    return baseline


def prune_other_versions(keep: Path) -> None:
    for version in versions(keep.parent):
        if str(version) != keep.name:
            shutil.rmtree(keep.parent / str(version))


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5)
    except OSError:
        return None
    return out.stdout.strip() or None
