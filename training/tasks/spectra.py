"""Spectrum classification (STAR / GALAXY / QSO / UNKNOWN): a Conv1D residual network with mixup.

``python -m training spectra train|evaluate|export``. Trains on spectra
simulated from real templates (:mod:`training.data.spectra`); the exported
SavedModel takes flux on the LAMOST grid ``[N, 3904]`` and returns class
probabilities.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from app import model_store
from app.tasks.spectra.grid import LAMOST, UNCLASSIFIABLE_MASKED_SHARE
from app.tasks.spectra.spec import CLASSES, HEAVILY_MASKED_SHARE, ZWARNING_BITS
from training import runs
from training.augment import mixup
from training.callbacks import ema_options, standard_callbacks
from training.cli import add_task_commands, export_version
from training.data import spectra as spectra_simulator
from training.data.spectra import Templates, read_templates, simulate
from training.data.spectra_real import LOWZ_AGN_SOURCE, load_lamost_stars, load_real_validation
from training.layers.residual_conv1d import ResidualConv1D
from training.layers.spectrum_normalization import SpectrumNormalization
from training.metrics import classification_report, recall_report
from training.runs import CONFIG_FILE, RunConfig, load_best, start_run
from training.template_fitting import RedshiftScan, StellarFit, spectrum_weights, template_systematic

TASK = "spectra"
SPLIT_SEEDS = {"train": 1, "dev": 2, "test": 3}
BRIGHT_SNR = 2.0  # real spectra are reported over all and over median S/N ≥ this
SIGNATURE = {
    "inputs": {"flux": f"float32 [N, {LAMOST.npix}] on the LAMOST grid, 0 = masked"},
    "outputs": {
        "probabilities": f"float32 [N, {len(CLASSES)}] in the order of 'classes'",
        "label": "string [N]: the likeliest class; for an ambiguous one (AMBIGUOUS_CLASS) or an UNKNOWN with part of the spectrum masked (HEAVILY_MASKED, below UNCLASSIFIABLE_MASKED_SHARE), the astrophysical class whose templates fit best (for UNKNOWN only if a template finds features: FEATURE_DELTA_CHI2)",
        "z": "float32 [N]: redshift from the template fit of the label's class (of the likeliest astrophysical class for UNKNOWN; a star's is its radial velocity / c)",
        "z_err": "float32 [N]: 1σ uncertainty of z: the fit's statistical one and the template systematic (z_systematic) in quadrature",
        "delta_chi2": "float32 [N]: χ² of the best fit elsewhere in z minus that of the best one (float32 max for stars)",
        "subtype": "string [N]: for STAR, the MK letter of the best-fitting stellar template ('' for templates without one, and for other classes)",
        "stellar_template": "string [N]: for STAR, the best-fitting stellar template's name ('' for other classes)",
        "median_snr": "float32 [N]: median flux / noise per pixel, the noise estimated from the spectrum",
        "zwarning": "int32 [N]: bit mask, names in 'zwarning_bits'",
    },
}
# Below this top probability a class is ambiguous: the template fits decide it (Redrock's way).
AMBIGUOUS_PROBABILITY = 0.6
# An UNKNOWN is decided by the fits too when its best template beats a smooth continuum by this
# much (features found at ~10σ), if it is ambiguous or partly masked, and not masked as much as the
# simulator's unclassifiable spectra (UNCLASSIFIABLE_MASKED_SHARE).
FEATURE_DELTA_CHI2 = 100.0
# Rest-frame templates of the fits in the exported graph (under --data-dir's templates/), the
# redshift range each scans, and the coarse scan's step in pixels (1e-4 dex, 69 km/s): broad
# quasar lines allow a wider one. On the real spectra steps 3/4 found the same redshifts as 2/3.
REDSHIFT_TEMPLATES = {
    "GALAXY": ("sdss_idlspec2d/spEigenGal-56436.fits", -0.005, 1.5, 3),
    "QSO": ("sdss_idlspec2d/spEigenQSO-55732.fits", 0.05, 5.0, 4),
}
STELLAR_TEMPLATES = "sdss_idlspec2d/spEigenStar-53724.fits"


@dataclass
class Config(RunConfig):
    filters: tuple[int, ...] = (16, 32, 48, 64)
    kernel_size: int = 7
    dropout: float = 0.2
    mixup_alpha: float = 0.2  # 0 turns mixup off

    def __post_init__(self):
        self.filters = tuple(self.filters)  # JSON gives a list


def build_model(config: Config, name: str = "spectrum_classifier") -> keras.Model:
    """Flux ``[B, 3904]`` → class probabilities ``[B, 4]``."""
    flux = keras.Input(shape=(LAMOST.npix,), dtype="float32", name="flux")
    x = SpectrumNormalization(name="normalize")(flux)
    x = keras.layers.Reshape((LAMOST.npix, 1))(x)
    x = keras.layers.Conv1D(config.filters[0], 9, strides=2, padding="same", use_bias=False, name="stem")(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.MaxPooling1D(2)(x)
    for i, filters in enumerate(config.filters):
        x = ResidualConv1D(filters, config.kernel_size, strides=2, name=f"block{i}")(x)
    x = keras.layers.Concatenate()([keras.layers.GlobalAveragePooling1D()(x), keras.layers.GlobalMaxPooling1D()(x)])
    x = keras.layers.Dropout(config.dropout)(x)
    probabilities = keras.layers.Dense(len(CLASSES), activation="softmax", name="probabilities")(x)
    return keras.Model(flux, probabilities, name=name)


def load_split(data_dir: Path, cache_dir: Path, split: str, n_per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """Simulated spectra of one split, cached as ``.npz`` (the simulator is deterministic by seed);
    the cache's name carries a digest of the simulator's source, so a changed simulator is not
    read from an old cache."""
    simulator = hashlib.sha1(Path(spectra_simulator.__file__).read_bytes()).hexdigest()[:10]
    cache = cache_dir / f"{split}-{n_per_class}-{simulator}.npz"
    if cache.exists():
        with np.load(cache) as data:
            return data["flux"], data["labels"]
    templates = Templates.load(data_dir / "templates", split)
    flux, labels = simulate(templates, n_per_class, SPLIT_SEEDS[split])
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.savez(cache, flux=flux, labels=labels)
    return flux, labels


def _dataset(flux: np.ndarray, labels: np.ndarray, batch_size: int, alpha: float, seed: int) -> tf.data.Dataset:
    ds = tf.data.Dataset.from_tensor_slices((flux, tf.one_hot(labels, len(CLASSES))))
    ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    if alpha > 0:
        ds = ds.map(lambda x, y: mixup(x, y, alpha), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def _predict(predict, flux: np.ndarray, batch_size: int = 256, desc: str | None = None):
    """``predict`` over ``flux`` in batches: one array, or a dict of arrays for a dict-valued ``predict``."""
    batches = range(0, len(flux), batch_size)
    out = [predict(flux[i : i + batch_size]) for i in tqdm(batches, desc=desc, unit="batch", file=sys.stderr, disable=desc is None)]
    if isinstance(out[0], dict):
        return {key: np.concatenate([np.asarray(o[key]) for o in out]) for key in out[0]}
    return np.concatenate([np.asarray(o) for o in out])


def train(args: argparse.Namespace) -> None:
    run_dir, config = start_run(args, Config)
    config = config or Config.from_options(args)
    config.save(run_dir / CONFIG_FILE)
    data_dir = Path(args.data_dir)
    train_x, train_y = load_split(data_dir, Path(args.cache_dir), "train", args.train_per_class)
    dev_x, dev_y = load_split(data_dir, Path(args.cache_dir), "dev", args.dev_per_class)
    print(f"train {len(train_y)} spectra, dev {len(dev_y)}; mixup alpha {config.mixup_alpha}", flush=True)

    model = build_model(config)
    model.compile(
        optimizer=keras.optimizers.AdamW(args.learning_rate, weight_decay=1e-4, **ema_options(args.ema)),
        loss="categorical_crossentropy",
    )
    model.summary(print_fn=lambda line, **_: print(line, flush=True))

    # Logged beside the synthetic dev figures so a run shows how it does on the sky; the
    # checkpoint is still chosen on the synthetic dev split.
    real = load_real_validation(data_dir) if (data_dir / "real_validation").exists() else []

    def held_out() -> dict[str, float]:
        predict = lambda x: model(x, training=False)  # noqa: E731
        report = classification_report(dev_y, _predict(predict, dev_x).argmax(axis=1), CLASSES)
        metrics = {"macro_f1": report["macro_f1"], "accuracy": report["accuracy"]}
        if real:
            labels = _predict(predict, np.stack([s.flux for s in real])).argmax(axis=1)
            bright = [i for i, s in enumerate(real) if s.median_snr >= BRIGHT_SNR]
            named = [CLASSES[k] for k in labels]
            metrics["real_balanced_recall"] = recall_report([s.label for s in real], named, CLASSES)["balanced_recall"]
            metrics["real_bright_balanced_recall"] = recall_report(
                [real[i].label for i in bright], [named[i] for i in bright], CLASSES
            )["balanced_recall"]
        return metrics

    model.fit(
        _dataset(train_x, train_y, args.batch_size, config.mixup_alpha, args.seed),
        epochs=args.epochs,
        callbacks=standard_callbacks(
            run_dir, held_out, monitor="val_macro_f1", patience=args.patience, swap_ema=args.ema > 0
        ),
        shuffle=False,
        verbose=2 if args.quiet else 1,
    )
    with open(run_dir / "command.txt", "a") as f:  # one line per (resumed) stage
        f.write(args.command_line + "\n")


MK_ORDER = "OBAFGKM"


def redshift_report(true_z: np.ndarray, z: np.ndarray, z_err: np.ndarray) -> dict:
    """Share within 6,000 km/s (|Δz| / (1 + z) < 0.02, QuasarNET's criterion), its complement (the
    catastrophic rate) and the median |Δz| / (1 + z); and whether ``z_err`` is an honest 1σ among
    those within: the share with |Δz| ≤ z_err (0.68 if it were) and the median |Δz| / z_err (0.67)."""
    error = np.abs(z - true_z) / (1 + true_z)
    within = error < 0.02
    pulls = np.abs(z - true_z)[within] / np.maximum(z_err[within], 1e-12)
    share = lambda x: round(float(np.mean(x)), 4) if len(x) else 0.0  # noqa: E731
    return {
        "n": int(len(error)),
        "within_6000_km_s": share(within),
        "catastrophic_rate": round(1 - share(within), 4) if len(error) else 0.0,
        "median_abs_dz_over_1pz": round(float(np.median(error)), 6) if len(error) else 0.0,
        "within_z_err": share(pulls <= 1),
        "median_abs_dz_over_z_err": round(float(np.median(pulls)), 3) if len(pulls) else 0.0,
    }


def subtype_report(true_subclass: list[str], subtype: list[str]) -> dict:
    """MK letter right, and within one letter (O B A F G K M), against the catalogue's subclass."""
    true = [t[:1] for t in true_subclass]
    right = [t == p for t, p in zip(true, subtype)]
    near = [t in MK_ORDER and p in MK_ORDER and abs(MK_ORDER.index(t) - MK_ORDER.index(p)) <= 1 for t, p in zip(true, subtype)]
    confusion: dict[str, dict[str, int]] = {}
    for t, p in zip(true, subtype):
        confusion.setdefault(t, {}).setdefault(p or "-", 0)
        confusion[t][p or "-"] += 1
    return {
        "n": len(true),
        "letter_accuracy": round(float(np.mean(right)), 4),
        "within_one_letter": round(float(np.mean(near)), 4),
        "confusion": confusion,
    }


