"""``python -m training spectra train``: simulated spectra with mixup, checkpointed on the synthetic
dev split's macro-F1 (the real spectra's figures logged beside)."""

from __future__ import annotations

import argparse
from pathlib import Path

import keras
import numpy as np

from app.tasks.spectra.spec import CLASSES
from training.callbacks import ema_options, standard_callbacks
from training.data.spectra_real import LOWZ_AGN_SOURCE, load_real_validation
from training.metrics import classification_report, recall_report
from training.runs import CONFIG_FILE, record_command, start_run
from training.tasks.spectra.backbone import build_model
from training.tasks.spectra.config import BRIGHT_SNR, Config
from training.tasks.spectra.preprocessor import load_split, predict_in_batches, training_dataset
from training.tasks.spectra.stellar_types import real_train_training_part


def train(args: argparse.Namespace) -> None:
    run_dir, config = start_run(args, Config)
    config = config or Config.from_options(args)
    config.save(run_dir / CONFIG_FILE)
    data_dir = Path(args.data_dir)
    train_x, train_y = load_split(data_dir, Path(args.cache_dir), "train", args.train_per_class)
    dev_x, dev_y = load_split(data_dir, Path(args.cache_dir), "dev", args.dev_per_class)
    if config.real_train_repeat:
        # Real LAMOST spectra beside the simulated ones: the sky's instrument, noise and stars the
        # simulator does not draw (the held-out fifth stays out; see real_train_training_part).
        real_train = real_train_training_part(data_dir)
        real_x = np.stack([s.flux for s in real_train]).astype(train_x.dtype)
        real_y = np.array([CLASSES.index(s.label) for s in real_train], train_y.dtype)
        train_x = np.concatenate([train_x, *[real_x] * config.real_train_repeat])
        train_y = np.concatenate([train_y, *[real_y] * config.real_train_repeat])
        print(f"with {len(real_train)} real_train spectra × {config.real_train_repeat}", flush=True)
    print(f"train {len(train_y)} spectra, dev {len(dev_y)}; mixup alpha {config.mixup_alpha}", flush=True)

    model = build_model(config)
    model.compile(
        optimizer=keras.optimizers.AdamW(args.learning_rate, weight_decay=1e-4, **ema_options(args.ema)),
        loss="categorical_crossentropy",
    )
    model.summary(print_fn=lambda line, **_: print(line, flush=True))

    # Logged beside the synthetic dev figures so a run shows how it does on the sky; the
    # checkpoint is still chosen on the synthetic dev split.
    # The survey sets only, as evaluate's real_validation figures (the low-z AGN are reported apart).
    real = [s for s in load_real_validation(data_dir) if s.source != LOWZ_AGN_SOURCE] if (data_dir / "real_validation").exists() else []

    def held_out() -> dict[str, float]:
        predict = lambda x: model(x, training=False)  # noqa: E731
        report = classification_report(dev_y, predict_in_batches(predict, dev_x).argmax(axis=1), CLASSES)
        metrics = {"macro_f1": report["macro_f1"], "accuracy": report["accuracy"]}
        if real:
            labels = predict_in_batches(predict, np.stack([s.flux for s in real])).argmax(axis=1)
            bright = [i for i, s in enumerate(real) if s.median_snr >= BRIGHT_SNR]
            named = [CLASSES[k] for k in labels]
            metrics["real_balanced_recall"] = recall_report([s.label for s in real], named, CLASSES)["balanced_recall"]
            metrics["real_bright_balanced_recall"] = recall_report(
                [real[i].label for i in bright], [named[i] for i in bright], CLASSES
            )["balanced_recall"]
        return metrics

    record_command(run_dir, args)
    model.fit(
        training_dataset(train_x, train_y, args.batch_size, config.mixup_alpha, args.seed),
        epochs=args.epochs,
        callbacks=standard_callbacks(
            run_dir, held_out, monitor="val_macro_f1", patience=args.patience, swap_ema=args.ema > 0
        ),
        shuffle=False,
        verbose=2 if args.quiet else 1,
    )
