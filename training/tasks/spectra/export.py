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
from training.data.spectra import read_templates
from training.tasks.spectra.config import (
    REAL_TRAIN_HELD_OUT, REDSHIFT_TEMPLATES, SIGNATURE, SPLIT_SEEDS, STELLAR_TEMPLATES, TASK, Config,
)
from training.tasks.spectra.evaluate import evaluate_saved_model, headline_figures
from training.tasks.spectra.head import SpectrumAnalysis, z_systematics
from training.tasks.spectra.stellar_types import StellarTypeFit, fit_stellar_types, real_train_stars
from training.template_fitting import StellarFit


def lamost_stellar_types(data_dir: Path) -> StellarTypeFit:
    """The LAMOST type mapping, learned from real_train's stars but its held-out fifth (by object)."""
    sdss = StellarFit(read_templates(data_dir / "templates" / STELLAR_TEMPLATES))
    return fit_stellar_types(sdss, *real_train_stars(data_dir))


def export(args: argparse.Namespace) -> None:
    run_dirs = [Path(args.run_dir), *map(Path, args.ensemble)]
    if len(run_dirs) == 1:
        model = load_classifier(run_dirs[0])
    else:
        model = build_ensemble([load_classifier(d, f"member_{i}") for i, d in enumerate(run_dirs)])
    config = Config.of_run(run_dirs[0])
    z_systematic = z_systematics(Path(args.data_dir) / "templates")
    types = lamost_stellar_types(Path(args.data_dir))
    analysis = SpectrumAnalysis(model, Path(args.data_dir) / "templates", z_systematic, types.module)

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
        data_source=(
            "classifier: simulated from SDSS/DESI templates (training/data/spectra.py); stellar types: LAMOST's labels "
            "of real_train's stars (four fifths by object); real_validation and the 176 LAMOST stars for evaluation only"
        ),
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
            "stellar_types": {
                "convention": "LAMOST (subtype, subclass); SDSS spEigenStar-53724 (stellar_template)",
                "learned_from": {"stars": types.training_stars, "objects": types.training_objects, "held_out": REAL_TRAIN_HELD_OUT},
                "held_out_at_fit": types.held_out,
            },
            "warmup_inputs": {"flux": {"shape": [2, LAMOST.npix], "dtype": "float32", "fill": 1.0}},
        },
    )