def real_sky_report(spectra: list, outputs: dict) -> dict:
    """Classification over all real spectra and over median S/N ≥ 2, and redshifts of the real
    galaxies and quasars with a catalogue redshift: what the service answers for them."""
    labels = [s.label for s in spectra]
    predicted = [x.decode() for x in outputs["label"]]
    bright = np.array([s.median_snr >= BRIGHT_SNR for s in spectra])
    extragalactic = np.array([s.label in ("GALAXY", "QSO") and np.isfinite(s.z) for s in spectra])
    true_z = np.array([s.z for s in spectra])
    pick = lambda mask, values: [v for v, m in zip(values, mask) if m]  # noqa: E731
    return {
        "all": {**recall_report(labels, predicted, CLASSES), "unknown": predicted.count("UNKNOWN")},
        "bright": {**recall_report(pick(bright, labels), pick(bright, predicted), CLASSES), "unknown": pick(bright, predicted).count("UNKNOWN"), "min_median_snr": BRIGHT_SNR},
        **{
            f"redshift_{part}": redshift_report(true_z[rows], outputs["z"][rows], outputs["z_err"][rows])
            for part, rows in (("all", extragalactic), ("bright", extragalactic & bright))
        },
    }


def _label_indices(outputs: dict) -> np.ndarray:
    """The exported graph's labels (what the service answers) as indices into CLASSES."""
    return np.array([CLASSES.index(label.decode()) for label in outputs["label"]])


