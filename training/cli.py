"""The ``train`` / ``export`` / ``evaluate`` commands every task has, with their shared options."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from app import model_store
from app.tasks.catalog import RUNTIMES
from app.tasks.spec import validate_spec
from training import publishing
from training.data.unlabelled import SOURCES as UNLABELLED_SOURCES

Command = Callable[[argparse.Namespace], None]


@dataclass
class TaskParsers:
    """Each command's parser, for the task to add its own options to (all share ``common``)."""

    train: argparse.ArgumentParser
    export: argparse.ArgumentParser
    evaluate: argparse.ArgumentParser
    commands: argparse._SubParsersAction  # for a task's own further commands
    shared: argparse.ArgumentParser  # --data-dir and --model-root, as a parent for those commands
    store: argparse.ArgumentParser  # --model, for a further command that reads a model of the store


def add_task_commands(
    parser: argparse.ArgumentParser,
    task: str,
    *,
    train: Command,
    export: Command,
    evaluate: Command,
    defaults: dict,
    common: argparse.ArgumentParser | None = None,
) -> TaskParsers:
    """Add the three commands; ``defaults`` gives the task's epochs, batch size, learning rate, patience, seed."""
    shared = argparse.ArgumentParser(add_help=False, parents=[common] if common else [])
    shared.add_argument("--data-dir", default=f"../shared/data/{task}")
    shared.add_argument("--model-root", default="models", help=f"model store: <root>/{task}/<version>/")
    commands = parser.add_subparsers(dest="command", required=True)

    p_train = commands.add_parser("train", parents=[shared], help="train, keeping the weights best on held-out data")
    p_train.add_argument("--run-dir", default=f"runs/{task}", help="checkpoints, TensorBoard logs, resumable backup")
    p_train.add_argument("--epochs", type=int, default=defaults["epochs"])
    p_train.add_argument("--batch-size", type=int, default=defaults["batch_size"])
    p_train.add_argument("--learning-rate", type=float, default=defaults["learning_rate"])
    p_train.add_argument("--patience", type=int, default=defaults["patience"], help="early stopping")
    p_train.add_argument("--seed", type=int, default=defaults["seed"])
    p_train.add_argument("--quiet", action="store_true", help="one line per epoch instead of a progress bar")
    p_train.add_argument(
        "--ema", type=float, default=0.0, metavar="MOMENTUM",
        help="select, checkpoint and export the exponential moving average of the weights (e.g. 0.999; 0: off)",
    )
    p_train.set_defaults(func=train)

    # Which model of the store: models/<model>/<version>/ (a task may have several, e.g. ner and ner-fine).
    store = argparse.ArgumentParser(add_help=False)
    store.add_argument("--model", default=None, help=f"the model's name in the store (default: {task})")

    p_export = commands.add_parser("export", parents=[shared, store], help=f"write models/<model>/<version>/ and its manifest")
    p_export.add_argument("--run-dir", default=f"runs/{task}")
    p_export.add_argument("--version", type=int, default=None, help="default: one above the highest present")
    p_export.add_argument("--prune", action="store_true", help="remove the other versions after a successful export")
    p_export.set_defaults(func=export)

    p_evaluate = commands.add_parser("evaluate", parents=[shared, store], help="test-split metrics of an exported model")
    p_evaluate.add_argument("--version", type=int, default=None, help="default: the highest present")
    p_evaluate.set_defaults(func=evaluate)
    return TaskParsers(p_train, p_export, p_evaluate, commands, shared, store)


def add_int8_embeddings_option(export: argparse.ArgumentParser, tables: str) -> None:
    """``--int8-embeddings`` for a task whose network has embedding tables (``tables`` names them)."""
    export.add_argument(
        "--int8-embeddings", action="store_true",
        help=f"store the {tables} tables as int8 with a scale per row (a quarter of the size)",
    )


def add_ensemble_option(export: argparse.ArgumentParser, how: str) -> None:
    """``--ensemble``: more trained runs exported with ``--run-dir`` as one model (``how`` says how
    they are combined)."""
    export.add_argument(
        "--ensemble", nargs="+", default=[], metavar="RUN_DIR",
        help=f"more trained runs to export with --run-dir as one model: {how}",
    )


def add_float16_weights_option(export: argparse.ArgumentParser) -> None:
    """``--float16-weights`` for a task whose export builds its network in
    :func:`training.publishing.float16_weights`."""
    export.add_argument(
        "--float16-weights", action="store_true",
        help="store the other weights (convolutions, LSTMs, dense layers) as float16, computed in float32 (half the size)",
    )


def add_init_from_option(train: argparse.ArgumentParser, task: str) -> None:
    """``--init-from``: a training run that starts from an exported version's weights
    (:func:`training.runs.warm_start_run`)."""
    train.add_argument(
        "--init-from", metavar="VERSION_DIR", default=None,
        help=f"start from an exported version's weights (e.g. models/{task}/2) to train it further; give the "
        "options it was trained with, so the vocabularies and shapes match",
    )


def model_dir(args: argparse.Namespace, task: str) -> Path:
    """``<--model-root>/<--model>``: where the versions of the model a command names live."""
    return Path(args.model_root) / (getattr(args, "model", None) or task)


def export_version(
    args: argparse.Namespace,
    *,
    task: str,
    model,
    serve,
    evaluate: Callable[[Path], dict],
    headline: Callable[[dict], dict],
    data_source: str,
    extra: dict,
    extra_endpoints: dict[str, Callable] | None = None,
    companions: Sequence = (),
) -> Path:
    """The export command's steps shared by every task.

    Writes ``serve`` (and ``extra_endpoints``, as signatures of their names; ``companions``: further
    models they call) as a staged SavedModel, measures it with ``evaluate(staged_dir)`` when
    ``--data-dir`` exists, adds the manifest, publishes it as a version (removing the
    others with ``--prune``) and prints one JSON line with ``headline(metrics)``.
    """
    staging = publishing.write_saved_model(model, serve, model_dir(args, task), extra_endpoints, companions)
    metrics = evaluate(staging) if Path(args.data_dir).exists() else {}
    publishing.write_manifest(
        staging,
        task=task,
        run_dir=Path(args.run_dir),
        metrics=metrics,
        data_source=data_source,
        params=sum(m.count_params() for m in (model, *companions)),
        extra=extra,
    )
    # The service refuses a version whose manifest does not match its task's spec: so does export.
    validate_spec(RUNTIMES[task].spec, {**model_store.read_manifest(staging), "version": args.version or 1})
    version_dir = publishing.publish(staging, args.version)
    if args.prune:
        publishing.prune_other_versions(version_dir)
    print(json.dumps({"task": task, "exported": str(version_dir), **headline(metrics)}))
    return version_dir


def add_word2vec_options(parser: argparse.ArgumentParser, *, default_epochs: int, tables: str, extra: str) -> None:
    """``--word2vec-epochs`` and ``--word2vec-extra``: ``tables`` (e.g. "word embeddings") start from
    skip-gram word2vec over the training text and unlabelled text of the shared data folder."""
    parser.add_argument(
        "--word2vec-epochs", type=int, default=default_epochs,
        help=f"start the {tables} from skip-gram word2vec over the training text and --word2vec-extra text "
        "(this many epochs; 0: learned from scratch)",
    )
    parser.add_argument(
        "--word2vec-extra", action="append", default=[], choices=sorted(UNLABELLED_SOURCES),
        help=f"unlabelled training text of the shared data folder (repeatable; training/data/unlabelled.py) {extra}",
    )
