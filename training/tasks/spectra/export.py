"""``python -m training spectra export``: one run, or several averaged, with the template fits as one
SavedModel taking flux on the LAMOST grid."""

from __future__ import annotations

import argparse
from pathlib import Path

import tensorflow as tf

from app.tasks.spectra.grid import LAMOST
from app.tasks.spectra.spec import CLASSES, ZWARNING_BITS
from training import runs
from training.cli import export_version
from training.tasks.spectra.backbone import build_ensemble, load_classifier
from training.tasks.spectra.config import REDSHIFT_TEMPLATES, SIGNATURE, SPLIT_SEEDS, STELLAR_TEMPLATES, TASK, Config
from training.tasks.spectra.evaluate import evaluate_saved_model, headline_figures
from training.tasks.spectra.head import SpectrumAnalysis, z_systematics


def export(args: argparse.Namespace) -> None:
    run_dirs = [Path(args.run_dir), *map(Path, args.ensemble)]
    if len(run_dirs) == 1:
        model = load_classifier(run_dirs[0])
    else:
        model = build_ensemble([load_classifier(d, f"member_{i}") for i, d in enumerate(run_dirs)])
    config = Config.of_run(run_dirs[0])
    z_systematic = z_systematics(Path(args.data_dir) / "templates")
    analysis = SpectrumAnalysis(model, Path(args.data_dir) / "templates", z_systematic)

    @tf.function(input_signature=[tf.TensorSpec([None, LAMOST.npix], tf.float32, name="flux")])
    def serve(flux):
        return analysis(flux)

    export_version(
        args,
        task=TASK,
        model=model,
        serve=serve,
        evaluate=lambda staged: evaluate_saved_model(staged, Path(args.data_dir), args.test_per_class, Path(args.cache_dir)),
        headline=headline_figures,
        data_source="simulated from SDSS/DESI templates (training/data/spectra.py); real LAMOST stars for evaluation only",
        extra={
            "classes": list(CLASSES),
            "grid": {"loglam0": LAMOST.loglam0, "dloglam": LAMOST.dloglam, "npix": LAMOST.npix},
            "mixup_alpha": config.mixup_alpha,
            "test_split": {"per_class": args.test_per_class, "seed": SPLIT_SEEDS["test"]},
            "signature": SIGNATURE,
            "zwarning_bits": ZWARNING_BITS,
            "z_systematic": z_systematic,
            **({"ensemble": [runs.member_record(d) for d in run_dirs]} if len(run_dirs) > 1 else {}),
            "templates": {**{c: path for c, (path, *_) in REDSHIFT_TEMPLATES.items()}, "STAR": STELLAR_TEMPLATES},
            "warmup_inputs": {"flux": {"shape": [2, LAMOST.npix], "dtype": "float32", "fill": 1.0}},
        },
    )