def evaluate_saved_model(version_dir: Path, data_dir: Path, test_per_class: int, cache_dir: Path) -> dict:
    """The synthetic test split, the real BOSS/DESI spectra (classes, redshifts) and the real LAMOST
    stars (classes, MK letters), each through the exported graph."""
    serve = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    predict = lambda x: serve(flux=tf.constant(x, tf.float32))  # noqa: E731
    test_x, test_y = load_split(data_dir, cache_dir, "test", test_per_class)
    synthetic = _predict(predict, test_x, desc="synthetic test")
    metrics = {"synthetic_test": classification_report(test_y, _label_indices(synthetic), CLASSES)}
    stars = load_lamost_stars(data_dir)
    out = _predict(predict, np.stack([s.flux for s in stars]), desc="real LAMOST stars")
    labels = _label_indices(out)
    metrics["lamost_real_stars"] = {
        "n": len(stars),
        "accuracy": round(float(np.mean(labels == CLASSES.index("STAR"))), 4),
        "predicted": {c: int(np.sum(labels == i)) for i, c in enumerate(CLASSES)},
        "subtype": subtype_report([s.subclass for s in stars], [x.decode() for x in out["subtype"]]),
    }
    if (data_dir / "real_validation").exists():
        real = load_real_validation(data_dir)
        outputs = _predict(predict, np.stack([s.flux for s in real]), desc="real BOSS/DESI")
        for name, lowz in (("real_validation", False), ("real_lowz_agn", True)):
            rows = np.array([(s.source == LOWZ_AGN_SOURCE) == lowz for s in real])
            if rows.any():
                metrics[name] = real_sky_report([s for s, r in zip(real, rows) if r], {k: v[rows] for k, v in outputs.items()})
    return metrics


