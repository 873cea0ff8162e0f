"""Spectrum classification (STAR / GALAXY / QSO / UNKNOWN): a Conv1D residual network with mixup.

``python -m training spectra train|evaluate|export``. Trains on spectra
simulated from real templates (:mod:`training.data.spectra`); the exported
SavedModel takes flux on the LAMOST grid ``[N, 3904]`` and returns class
probabilities, labels, redshifts and stellar types (the template fits run in the graph).

The model (``config``, ``preprocessor``, ``backbone``, ``head``: the fits after the classifier)
and the recipes (``train``, ``export``, ``evaluate``, ``examples``) are modules of their own; this
one holds the command's options.
"""

from __future__ import annotations

import argparse

from training.cli import add_ensemble_option, add_task_commands
from training.tasks.spectra import evaluate, examples, export, train
from training.tasks.spectra.config import TASK, Config


def configure_parser(parser: argparse.ArgumentParser) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--test-per-class", type=int, default=2000)
    common.add_argument("--cache-dir", default="runs/spectra_data", help="simulated splits are cached here")
    parsers = add_task_commands(
        parser, TASK, train=train.train, export=export.export, evaluate=evaluate.evaluate, common=common,
        defaults={"epochs": 10, "batch_size": 64, "learning_rate": 3e-3, "patience": 4, "seed": 7},
    )
    command = parsers.commands.add_parser("examples", help="write one simulated FITS spectrum per class (demo page)")
    command.add_argument("--data-dir", default=f"../shared/data/{TASK}")
    command.add_argument("--out", default="app/demo/examples")
    command.add_argument("--seed", type=int, default=11)
    command.set_defaults(func=examples.write_examples)
    p = parsers.train
    p.add_argument("--train-per-class", type=int, default=8000)
    p.add_argument("--dev-per-class", type=int, default=1000)
    p.add_argument(
        "--real-train-repeat", type=int, default=Config.real_train_repeat,
        help="also train on real_train's LAMOST stars and galaxies (not its held-out fifth), this many times an epoch",
    )
    p.add_argument("--mixup-alpha", type=float, default=Config.mixup_alpha, help="0 disables mixup")
    add_ensemble_option(parsers.export, "probabilities averaged")
