"""Spectrum classification (STAR / GALAXY / QSO / UNKNOWN): a Conv1D residual network with mixup.

``python -m training spectra train|evaluate|export``. Trains on spectra
simulated from real templates (:mod:`training.data.spectra`); the exported
SavedModel takes flux on the LAMOST grid ``[N, 3904]`` and returns class
probabilities.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from training import model_store
from training.augment import mixup
from training.callbacks import ema_options, standard_callbacks
from training.cli import add_task_commands, export_version
from training.data.spectra import CLASSES, Templates, read_lamost_fits, simulate
from training.layers.residual_conv1d import ResidualConv1D
from training.layers.spectrum_normalization import SpectrumNormalization
from training.metrics import classification_report
from training.preprocessing.spectra import LAMOST

TASK = "spectra"
SPLIT_SEEDS = {"train": 1, "dev": 2, "test": 3}
SIGNATURE = {
    "inputs": {"flux": f"float32 [N, {LAMOST.npix}] on the LAMOST grid, 0 = masked"},
    "outputs": {"probabilities": f"float32 [N, {len(CLASSES)}] in the order of 'classes'", "label": "string [N]"},
}


@dataclass
class Config:
    filters: tuple[int, ...] = (16, 32, 48, 64)
    kernel_size: int = 7
    dropout: float = 0.2
    mixup_alpha: float = 0.2  # 0 turns mixup off

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, path: Path) -> "Config":
        raw = json.loads(path.read_text())
        return cls(**{**raw, "filters": tuple(raw["filters"])})


def build_model(config: Config) -> keras.Model:
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
    return keras.Model(flux, probabilities, name="spectrum_classifier")


def load_split(data_dir: Path, cache_dir: Path, split: str, n_per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """Simulated spectra of one split, cached as ``.npz`` (the simulator is deterministic by seed)."""
    cache = cache_dir / f"{split}-{n_per_class}.npz"
    if cache.exists():
        with np.load(cache) as data:
            return data["flux"], data["labels"]
    templates = Templates.load(data_dir / "templates", split)
    flux, labels = simulate(templates, n_per_class, SPLIT_SEEDS[split])
    cache_dir.mkdir(parents=True, exist_ok=True)
    np.savez(cache, flux=flux, labels=labels)
    return flux, labels


def real_stars(data_dir: Path) -> np.ndarray:
    """Flux of the real LAMOST stars (evaluation only), masked pixels set to 0."""
    return np.stack([read_lamost_fits(p)[0] for p in sorted((data_dir / "lamost_real_stars").glob("*.fits"))])


def _dataset(flux: np.ndarray, labels: np.ndarray, batch_size: int, alpha: float, seed: int) -> tf.data.Dataset:
    ds = tf.data.Dataset.from_tensor_slices((flux, tf.one_hot(labels, len(CLASSES))))
    ds = ds.shuffle(len(labels), seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    if alpha > 0:
        ds = ds.map(lambda x, y: mixup(x, y, alpha), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def _predict(predict_probabilities, flux: np.ndarray, batch_size: int = 256, desc: str | None = None) -> np.ndarray:
    batches = range(0, len(flux), batch_size)
    out = [
        np.asarray(predict_probabilities(flux[i : i + batch_size]))
        for i in tqdm(batches, desc=desc, unit="batch", file=sys.stderr, disable=desc is None)
    ]
    return np.concatenate(out)


def train(args: argparse.Namespace) -> None:
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(args.seed)
    data_dir = Path(args.data_dir)
    config_path = run_dir / "config.json"
    config = Config.load(config_path) if config_path.exists() else Config(mixup_alpha=args.mixup_alpha)
    config.save(config_path)
    train_x, train_y = load_split(data_dir, Path(args.cache_dir), "train", args.train_per_class)
    dev_x, dev_y = load_split(data_dir, Path(args.cache_dir), "dev", args.dev_per_class)
    print(f"train {len(train_y)} spectra, dev {len(dev_y)}; mixup alpha {config.mixup_alpha}", flush=True)

    model = build_model(config)
    model.compile(
        optimizer=keras.optimizers.AdamW(args.learning_rate, weight_decay=1e-4, **ema_options(args.ema)),
        loss="categorical_crossentropy",
    )
    model.summary(print_fn=lambda line, **_: print(line, flush=True))

    def held_out() -> dict[str, float]:
        predicted = _predict(lambda x: model(x, training=False), dev_x).argmax(axis=1)
        report = classification_report(dev_y, predicted, CLASSES)
        return {"macro_f1": report["macro_f1"], "accuracy": report["accuracy"]}

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


def evaluate_saved_model(version_dir: Path, data_dir: Path, test_per_class: int, cache_dir: Path) -> dict:
    """Accuracy, macro-F1 and per-class F1 on the synthetic test split, and accuracy on real LAMOST stars."""
    serve = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    predict = lambda x: serve(flux=tf.constant(x, tf.float32))["probabilities"]  # noqa: E731
    test_x, test_y = load_split(data_dir, cache_dir, "test", test_per_class)
    report = classification_report(test_y, _predict(predict, test_x, desc="synthetic test").argmax(axis=1), CLASSES)
    stars = _predict(predict, real_stars(data_dir), desc="real stars").argmax(axis=1)
    real = {
        "n": int(len(stars)),
        "accuracy": round(float(np.mean(stars == CLASSES.index("STAR"))), 4),
        "predicted": {c: int(np.sum(stars == i)) for i, c in enumerate(CLASSES)},
    }
    return {"synthetic_test": report, "lamost_real_stars": real}


def _headline(metrics: dict) -> dict:
    if not metrics:
        return {}
    return {
        "macro_f1": metrics["synthetic_test"]["macro_f1"],
        "accuracy": metrics["synthetic_test"]["accuracy"],
        "real_star_accuracy": metrics["lamost_real_stars"]["accuracy"],
    }


def export(args: argparse.Namespace) -> None:
    run_dir = Path(args.run_dir)
    config = Config.load(run_dir / "config.json")
    model = build_model(config)
    model.load_weights(run_dir / "best.weights.h5")
    class_names = tf.constant(CLASSES)

    @tf.function(input_signature=[tf.TensorSpec([None, LAMOST.npix], tf.float32, name="flux")])
    def serve(flux):
        probabilities = model(flux, training=False)
        return {"probabilities": probabilities, "label": tf.gather(class_names, tf.argmax(probabilities, axis=1))}

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
    real = metrics["lamost_real_stars"]
    print(f"real LAMOST stars: accuracy={real['accuracy']:.4f} of {real['n']} ({real['predicted']})")
    print(json.dumps({"task": TASK, "model": str(version_dir), **_headline(metrics), **metrics}))


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