def _headline(metrics: dict) -> dict:
    if not metrics:
        return {}
    headline = {
        "macro_f1": metrics["synthetic_test"]["macro_f1"],
        "accuracy": metrics["synthetic_test"]["accuracy"],
        "real_star_accuracy": metrics["lamost_real_stars"]["accuracy"],
        "subtype_letter_accuracy": metrics["lamost_real_stars"]["subtype"]["letter_accuracy"],
        "subtype_within_one_letter": metrics["lamost_real_stars"]["subtype"]["within_one_letter"],
    }
    real = metrics.get("real_validation")
    if real:
        headline.update(
            real_balanced_recall=real["all"]["balanced_recall"],
            real_bright_balanced_recall=real["bright"]["balanced_recall"],
            real_bright_galaxy_recall=real["bright"]["per_class"]["GALAXY"]["recall"],
            real_bright_z_within_6000_km_s=real["redshift_bright"]["within_6000_km_s"],
        )
    if "real_lowz_agn" in metrics:
        headline["lowz_agn_qso_recall"] = metrics["real_lowz_agn"]["all"]["per_class"]["QSO"]["recall"]
    return headline


def redshift_scan(templates_dir: Path, name: str, systematic: float = 0.0) -> RedshiftScan:
    """The redshift scan of class ``name`` (REDSHIFT_TEMPLATES)."""
    path, z_min, z_max, step = REDSHIFT_TEMPLATES[name]
    return RedshiftScan(read_templates(templates_dir / path), z_min, z_max, coarse_step=step, systematic=systematic)


