"""A training run's folder (``--run-dir``): its config, written when the run starts and read back when
a later stage resumes it (so the vocabularies and sizes match the checkpoint); its best weights;
the record of how it was trained, which export copies into the manifest; and a warm start from an
exported version."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, TypeVar

import keras

from app.model_store import read_manifest

CONFIG_FILE = "config.json"
BEST_WEIGHTS = "best.weights.h5"  # the epoch held-out data liked best (training/callbacks.py)
WARM_START = "warm_start.json"  # the exported version a run's weights started from
COMMANDS = "command.txt"  # one line per stage of the run
VARIABLE_PATHS = "variable_paths.json"  # beside an export's saved_model.pb: each variable's Keras path

C = TypeVar("C", bound="RunConfig")


class RunConfig:
    """Base of each task's ``Config`` dataclass (everything needed to rebuild its network): JSON in
    the run folder."""

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), ensure_ascii=False))

    @classmethod
    def load(cls: type[C], path: Path) -> C:
        return cls(**json.loads(path.read_text()))

    @classmethod
    def of_run(cls: type[C], run_dir: Path) -> C:
        """The config a run folder holds."""
        return cls.load(Path(run_dir) / CONFIG_FILE)

    @classmethod
    def from_options(cls: type[C], args: argparse.Namespace, **values) -> C:
        """A new config: each field named like a ``train`` option takes that option's value,
        ``values`` set the others (or convert an option); the rest keep their defaults."""
        options = {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}
        return cls(**{**options, **values})


def load_best(model: keras.Model, run_dir: Path) -> keras.Model:
    """``model`` (built from the run's config) with the run's best weights."""
    model.load_weights(Path(run_dir) / BEST_WEIGHTS)
    return model


def start_run(args: argparse.Namespace, config_type: type[C]) -> tuple[Path, C | None]:
    """Makes the run folder and seeds Python, NumPy and Keras with ``--seed``. Returns the folder and
    the config the run saved before (``None`` for a new run, whose vocabularies are still to build)."""
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(args.seed)
    return run_dir, config_type.of_run(run_dir) if (run_dir / CONFIG_FILE).exists() else None


def record_command(run_dir: Path, args: argparse.Namespace) -> None:
    """Add this stage's command to the run's record, before it trains: a stage stopped part-way
    trained the weights too."""
    with open(Path(run_dir) / COMMANDS, "a") as f:
        f.write(args.command_line + "\n")


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
        "training_commands": (warm_start or {}).get("training_commands", []) + read_run_file(run_dir, COMMANDS, "").splitlines(),
        "training_time": read_run_file(run_dir, "timing.json", {}),
        **({"warm_started_from": warm_start} if warm_start else {}),
    }


def member_record(run_dir: Path, **settings: Any) -> dict:
    """What a manifest says of one ensemble member: its run, how it was trained, and the
    ``settings`` that tell it from the other members."""
    return {"run_dir": str(run_dir), **run_record(run_dir), **settings}


def warm_start(model, version_dir: Path, run_dir: Path) -> None:
    """Copy an exported version's weights into ``model`` (same architecture and vocabularies), and
    record in ``run_dir`` where they came from so the next export's manifest can say so.

    Variables are matched by their Keras path (``encoder/forward_lstm/lstm_cell/kernel``): the
    export's ``variable_paths.json``, or the variable names of an export without it (which are the
    paths for a functional model). Embeddings exported as int8 (``--int8-embeddings``) are
    dequantised as Keras does (int8 values / the row's ``embeddings_scale``).
    """
    import tensorflow as tf

    variables = tf.saved_model.load(str(version_dir))._all_variables
    paths_file = version_dir / VARIABLE_PATHS
    paths = json.loads(paths_file.read_text()) if paths_file.exists() else [v.name.removesuffix(":0") for v in variables]
    exported = {path: v.numpy() for path, v in zip(paths, variables)}
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


def warm_start_run(model, version_dir: Path, run_dir: Path, held_out, score: str = "f1") -> float | None:
    """Start a new run in ``run_dir`` from an exported version's weights (:func:`warm_start`) and
    keep them as its best until beaten; returns their held-out score (``held_out()[score]``, what
    selection follows), the baseline later epochs must beat. A resumed run (it has best weights)
    restores its own backup instead and gets ``None``."""
    if (run_dir / BEST_WEIGHTS).exists():
        return None
    warm_start(model, version_dir, run_dir)
    # Same split and vocabularies as the source run give back its held-out score: a cheap check.
    scores = held_out()
    baseline = scores[score]
    others = ", ".join(f"{name} {value:.4f}" for name, value in scores.items() if name != score)
    print(
        f"warm start from {version_dir}: held-out {score.upper()} {baseline:.4f}" + (f" ({others})" if others else ""),
        flush=True,
    )
    model.save_weights(run_dir / BEST_WEIGHTS)
    return baseline