def z_systematics(templates_dir: Path) -> dict[str, float]:
    """Each scan's template systematic in Δz / (1 + z), measured on spectra made from the training
    split's eigenbases (other templates than the scans'): galaxies at z 0–0.8, quasars over each
    basis's range."""
    training = Templates.load(templates_dir, "train")
    others = {"GALAXY": [(basis, 0.0, 0.8) for basis in training.galaxies], "QSO": training.quasars}
    return {name: round(template_systematic(redshift_scan(templates_dir, name), others[name]), 6) for name in REDSHIFT_TEMPLATES}


class SpectrumAnalysis(tf.Module):
    """The classifier's probabilities, with the redshift and stellar fits and the warning bits
    (everything the exported graph answers)."""

    def __init__(self, model: keras.Model, templates_dir: Path, z_systematic: dict[str, float] | None = None):
        super().__init__(name="spectrum_analysis")
        self.model = model
        self.scans = {name: redshift_scan(templates_dir, name, (z_systematic or {}).get(name, 0.0)) for name in REDSHIFT_TEMPLATES}
        self.stars = StellarFit(read_templates(templates_dir / STELLAR_TEMPLATES))
        self.class_names = tf.constant(CLASSES)

    def __call__(self, flux: tf.Tensor) -> dict[str, tf.Tensor]:
        probabilities = self.model(flux, training=False)
        likeliest = tf.argmax(probabilities, axis=1, output_type=tf.int32)
        normalised, weights, median_snr = spectrum_weights(flux)
        unknown = likeliest == CLASSES.index("UNKNOWN")
        ambiguous = tf.reduce_max(probabilities, axis=1) < AMBIGUOUS_PROBABILITY
        masked = tf.reduce_mean(tf.cast(flux == 0, tf.float32), axis=1)
        # The classifier learned UNKNOWN for masking only above UNCLASSIFIABLE_MASKED_SHARE; a real
        # source with less masked than that (one spectrograph arm lost) is the fits' to decide.
        partly_masked_unknown = unknown & (masked > HEAVILY_MASKED_SHARE) & (masked < UNCLASSIFIABLE_MASKED_SHARE)
        # Each spectrum gets one fit: its label's, or for UNKNOWN that of the likeliest astrophysical
        # class. Fitting only those rows makes a batch cost one fit per spectrum, not three.
        fit_class = tf.where(unknown, tf.argmax(probabilities[:, :3], axis=1, output_type=tf.int32), likeliest)
        fitters = {"STAR": self.stars, **self.scans}
        # Outputs a fit does not give keep these (finite, so every output is valid JSON: no other
        # redshift fits at all is the largest float32).
        outputs = {"z": 0.0, "z_err": 0.0, "chi2": 0.0, "delta_chi2": float(np.finfo(np.float32).max), "at_edge": False, "subtype": "", "template": ""}
        merged = {key: tf.fill(tf.shape(likeliest), tf.constant(default)) for key, default in outputs.items()}

        def fill(found: dict, rows: tf.Tensor) -> dict:
            return {key: found.get(key, tf.fill(tf.shape(rows)[:1], tf.constant(default))) for key, default in outputs.items()}

        for name, fit in fitters.items():
            rows = tf.where((fit_class == CLASSES.index(name)) & (unknown | ~ambiguous))
            found = fill(fit(tf.gather_nd(normalised, rows), tf.gather_nd(weights, rows)), rows)
            merged = {key: tf.tensor_scatter_nd_update(merged[key], rows, found[key]) for key in outputs}
        # An ambiguous class gets all three fits, over the same pixels (the stellar fit's: not the
        # telluric bands or the blue end), and the class with the smallest χ² wins. A doubtful or
        # partly masked UNKNOWN is decided so too when the spectrum has features: the best
        # template beating a smooth continuum by FEATURE_DELTA_CHI2, and not mostly masked.
        rows = tf.where(ambiguous | partly_masked_unknown)
        spectra, pixels = tf.gather_nd(normalised, rows), tf.gather_nd(weights, rows) * self.stars.fit_mask
        fits = [fill(fit(spectra, pixels), rows) for fit in fitters.values()]
        chi2 = tf.stack([f["chi2"] for f in fits], axis=1)
        has_features = (self.stars.continuum_chi2(spectra, pixels) - tf.reduce_min(chi2, axis=1) > FEATURE_DELTA_CHI2) & (
            tf.gather_nd(masked, rows) < UNCLASSIFIABLE_MASKED_SHARE
        )
        decided = ~tf.gather_nd(unknown, rows) | has_features
        best = tf.argmin(chi2, axis=1, output_type=tf.int32)  # fitters are in CLASSES' order
        decided_rows = tf.boolean_mask(rows, decided)
        label = tf.tensor_scatter_nd_update(likeliest, decided_rows, tf.boolean_mask(best, decided))
        for key in outputs:
            chosen = tf.gather(tf.stack([f[key] for f in fits], axis=1), best, batch_dims=1)
            merged[key] = tf.tensor_scatter_nd_update(merged[key], decided_rows, tf.boolean_mask(chosen, decided))
        bits = ZWARNING_BITS
        zwarning = (
            bits["LOW_SNR"] * tf.cast(median_snr < 2.0, tf.int32)
            + bits["AMBIGUOUS_CLASS"] * tf.cast(ambiguous, tf.int32)
            + bits["SMALL_DELTA_CHI2"] * tf.cast(merged["delta_chi2"] < 9.0, tf.int32)
            + bits["Z_AT_EDGE"] * tf.cast(merged["at_edge"], tf.int32)
            + bits["HEAVILY_MASKED"] * tf.cast(masked > HEAVILY_MASKED_SHARE, tf.int32)
            + bits["UNCLASSIFIED"] * tf.cast(label == CLASSES.index("UNKNOWN"), tf.int32)
        )
        return {
            "probabilities": probabilities,
            "label": tf.gather(self.class_names, label),
            "z": merged["z"],
            "z_err": merged["z_err"],
            "delta_chi2": merged["delta_chi2"],
            "subtype": merged["subtype"],
            "stellar_template": merged["template"],
            "median_snr": median_snr,
            "zwarning": zwarning,
        }


def load_classifier(run_dir: Path, name: str = "spectrum_classifier") -> keras.Model:
    """A trained run's classifier with its best (held-out) weights."""
    return load_best(build_model(Config.of_run(run_dir), name), run_dir)


def build_ensemble(members: list[keras.Model]) -> keras.Model:
    """Trained classifiers → one whose probabilities are the members' mean."""
    flux = keras.Input(shape=(LAMOST.npix,), dtype="float32", name="flux")
    probabilities = keras.layers.Average(name="mean_probabilities")([member(flux) for member in members])
    return keras.Model(flux, probabilities, name="spectrum_classifier_ensemble")


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
        headline=_headline,
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


def evaluate(args: argparse.Namespace) -> None:
    version_dir = model_store.resolve_version(Path(args.model_root) / TASK, args.version)
    metrics = evaluate_saved_model(version_dir, Path(args.data_dir), args.test_per_class, Path(args.cache_dir))
    report = metrics["synthetic_test"]
    print(f"\nsynthetic test: accuracy={report['accuracy']:.4f} macro-F1={report['macro_f1']:.4f}")
    print(f"  {'class':<10}{'P':>8}{'R':>8}{'F1':>8}{'support':>9}")
    for name, r in report["per_class"].items():
        print(f"  {name:<10}{r['precision']:>8.4f}{r['recall']:>8.4f}{r['f1']:>8.4f}{r['support']:>9}")
    stars = metrics["lamost_real_stars"]
    print(f"real LAMOST stars: STAR for {stars['accuracy']:.4f} of {stars['n']} ({stars['predicted']}); "
          f"MK letter right {stars['subtype']['letter_accuracy']:.4f}, within one {stars['subtype']['within_one_letter']:.4f}")
    for name, title in (("real_validation", "real BOSS/DESI"), ("real_lowz_agn", "real low-z AGN")):
        if name in metrics:
            _print_real(title, metrics[name])
    print(json.dumps({"task": TASK, "model": str(version_dir), **_headline(metrics), **metrics}, ensure_ascii=False))


def _print_real(title: str, real: dict) -> None:
    for part, subset in (("all", "all"), ("bright", f"median S/N ≥ {BRIGHT_SNR:g}")):
        r = real[part]
        recalls = ", ".join(f"{c} {v['recall']:.3f} (P {v['precision']:.3f}, n {v['support']})" for c, v in r["per_class"].items())
        print(f"{title}, {subset}: balanced recall {r['balanced_recall']:.4f}; {recalls}; UNKNOWN {r['unknown']} of {r['n']}")
        print(f"  confusion (true → predicted): {r['confusion']}")
        z = real[f"redshift_{part}"]
        print(f"  redshift of {z['n']} galaxies and quasars: {z['within_6000_km_s']:.4f} within 6,000 km/s, "
              f"median |Δz|/(1+z) {z['median_abs_dz_over_1pz']:.6f}; of those within, {z['within_z_err']:.2f} "
              f"within z_err (median |Δz|/z_err {z['median_abs_dz_over_z_err']:.2f})")


def write_examples(args: argparse.Namespace) -> None:
    """One simulated spectrum per astrophysical class, written as LAMOST-style FITS files (flux and
    inverse variance rows, log-linear wavelength in COEFF0/COEFF1) for the demo page."""
    from astropy.io import fits

    flux, labels = simulate(Templates.load(Path(args.data_dir) / "templates", "test"), 1, args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for row, label in zip(flux, labels):
        name = CLASSES[label]
        if name == "UNKNOWN":
            continue
        header = fits.Header()
        header["COEFF0"], header["COEFF1"] = LAMOST.loglam0, LAMOST.dloglam
        header["CLASS"] = name
        header["COMMENT"] = f"simulated by `python -m training spectra examples --seed {args.seed}` (not an observation)"
        ivar = np.where(row != 0, 1.0, 0.0).astype(np.float32)
        fits.PrimaryHDU(np.stack([row, ivar]), header).writeto(out / f"simulated_{name.lower()}.fits", overwrite=True)
        print(out / f"simulated_{name.lower()}.fits")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--test-per-class", type=int, default=2000)
    common.add_argument("--cache-dir", default="runs/spectra_data", help="simulated splits are cached here")
    parsers = add_task_commands(
        parser, TASK, train=train, export=export, evaluate=evaluate, common=common,
        defaults={"epochs": 10, "batch_size": 64, "learning_rate": 3e-3, "patience": 4, "seed": 7},
    )
    examples = parsers.commands.add_parser("examples", help="write one simulated FITS spectrum per class (demo page)")
    examples.add_argument("--data-dir", default=f"../shared/data/{TASK}")
    examples.add_argument("--out", default="app/demo/examples")
    examples.add_argument("--seed", type=int, default=11)
    examples.set_defaults(func=write_examples)
    p = parsers.train
    p.add_argument("--train-per-class", type=int, default=8000)
    p.add_argument("--dev-per-class", type=int, default=1000)
    p.add_argument("--mixup-alpha", type=float, default=Config.mixup_alpha, help="0 disables mixup")
    parsers.export.add_argument(
        "--ensemble", nargs="+", default=[], metavar="RUN_DIR",
        help="more trained runs to export with --run-dir as one classifier (probabilities averaged)",
    )
